package checkout

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/store"
)

// ApplicationVersion is recorded with every workflow. DBOS recovers and
// dequeues only the workflows of its own version, and its default is a
// hash of the binary, so any rebuild would strand the workflows in flight.
// It names the sequence of steps that a new checkout takes: a build that
// changes it (a step added, removed or moved, behind dbos.Patch) gets a new
// version, so that instances of an older build, which would fail on the
// new checkouts' histories, never run them; and it lists in
// AdoptedVersions the older versions whose checkouts it finishes.
// docs/design.md ("Changing a workflow") says how.
//
// widgetstore-2: the checkout places its order in one step, waits for the
// webhook's word with Recv and dispatches inline; the payment and dispatch
// workflows of widgetstore-1 are gone, and a build of this version does not
// run the checkouts a widgetstore-1 build left in flight.
//
// widgetstore-3: the checkout screens its order in placeOrder's
// transaction, behind the patch "screenOrder"; the checkouts of
// widgetstore-2 replay without it.
//
// widgetstore-4: the checkout screens without the patch's marker and
// waits for its dispatch without a durable sleep, its input saying it was
// started by this build (input.Version); the checkouts of widgetstore-3
// and widgetstore-2 replay through both.
// Its input and its steps' outputs hold no personal data (record.go).
//
// widgetstore-5: the checkout's input says version5 (record.go); the
// checkouts of widgetstore-4 replay as they ran.
const ApplicationVersion = "widgetstore-5"

// AdoptedVersions are the older application versions whose workflows this
// build finishes: the histories of every workflow registered here (the
// checkout's, and the refunds', the retention's and the others', which
// have not changed since) replay on its code; dbos.Patch takes the
// checkouts down their old path. At launch it takes on those that its own
// instance left pending, and those waiting on DBOS's recovery queue
// (store.DB.AdoptWorkflows); taking over a silent instance, that
// instance's. A version is dropped from the list when a build can no
// longer replay its histories (dbos.DeprecatePatch).
var AdoptedVersions = []string{"widgetstore-4", "widgetstore-3", "widgetstore-2"}

// LaunchConfig is what Launch needs besides the database.
type LaunchConfig struct {
	Checkout   Config
	Retention  Retention
	ExecutorID string       // stable per instance: DBOS recovers its own executor's workflows
	Logger     *slog.Logger // the app's; DBOS gets it at Warn level
	// Metrics is where the checkout's metrics are registered; nil, in a
	// registry of their own that no one reads.
	Metrics prometheus.Registerer
	// Register, when set, registers workflows of the program's other parts
	// (the demo payment provider's) on DBOS before it launches: DBOS
	// recovers only workflows registered by then.
	Register func(dbos.Context) error
	// Provider is the payment provider that carts are paid through; nil
	// for none (carts are then refused, and a payment owed back is left
	// to the operator).
	Provider payment.Provider
	// Receipts sends the customers' receipts; nil, to the log.
	Receipts receipt.Sender
	// PublicURL is the shop's address as customers reach it, for the
	// links in receipts; "" for none.
	PublicURL string
	// Tracer, when set, gets a span per checkout step (tracing.go); nil,
	// the steps run without.
	Tracer trace.TracerProvider
}

// Launch starts DBOS on db, which must be migrated (store.DB.Migrate),
// registers the checkout and recovers the checkouts a previous run left
// pending. DBOS and the app share db's one handle. Stop it with Shutdown,
// then close db.
func Launch(ctx context.Context, db *store.DB, cfg LaunchConfig) (*Checkout, error) {
	var err error
	if cfg.Checkout, err = cfg.Checkout.checked(); err != nil {
		return nil, err
	}
	config := dbos.Config{
		AppName:            appName,
		ApplicationVersion: ApplicationVersion,
		ExecutorID:         cfg.ExecutorID,
		Logger:             DBOSLogger(cfg.Logger),
		SQLiteSystemDB:     db.SQLite,
		SystemDBPool:       db.Postgres,
	}
	// Without ctx's cancellation: DBOS cancels, durably, every workflow whose
	// context is cancelled, and a SIGTERM would cancel ctx. Shutdown, which
	// leaves workflows pending for the next start, is Checkout.Shutdown's job.
	dbosCtx, err := dbos.NewContext(context.WithoutCancel(ctx), config)
	if err != nil {
		return nil, fmt.Errorf("initializing DBOS: %w", err)
	}
	if err := adopt(ctx, db, dbosCtx, dbos.GetExecutorID(dbosCtx), cfg.Logger); err != nil {
		return nil, err
	}
	ds, err := newDataSource(dbosCtx, db)
	if err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	metrics, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	c := &Checkout{dbosCtx: dbosCtx, db: db, ds: ds, cfg: cfg.Checkout, retention: cfg.Retention, logger: cfg.Logger, metrics: metrics,
		provider: cfg.Provider, receipts: cfg.Receipts, receiptQueue: make(chan queuedReceipt, receiptsQueued), publicURL: strings.TrimSuffix(cfg.PublicURL, "/"), executorID: cmp.Or(cfg.ExecutorID, "local")}
	if c.receipts == nil {
		c.receipts = receipt.Log{Logger: cfg.Logger}
	}
	if cfg.Tracer != nil {
		c.tracer = cfg.Tracer.Tracer(tracerName)
	}
	if c.takeoverMetrics, err = newTakeoverMetrics(cfg.Metrics); err != nil {
		return nil, fmt.Errorf("registering the takeover's metrics: %w", err)
	}
	if err := cfg.Metrics.Register(newWorkflowCollector(c)); err != nil {
		return nil, fmt.Errorf("registering the workflows' metrics: %w", err)
	}
	dbos.RegisterWorkflow(dbosCtx, c.checkout, dbos.WithWorkflowName(WorkflowCheckout))
	dbos.RegisterWorkflow(dbosCtx, c.retain, dbos.WithWorkflowName(WorkflowRetention))
	dbos.RegisterWorkflow(dbosCtx, c.refund, dbos.WithWorkflowName(WorkflowRefund))
	if cfg.Register != nil {
		if err := cfg.Register(dbosCtx); err != nil {
			return nil, fmt.Errorf("registering workflows: %w", err)
		}
	}
	launchStart := time.Now()
	c.launchedAt = launchStart
	if err := dbos.Launch(dbosCtx); err != nil {
		return nil, fmt.Errorf("launching DBOS: %w", err)
	}
	c.noteRecovered(ctx, cmp.Or(cfg.ExecutorID, "local"), launchStart)
	watchCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var watching sync.WaitGroup
	watching.Go(func() { c.runWatch(watchCtx) })
	watching.Go(func() { c.runProbe(watchCtx) })
	watching.Go(func() { c.pollSettlements(watchCtx) })
	watching.Go(func() { c.runDispatchSweep(watchCtx) })
	watching.Go(func() { c.sendQueuedReceipts(watchCtx) })
	c.stopWatch = func() { cancel(); watching.Wait() }
	return c, nil
}

// checked returns c with its unset refund bounds set to the default ones,
// or an error when c is invalid.
func (c Config) checked() (Config, error) {
	if c.PaymentTimeout <= 0 || c.DispatchSteps <= 0 || c.DispatchInterval < 0 || c.PendingUnitsPerClient < 0 ||
		c.RefundAttempts < 0 || c.RefundBackoff < 0 {
		return c, fmt.Errorf("invalid checkout config %+v", c)
	}
	c.RefundAttempts = cmp.Or(c.RefundAttempts, DefaultConfig.RefundAttempts)
	c.RefundBackoff = cmp.Or(c.RefundBackoff, DefaultConfig.RefundBackoff)
	return c, nil
}

// newDataSource is the DBOS data source of the shop's steps, on db's one
// handle, which DBOS shares.
func newDataSource(dbosCtx dbos.Context, db *store.DB) (*dbos.DataSource, error) {
	var ds *dbos.DataSource
	var err error
	if db.SQLite != nil {
		ds, err = dbos.NewDataSource(dbosCtx, db.SQLite, dbos.WithDataSourceName("shop"))
	} else {
		ds, err = dbos.NewDataSource(dbosCtx, db.Postgres, dbos.WithDataSourceName("shop"))
	}
	if err != nil {
		return nil, fmt.Errorf("creating the DBOS data source: %w", err)
	}
	return ds, nil
}

// Shutdown stops DBOS within timeout. Workflows in flight stay pending in
// the database, and the next Launch on it recovers them.
func (c *Checkout) Shutdown(timeout time.Duration) error {
	c.stopWatch()
	if err := dbos.Shutdown(c.dbosCtx, timeout); err != nil {
		return fmt.Errorf("shutting DBOS down: %w", err)
	}
	return nil
}

// DBOSLogger is what DBOS gets of the app's logger: DBOS logs at INFO per
// workflow (and at WARN per Recv that times out: every unpaid order of a
// checkout before version5), so Warn keeps what matters.
func DBOSLogger(logger *slog.Logger) *slog.Logger { return slog.New(warnOnly{logger.Handler()}) }

// warnOnly passes on records at Warn and above.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelWarn && h.Handler.Enabled(ctx, level)
}

func (h warnOnly) WithAttrs(attrs []slog.Attr) slog.Handler {
	return warnOnly{h.Handler.WithAttrs(attrs)}
}

func (h warnOnly) WithGroup(name string) slog.Handler { return warnOnly{h.Handler.WithGroup(name)} }
