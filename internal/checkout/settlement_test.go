package checkout_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// TestCheckoutWokenBySettlementElsewhere, on both engines: an order settled
// by a transaction of another process (here, store.SettlePayment run
// directly, as another instance's webhook runs it: it writes the row and
// wakes nothing in this process) is found by the poll of the settlements,
// and its checkout goes on long before its payment deadline. One paid
// through this process is woken at once. Neither takes a step for the
// payment, nor leaves a message in DBOS's notifications: a seed checkout
// of version5 reads the order's row, and ends.
func TestCheckoutWokenBySettlementElsewhere(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		cfg := fastConfig
		cfg.PaymentTimeout = time.Minute
		f := setup(t, url, cfg)
		ctx := context.Background()

		elsewhere, err := f.co.Start(ctx, "settled-elsewhere", checkout.Request{ProductID: 1, Quantity: 1})
		if err != nil {
			t.Fatal(err)
		}
		var order shop.Order
		if err := f.db.InTx(ctx, func(tx dbos.Tx) error {
			s, err := store.SettlePayment(ctx, tx, store.PaymentReport{PaymentID: elsewhere, Status: shop.PaymentPaid,
				Ref: elsewhere, Provider: store.SeedProvider}, time.Now())
			order = s.Order
			return err
		}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		f.awaitCheckoutEnded(t, "settled-elsewhere")
		if waited := time.Since(start); waited > 10*time.Second {
			t.Errorf("the checkout of an order paid elsewhere went on after %v, want within a few polls of a second", waited)
		}

		here, err := f.co.Start(ctx, "settled-here", checkout.Request{ProductID: 1, Quantity: 1})
		if err != nil {
			t.Fatal(err)
		}
		paid, err := f.co.Pay(ctx, here, shop.PaymentPaid)
		if err != nil {
			t.Fatal(err)
		}
		f.awaitCheckoutEnded(t, "settled-here")
		f.awaitOrder(t, order.ID, shop.StatusDispatched) // by the sweep
		f.awaitOrder(t, paid.ID, shop.StatusDispatched)

		for _, key := range []string{"settled-elsewhere", "settled-here"} {
			d, err := f.co.Workflow(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range d.Steps {
				names = append(names, s.Name)
			}
			if slices.Contains(names, "checkout.settlement") || slices.Contains(names, "DBOS.recv") {
				t.Errorf("checkout %s took the steps %q, want no step for its payment: neither a settlement nor a Recv", key, names)
			}
		}
		table := "notifications"
		if f.db.Engine() == "postgres" {
			table = "dbos.notifications"
		}
		var messages int
		if err := f.db.Q().QueryRow(ctx, `SELECT COUNT(*) FROM `+table).Scan(&messages); err != nil {
			t.Fatal(err)
		}
		if messages != 0 {
			t.Errorf("%d messages in DBOS's notifications, want none", messages)
		}
		f.audit(t)
	})
}

// awaitCheckoutEnded waits for the checkout of key to end (SUCCESS): a
// checkout of version5 ends at its order's settlement, the dispatch
// sweep dispatching a paid order after it.
func (f fixture) awaitCheckoutEnded(t testing.TB, key string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		d, err := f.co.Workflow(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == "SUCCESS" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkout %s is %s after 30 s, want SUCCESS", key, d.Status)
		}
	}
}

// TestSeedCheckoutStepsOnlyToCancel, on both engines: a seed checkout of
// version5 records a step after placeOrder only when its deadline passed
// unpaid, the settlement that cancels its order; refused, it ends as its
// order's row says, with none.
func TestSeedCheckoutStepsOnlyToCancel(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		cfg := fastConfig
		cfg.PaymentTimeout = 500 * time.Millisecond
		f := setup(t, url, cfg)
		ctx := context.Background()
		if _, err := f.co.Start(ctx, "timed-out", checkout.Request{ProductID: 1, Quantity: 1}); err != nil {
			t.Fatal(err)
		}
		refused, err := f.co.Start(ctx, "refused", checkout.Request{ProductID: 1, Quantity: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.co.Pay(ctx, refused, shop.PaymentFailed); err != nil {
			t.Fatal(err)
		}
		for key, settlement := range map[string]bool{"timed-out": true, "refused": false} {
			f.awaitCheckoutEnded(t, key)
			d, err := f.co.Workflow(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range d.Steps {
				names = append(names, s.Name)
			}
			if slices.Contains(names, "checkout.settlement") != settlement || d.Order == nil || d.Order.Status != shop.StatusCancelled {
				t.Errorf("checkout %s took the steps %q, its order %+v; want the settlement %v, the order CANCELLED", key, names, d.Order, settlement)
			}
		}
		f.audit(t)
	})
}
