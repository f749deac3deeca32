package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// placePaid places one order of one of product for each key, by a
// checkout of version, and pays it at paidAt; it returns the orders' ids
// by key.
func placePaid(t *testing.T, db *store.DB, product int64, version int, paidAt time.Time, keys ...string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	ids := map[string]int64{}
	err := db.InTx(ctx, func(tx dbos.Tx) error {
		for _, key := range keys {
			placed, err := store.PlaceOrder(ctx, tx, store.NewOrder{CheckoutID: key, PaymentID: "pay-" + key, Lines: []shop.Line{{ProductID: product, Quantity: 1}},
				PaymentDeadline: paidAt.Add(time.Hour), DispatchSteps: 2, DispatchInterval: time.Second, CheckoutVersion: version})
			if err != nil {
				return err
			}
			s, err := store.SettlePayment(ctx, tx, store.PaymentReport{PaymentID: "pay-" + key, Status: shop.PaymentPaid,
				Ref: "ref-" + key, Provider: store.SeedProvider}, paidAt)
			if err != nil {
				return err
			}
			if !s.Changed || s.Order.Status != shop.StatusPaid {
				return fmt.Errorf("paying %s: %+v", key, s)
			}
			ids[key] = placed.ID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// dispatchDue runs store.DispatchDue in a transaction of its own.
func dispatchDue(t *testing.T, db *store.DB, now time.Time, limit int) []shop.Order {
	t.Helper()
	var orders []shop.Order
	err := db.InTx(context.Background(), func(tx dbos.Tx) error {
		var err error
		orders, err = store.DispatchDue(context.Background(), tx, now, limit)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return orders
}

// TestDispatchDueWaitsForTheLastStep: the sweep's query dispatches no
// order before its last progress step is due (paid at, plus two steps of
// a second), takes only the orders of the checkouts of version 5 and
// later, and each once.
func TestDispatchDueWaitsForTheLastStep(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := openMigrated(t, url)
		paidAt := time.Now().Truncate(time.Millisecond)
		swept := placePaid(t, db, 1, store.SweptFromVersion, paidAt, "v5-a", "v5-b")
		own := placePaid(t, db, 1, store.SweptFromVersion-1, paidAt, "v4")
		later := placePaid(t, db, 1, store.SweptFromVersion, paidAt.Add(time.Second), "v5-later")

		for _, early := range []time.Duration{0, time.Second, 2*time.Second - time.Millisecond} {
			if due, err := store.AnyDispatchDue(ctx, db.Q(), paidAt.Add(early)); err != nil || due {
				t.Errorf("%v after the payment, an order is said due (%v, %v): its last step is due at 2 s", early, due, err)
			}
			if got := dispatchDue(t, db, paidAt.Add(early), 100); len(got) != 0 {
				t.Errorf("%v after the payment, the sweep dispatched %+v: its last step is due at 2 s", early, got)
			}
		}
		if due, err := store.AnyDispatchDue(ctx, db.Q(), paidAt.Add(2*time.Second)); err != nil || !due {
			t.Errorf("at 2 s no order is said due (%v, %v)", due, err)
		}
		if overdue, err := store.DispatchesOverdue(ctx, db.Q(), paidAt.Add(2*time.Second), 100); err != nil || len(overdue) != 2 {
			t.Errorf("overdue at 2 s: %q, %v; want the two orders due", overdue, err)
		}
		got := dispatchDue(t, db, paidAt.Add(2*time.Second), 100)
		if len(got) != 2 || got[0].Status != shop.StatusDispatched || got[1].Status != shop.StatusDispatched {
			t.Fatalf("at 2 s the sweep dispatched %+v, want the two orders of version 5 paid first", got)
		}
		for _, o := range got {
			if o.ID != swept["v5-a"] && o.ID != swept["v5-b"] {
				t.Errorf("the sweep dispatched order %d (%s), not one due", o.ID, o.CheckoutID)
			}
		}
		if again := dispatchDue(t, db, paidAt.Add(2*time.Second), 100); len(again) != 0 {
			t.Errorf("a second sweep dispatched %+v again", again)
		}
		if got := dispatchDue(t, db, paidAt.Add(time.Hour), 100); len(got) != 1 || got[0].ID != later["v5-later"] {
			t.Errorf("an hour on, the sweep dispatched %+v, want only %s's order (never the version 4 checkout's)", got, "v5-later")
		}
		if o, err := store.GetOrder(ctx, db.Q(), own["v4"]); err != nil || o.Status != shop.StatusPaid {
			t.Errorf("the version 4 checkout's order: %+v, %v; want it PAID, its own checkout's to dispatch", o, err)
		}
		if breaches, err := store.Audit(ctx, db.Q()); err != nil || len(breaches) != 0 {
			t.Errorf("breaches %q, %v", breaches, err)
		}
	})
}

// TestDispatchDueOnceWithTwoSweepers: two instances sweeping one
// PostgreSQL at once (two pools, small batches, so that their updates
// meet on the same rows) dispatch every order due exactly once.
func TestDispatchDueOnceWithTwoSweepers(t *testing.T) {
	url := dbtest.NewDatabase(t, "postgres")
	ctx := context.Background()
	a, b := openMigrated(t, url), openMigrated(t, url)
	const orders = 200 // product 4's stock
	keys := make([]string, orders)
	for i := range keys {
		keys[i] = fmt.Sprintf("race-%d", i)
	}
	paidAt := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	placePaid(t, a, 4, store.SweptFromVersion, paidAt, keys...)

	var mu sync.Mutex
	dispatched := map[int64]int{}
	var wg sync.WaitGroup
	for _, db := range []*store.DB{a, b, a, b} {
		wg.Go(func() {
			for {
				var got []shop.Order
				err := db.InTx(ctx, func(tx dbos.Tx) error {
					var err error
					got, err = store.DispatchDue(ctx, tx, time.Now(), 7)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, o := range got {
					dispatched[o.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(dispatched) != orders {
		t.Errorf("%d orders dispatched, want %d", len(dispatched), orders)
	}
	for id, n := range dispatched {
		if n != 1 {
			t.Errorf("order %d was dispatched %d times", id, n)
		}
	}
	if breaches, err := store.Audit(ctx, a.Q()); err != nil || len(breaches) != 0 {
		t.Errorf("breaches %q, %v", breaches, err)
	}
}
