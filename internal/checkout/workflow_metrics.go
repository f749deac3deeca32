package checkout

import (
	"context"
	"log/slog"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/widgetstore/widgetstore/internal/store"
)

// scrapeTimeout bounds what one scrape of /metrics may spend on the
// database: two statements, each an aggregate, whose cost grows with the
// workflows retained (Retention bounds them).
const scrapeTimeout = 2 * time.Second

// workflowCollector reads, at each scrape and never per purchase, what
// only the database knows: the workflows by name and status
// (dbos.GetWorkflowAggregates), the age of the oldest pending one of each
// name, the orders left PENDING past their deadline, and on PostgreSQL
// the age of each instance's heartbeat.
type workflowCollector struct {
	c                          *Checkout
	workflows, oldest, beatAge *prometheus.Desc
	pastDeadline               *prometheus.Desc
	up                         *prometheus.Desc
}

func newWorkflowCollector(c *Checkout) *workflowCollector {
	return &workflowCollector{c: c,
		workflows: prometheus.NewDesc("widgetstore_workflows",
			"Workflows in the database by name and status, read at scrape time.", []string{"name", "status"}, nil),
		oldest: prometheus.NewDesc("widgetstore_workflow_oldest_pending_seconds",
			"Age of the oldest PENDING workflow of each name, since its creation.", []string{"name"}, nil),
		beatAge: prometheus.NewDesc("widgetstore_executor_heartbeat_age_seconds",
			"Time since each instance's last heartbeat (PostgreSQL, where instances share the database).", []string{"executor"}, nil),
		pastDeadline: prometheus.NewDesc("widgetstore_orders_past_deadline",
			"Orders still PENDING past their payment deadline and the watch's grace (at most 100 counted): their checkout should have cancelled them, and has not (cancelled, failed or stranded).", nil, nil),
		up: prometheus.NewDesc("widgetstore_workflow_metrics_up",
			"1 when the scrape could read the workflows' metrics from the database, 0 when it could not (they are missing then).", nil, nil),
	}
}

func (wc *workflowCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- wc.workflows
	ch <- wc.oldest
	ch <- wc.beatAge
	ch <- wc.pastDeadline
	ch <- wc.up
}

// Collect leaves out what it cannot read, and says so in
// widgetstore_workflow_metrics_up, rather than failing the whole scrape:
// the process's own counters matter most when the database is in trouble.
func (wc *workflowCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	now := time.Now()
	up := 1.0
	rows, err := dbos.GetWorkflowAggregates(dbos.From(wc.c.dbosCtx, ctx), dbos.GetWorkflowAggregatesInput{
		GroupByName: true, GroupByStatus: true, SelectCount: true, SelectMinCreatedAt: true})
	if err != nil {
		up = 0
		wc.c.logger.Warn("reading the workflows' metrics", slog.Any("error", err))
	}
	for _, row := range rows {
		name, status := deref(row.Group["name"]), deref(row.Group["status"])
		if row.Count != nil {
			ch <- prometheus.MustNewConstMetric(wc.workflows, prometheus.GaugeValue, float64(*row.Count), name, status)
		}
		if status == string(dbos.WorkflowStatusPending) && row.MinCreatedAt != nil {
			age := now.Sub(time.UnixMilli(*row.MinCreatedAt)).Seconds()
			ch <- prometheus.MustNewConstMetric(wc.oldest, prometheus.GaugeValue, max(age, 0), name)
		}
	}
	if wc.c.db.Postgres != nil {
		beats, err := store.ExecutorHeartbeats(ctx, wc.c.db.Q())
		if err != nil {
			up = 0
			wc.c.logger.Warn("reading the instances' heartbeats", slog.Any("error", err))
		}
		for id, at := range beats {
			ch <- prometheus.MustNewConstMetric(wc.beatAge, prometheus.GaugeValue, max(now.Sub(at).Seconds(), 0), id)
		}
	}
	if stuck, err := store.PendingPastDeadline(ctx, wc.c.db.Q(), now, 2*watchInterval); err != nil {
		up = 0
		wc.c.logger.Warn("reading the orders past their deadline", slog.Any("error", err))
	} else {
		ch <- prometheus.MustNewConstMetric(wc.pastDeadline, prometheus.GaugeValue, float64(len(stuck)))
	}
	ch <- prometheus.MustNewConstMetric(wc.up, prometheus.GaugeValue, up)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// takeoverMetrics count TakeOver's work in this process, and the
// workflows it recovered at launch.
type takeoverMetrics struct {
	takeovers, workflows, recovered prometheus.Counter
}

func newTakeoverMetrics(reg prometheus.Registerer) (takeoverMetrics, error) {
	m := takeoverMetrics{
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "widgetstore_takeovers_total",
			Help: "Silent instances whose pending workflows this process took over."}),
		workflows: prometheus.NewCounter(prometheus.CounterOpts{Name: "widgetstore_workflows_taken_over_total",
			Help: "Pending workflows of silent instances that this process took over (re-enqueued for any live instance)."}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{Name: "widgetstore_workflows_recovered_total",
			Help: "Workflows left pending by an earlier run of this instance that this process recovered at launch."}),
	}
	for _, c := range []prometheus.Collector{m.takeovers, m.workflows, m.recovered} {
		if err := reg.Register(c); err != nil {
			return m, err
		}
	}
	return m, nil
}

// recoveredListed bounds the workflows logged one by one as recovered.
const recoveredListed = 1000

// noteRecovered logs and counts the workflows DBOS recovered at launch:
// those of this instance's executor still pending (or re-enqueued) that
// were created before launchStart, by an earlier run. One that finished in
// the moment between the launch and this look is not counted.
func (c *Checkout) noteRecovered(ctx context.Context, executorID string, launchStart time.Time) {
	recovered, err := c.listWorkflows(ctx, dbos.WithFilterExecutorIDs(executorID),
		dbos.WithFilterStatus(dbos.WorkflowStatusPending, dbos.WorkflowStatusEnqueued),
		dbos.WithFilterCreatedBefore(launchStart), dbos.WithFilterLimit(recoveredListed))
	if err != nil {
		c.logger.Warn("listing the workflows recovered at launch", slog.Any("error", err))
		return
	}
	for _, w := range recovered {
		c.logger.Info("recovered a workflow after a restart", "workflow", w.ID, "name", w.Name, "attempts", w.Attempts)
	}
	c.takeoverMetrics.recovered.Add(float64(len(recovered)))
}
