package checkout_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/checkout/checkouttest"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/receipt/smtptest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// TestTwoInstancesSweepEachOrderOnce: two instances of the shop on one
// PostgreSQL, both sweeping the dispatches due, dispatch every paid order
// once, no sooner than its last step (the audit), count it once between
// them, and send its dispatched receipt once.
func TestTwoInstancesSweepEachOrderOnce(t *testing.T) {
	url := dbtest.NewDatabase(t, "postgres")
	ctx := context.Background()
	mail := smtptest.Start(t, smtptest.Options{})
	sender, err := receipt.NewSender(mail.URL("shop@example.com"), dbtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := checkout.Config{PaymentTimeout: 30 * time.Second, DispatchSteps: 3, DispatchInterval: 20 * time.Millisecond}
	var instances []*checkout.Checkout
	var registries []*prometheus.Registry
	var db *store.DB
	for _, id := range []string{"a", "b"} {
		registry := prometheus.NewRegistry()
		d, co := checkouttest.LaunchWith(t, url, checkout.LaunchConfig{Checkout: cfg, ExecutorID: id, Logger: dbtest.Logger(t),
			Metrics: registry, Receipts: sender})
		instances, registries, db = append(instances, co), append(registries, registry), d
	}

	const orders = 40
	for i := range orders {
		co := instances[i%2]
		key := fmt.Sprintf("swept-%d", i)
		paymentID, err := co.Start(ctx, key, checkout.Request{ProductID: 4, Quantity: 1, Email: key + "@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := instances[(i+1)%2].Pay(ctx, paymentID, shop.PaymentPaid); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		listed, err := store.ListOrders(ctx, db.Q(), 2*orders)
		if err != nil {
			t.Fatal(err)
		}
		dispatched := 0
		for _, o := range listed {
			if o.Status == shop.StatusDispatched {
				dispatched++
			}
		}
		if dispatched == orders {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders dispatched after 30 s", dispatched, orders)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := mail.WaitFor(2*orders, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // for a receipt sent twice to show
	sent := map[string]int{}
	for id, messages := range mail.ByMessageID() {
		order, stage, ok := receipt.ParseMessageID(id)
		if !ok {
			t.Fatalf("an unexpected receipt %s", id)
		}
		sent[fmt.Sprintf("%d/%s", order, stage)] += len(messages)
	}
	if len(sent) != 2*orders {
		t.Errorf("%d receipts, want a paid and a dispatched one for each of %d orders", len(sent), orders)
	}
	for key, n := range sent {
		if n != 1 {
			t.Errorf("receipt %s was sent %d times", key, n)
		}
	}
	var counted float64
	for _, r := range registries {
		counted += dispatchedCount(t, r)
	}
	if counted != orders {
		t.Errorf("the instances counted %v dispatches between them, want %d", counted, orders)
	}
	if breaches, err := store.Audit(ctx, db.Q()); err != nil || len(breaches) != 0 {
		t.Errorf("breaches %q, %v", breaches, err)
	}
}

// dispatchedCount is an instance's count of the orders it dispatched
// (widgetstore_orders_settled_total{outcome="dispatched"}).
func dispatchedCount(t *testing.T, registry *prometheus.Registry) float64 {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "widgetstore_orders_settled_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "dispatched" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatal("no widgetstore_orders_settled_total{outcome=\"dispatched\"}")
	return 0
}
