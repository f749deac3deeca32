package checkout_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/checkout/checkouttest"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// TestWorkflowMetrics: a scrape counts the workflows by name and status as
// the database has them, gives the oldest pending one's age and, on
// PostgreSQL, each instance's heartbeat age.
func TestWorkflowMetrics(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		db, co := checkouttest.LaunchWith(t, url, checkout.LaunchConfig{Checkout: fastConfig, ExecutorID: "test",
			Logger: dbtest.Logger(t), Metrics: reg})
		f := fixture{db: db, co: co}
		ctx := context.Background()
		for _, key := range []string{"metrics-pending", "metrics-paid"} {
			if _, err := co.Start(ctx, key, checkout.Request{ProductID: 1, Quantity: 1}); err != nil {
				t.Fatal(err)
			}
		}
		paid, err := store.OrderByCheckoutID(ctx, db.Q(), "metrics-paid")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := co.Pay(ctx, paid.PaymentID, shop.PaymentPaid); err != nil {
			t.Fatal(err)
		}
		f.awaitOrder(t, paid.ID, shop.StatusDispatched)
		if db.Postgres != nil {
			if err := store.Heartbeat(ctx, db.Q(), "other-instance", time.Second); err != nil {
				t.Fatal(err)
			}
		}

		// The workflow's outcome is written just after its last step.
		deadline := time.Now().Add(30 * time.Second)
		var got map[string]float64
		for {
			got = gather(t, reg)
			if got[`widgetstore_workflows{name="checkout.Checkout",status="SUCCESS"}`] == 1 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for series, want := range map[string]float64{
			`widgetstore_workflows{name="checkout.Checkout",status="SUCCESS"}`: 1,
			`widgetstore_workflows{name="checkout.Checkout",status="PENDING"}`: 1,
			`widgetstore_workflow_metrics_up{}`:                                1,
		} {
			if got[series] != want {
				t.Errorf("%s = %v, want %v (scraped: %v)", series, got[series], want, got)
			}
		}
		if age, ok := got[`widgetstore_workflow_oldest_pending_seconds{name="checkout.Checkout"}`]; !ok || age <= 0 || age > 60 {
			t.Errorf("the oldest pending checkout's age: %v (present: %v), want a few seconds", age, ok)
		}
		beat, ok := got[`widgetstore_executor_heartbeat_age_seconds{executor="other-instance"}`]
		if db.Postgres != nil && (!ok || beat < 0 || beat > 60) {
			t.Errorf("the other instance's heartbeat age: %v (present: %v)", beat, ok)
		}
		if db.Postgres == nil && ok {
			t.Errorf("a heartbeat age on SQLite, where there are no heartbeats")
		}
	})
}

// gather scrapes reg into series (name{label="value",...}) and values.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			series := f.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					series += ","
				}
				series += l.GetName() + `="` + l.GetValue() + `"`
			}
			series += "}"
			switch {
			case m.GetGauge() != nil:
				out[series] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[series] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}
