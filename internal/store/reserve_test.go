package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// TestReservationOfStockTakenSinceFailsAtCommit: on PostgreSQL a purchase
// reserves stock by the ledger's row alone, checked in its snapshot, and
// the row's trigger takes it from the product at the commit (migration
// 0018). Two purchases of all the stock, each placed while the other's
// is uncommitted, both see it; the first to commit takes it, and the
// other's commit fails as a serialization failure (which DBOS retries)
// with nothing of it kept, so the stock never goes below zero and the
// books balance. Placed again, it is cancelled out of stock.
func TestReservationOfStockTakenSinceFailsAtCommit(t *testing.T) {
	ctx := context.Background()
	db := openMigrated(t, dbtest.NewDatabase(t, "postgres"))
	var stock int
	if err := db.Q().QueryRow(ctx, `SELECT inventory FROM products WHERE product_id = 3`).Scan(&stock); err != nil {
		t.Fatal(err)
	}
	order := func(key string) store.NewOrder {
		return store.NewOrder{CheckoutID: key, PaymentID: "pay-" + key, Lines: []shop.Line{{ProductID: 3, Quantity: stock}},
			PaymentDeadline: time.Now().Add(time.Minute), DispatchSteps: 1, DispatchInterval: time.Second}
	}

	placedFirst, commitFirst := make(chan store.Placed, 1), make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- db.InTx(ctx, func(tx dbos.Tx) error {
			p, err := store.PlaceOrder(ctx, tx, order("first"))
			placedFirst <- p
			<-commitFirst
			return err
		})
	}()
	if p := <-placedFirst; p.Status != shop.StatusPending {
		t.Fatalf("the first, uncommitted: %+v, want it PENDING", p)
	}
	var second store.Placed
	if err := db.InTx(ctx, func(tx dbos.Tx) (err error) {
		second, err = store.PlaceOrder(ctx, tx, order("second"))
		return err
	}); err != nil || second.Status != shop.StatusPending {
		t.Fatalf("the second, beside the first: %+v, %v; want it PENDING and committed", second, err)
	}
	close(commitFirst)
	var pgErr *pgconn.PgError
	if err := <-firstDone; !errors.As(err, &pgErr) || pgErr.Code != "40001" {
		t.Fatalf("the first's commit, its stock taken by the second: %v, want a serialization failure (40001)", err)
	}

	var left int
	if err := db.Q().QueryRow(ctx, `SELECT inventory FROM products WHERE product_id = 3`).Scan(&left); err != nil || left != 0 {
		t.Errorf("stock %d (%v), want 0", left, err)
	}
	if _, err := store.OrderByCheckoutID(ctx, db.Q(), "first"); !errors.Is(err, shop.ErrNotFound) {
		t.Errorf("the first's order: %v, want none kept", err)
	}
	var again store.Placed
	if err := db.InTx(ctx, func(tx dbos.Tx) (err error) {
		again, err = store.PlaceOrder(ctx, tx, order("first"))
		return err
	}); err != nil || again.Status != shop.StatusCancelled || again.CancelReason != shop.ReasonOutOfStock {
		t.Errorf("the first, retried: %+v, %v; want it cancelled out of stock", again, err)
	}
	if breaches, err := store.Audit(ctx, db.Q()); err != nil || len(breaches) != 0 {
		t.Errorf("breaches %q, %v", breaches, err)
	}
}
