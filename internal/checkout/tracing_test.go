package checkout_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/checkout/checkouttest"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
)

// TestTracedCheckoutRecovered: a checkout left waiting for its payment by
// a shop that stopped, and recovered by the next launch, which traces,
// has spans without a parent (there is no request), each with the
// workflow's and the order's ids: its placeOrder again, replayed from the
// checkpoint, and the steps after; the sweep that dispatches its order has
// a span of its own naming the order. Its order and its books are as
// without tracing.
func TestTracedCheckoutRecovered(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		ctx := context.Background()
		db := checkouttest.Open(t, url, dbtest.Logger(t))
		launch := checkout.LaunchConfig{Checkout: fastConfig, ExecutorID: "test", Logger: dbtest.Logger(t)}
		co, err := checkout.Launch(ctx, db, launch)
		if err != nil {
			t.Fatal(err)
		}
		const key = "recovered-1"
		paymentID, err := co.Start(ctx, key, checkout.Request{ProductID: 1, Quantity: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := co.Shutdown(10 * time.Second); err != nil { // the checkout stays pending, waiting
			t.Fatal(err)
		}
		db = checkouttest.Open(t, url, dbtest.Logger(t)) // DBOS closed the one it was given

		spans := tracetest.NewInMemoryExporter()
		tracer := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)) // exported as each ends
		t.Cleanup(func() { tracer.Shutdown(ctx) })
		launch.Tracer = tracer
		co, err = checkout.Launch(ctx, db, launch)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := co.Shutdown(10 * time.Second); err != nil {
				t.Error(err)
			}
		})
		order, err := co.Pay(ctx, paymentID, shop.PaymentPaid)
		if err != nil {
			t.Fatal(err)
		}
		f := fixture{db: db, co: co}
		f.awaitOrder(t, order.ID, shop.StatusDispatched)
		f.audit(t)

		// Paid, the seed checkout ends without a step after placeOrder's;
		// the dispatch sweep dispatches its order, in a span of its own
		// that names the order, of no checkout. The sweep's span ends
		// just after its commit, which awaitOrder may see first.
		f.awaitCheckoutEnded(t, key)
		var steps []tracetest.SpanStub // the checkout's
		var sweep *tracetest.SpanStub
		for deadline := time.Now().Add(5 * time.Second); sweep == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			steps = steps[:0]
			for _, s := range spans.GetSpans() {
				if s.Name == "checkout.dispatchSweep" {
					sweep = &s
				} else {
					steps = append(steps, s)
				}
			}
		}
		var names []string
		for _, s := range steps {
			names = append(names, s.Name)
		}
		if want := []string{"checkout.placeOrder"}; !slices.Equal(names, want) {
			t.Errorf("the recovered checkout's spans: %q, want %q", names, want)
		}
		if sweep == nil {
			t.Fatalf("no span of the sweep that dispatched order %d: %q", order.ID, names)
		}
		attrs := attributes(*sweep)
		if _, ok := attrs[checkout.AttrWorkflowID]; ok || sweep.Parent.IsValid() || !slices.Equal(attrs[checkout.AttrOrderIDs].AsInt64Slice(), []int64{order.ID}) {
			t.Errorf("the sweep's span: parent %v, attributes %v; want no parent, no workflow, orders [%d]", sweep.Parent, sweep.Attributes, order.ID)
		}
		for _, s := range steps {
			attrs := attributes(s)
			if s.Parent.IsValid() || attrs[checkout.AttrWorkflowID].AsString() != key || attrs[checkout.AttrOrderID].AsInt64() != order.ID {
				t.Errorf("span %s: parent %v, attributes %v; want no parent, workflow %s, order %d", s.Name, s.Parent, s.Attributes, key, order.ID)
			}
		}
	})
}

// attributes are the span's attributes by key.
func attributes(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		attrs[kv.Key] = kv.Value
	}
	return attrs
}
