package checkout

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// TestVersionsDispatchTheirOwnWay: a checkout of version4, as
// widgetstore-4 started it, still waits for its dispatch and marks its
// order DISPATCHED itself (checkout.markDispatched), ending DISPATCHED,
// and the sweep leaves its order alone; one of version5 ends when its
// order is paid, without that step, and the sweep dispatches the order
// once its last step is due.
func TestVersionsDispatchTheirOwnWay(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		if err := db.Migrate(ctx, dbtest.Logger(t)); err != nil {
			t.Fatal(err)
		}
		// A dispatch long enough (0.6 s) that the checkout reads its order paid
		// before the sweep may dispatch it.
		cfg := Config{PaymentTimeout: 30 * time.Second, DispatchSteps: 3, DispatchInterval: 200 * time.Millisecond}
		c, err := Launch(ctx, db, LaunchConfig{Checkout: cfg, ExecutorID: "test", Logger: dbtest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.Shutdown(10 * time.Second); err != nil {
				t.Error(err)
			}
		})

		for _, tc := range []struct {
			version   int
			want      shop.OrderStatus // the checkout's result
			ownsSteps bool             // it runs checkout.markDispatched
		}{
			{version4, shop.StatusDispatched, true},
			{version5, shop.StatusPaid, false},
		} {
			key := "version-" + string(rune('0'+tc.version))
			handle, err := dbos.RunWorkflow(c.dbosCtx, c.checkout, input{ProductID: 1, Quantity: 1, Version: tc.version}, dbos.WithWorkflowID(key))
			if err != nil {
				t.Fatal(err)
			}
			// As a request that finds the checkout started reads it: from
			// its records, or handed off.
			waiter := c.placements.register(key)
			placed, err := c.readPlacement(ctx, key, waiter)
			c.placements.giveUp(waiter)
			if err != nil || placed.PaymentID == "" {
				t.Fatalf("%s: the placement %+v, %v", key, placed, err)
			}
			paid, err := c.Pay(ctx, placed.PaymentID, shop.PaymentPaid)
			if err != nil {
				t.Fatal(err)
			}
			result, err := handle.GetResult()
			if err != nil || result.Status != tc.want || result.OrderID != paid.ID {
				t.Fatalf("%s: the checkout's result %+v, %v; want order %d %s", key, result, err, paid.ID, tc.want)
			}
			steps, err := dbos.GetWorkflowSteps(c.dbosCtx, key)
			if err != nil {
				t.Fatal(err)
			}
			names := make([]string, len(steps))
			for i, s := range steps {
				names[i] = s.StepName
			}
			if slices.Contains(names, "checkout.markDispatched") != tc.ownsSteps {
				t.Errorf("%s: the checkout's steps %q; want markDispatched among them: %v", key, names, tc.ownsSteps)
			}
			var order shop.Order
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if order, err = store.GetOrder(ctx, db.Q(), paid.ID); err != nil {
					t.Fatal(err)
				}
				if order.Status == shop.StatusDispatched || time.Now().After(deadline) {
					break
				}
			}
			if order.Status != shop.StatusDispatched {
				t.Errorf("%s: the order is %s 10 s after its payment, want DISPATCHED", key, order.Status)
			}
		}
		if breaches, err := store.Audit(ctx, db.Q()); err != nil || len(breaches) != 0 {
			t.Errorf("breaches %q, %v", breaches, err)
		}
	})
}
