package store_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// TestPlaceOrderHoldsTheClientToItsLimit: an order that would take its
// client past its limit is not placed, and the refusal says what the
// client holds and until when; the checkout's own order, found again, is
// returned as it is even at the limit; other clients, and orders of no
// client, are not held to it.
func TestPlaceOrderHoldsTheClientToItsLimit(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := openMigrated(t, url)
		deadline := time.Now().Add(time.Minute).Truncate(time.Millisecond)
		place := func(key, client string, quantity int) store.Placed {
			t.Helper()
			var placed store.Placed
			err := db.InTx(ctx, func(tx dbos.Tx) error {
				var err error
				placed, err = store.PlaceOrder(ctx, tx, store.NewOrder{CheckoutID: key, PaymentID: "pay-" + key, Lines: []shop.Line{{ProductID: 1, Quantity: quantity}},
					PaymentDeadline: deadline, DispatchSteps: 1, DispatchInterval: time.Second, Client: client, ClientLimit: 10})
				return err
			})
			if err != nil {
				t.Fatalf("placing %s: %v", key, err)
			}
			return placed
		}

		first := place("first", "192.0.2.1", 6)
		if first.Limited || first.Status != shop.StatusPending || first.ID == 0 {
			t.Fatalf("the first order: %+v, want it PENDING", first)
		}
		if p := place("second", "192.0.2.1", 5); !p.Limited || p.ID != 0 || p.Held != 6 || !p.HeldUntil.Equal(deadline) {
			t.Errorf("past the limit: %+v, want nothing placed, 6 units held until %v", p, deadline)
		}
		if p := place("first", "192.0.2.1", 6); p.Limited || p.ID != first.ID {
			t.Errorf("the first checkout again, at the limit: %+v, want its order %d", p, first.ID)
		}
		if p := place("third", "192.0.2.1", 4); p.Limited {
			t.Errorf("up to the limit: %+v, want it placed", p)
		}
		if p := place("other", "192.0.2.2", 10); p.Limited {
			t.Errorf("another client: %+v, want it placed", p)
		}
		if p := place("internal", "", 10); p.Limited {
			t.Errorf("no client: %+v, want it placed", p)
		}
		if breaches, err := store.Audit(ctx, db.Q()); err != nil || len(breaches) != 0 {
			t.Errorf("breaches %q, %v", breaches, err)
		}
	})
}

// TestPlacedReadsARecordedOrder: a checkout recorded by a build whose
// placeOrder step returned a bare shop.Order, as JSON, replays as the same
// order, not refused.
func TestPlacedReadsARecordedOrder(t *testing.T) {
	order := shop.Order{ID: 7, CheckoutID: "k", PaymentID: "pay_X", ProductID: 1, Quantity: 2, TotalCents: 19998,
		Status: shop.StatusPending, PaymentDeadline: time.UnixMilli(1_700_000_000_000).UTC(), DispatchSteps: 10, DispatchInterval: time.Second}
	recorded, err := json.Marshal(order)
	if err != nil {
		t.Fatal(err)
	}
	var placed store.Placed
	if err := json.Unmarshal(recorded, &placed); err != nil {
		t.Fatal(err)
	}
	if placed.Limited || !reflect.DeepEqual(placed.Order, order) {
		t.Errorf("replayed %+v, want the order %+v, not refused", placed, order)
	}
}
