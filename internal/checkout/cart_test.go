package checkout_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// TestCartPaidAndDispatched: a cart of three lines is priced line by line,
// takes each line from stock, and is paid and dispatched as one order.
func TestCartPaidAndDispatched(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		f := setup(t, url, fastConfig)
		ctx := context.Background()
		products := map[int64]shop.Product{}
		for _, id := range []int64{1, 2, 4} {
			products[id] = f.product(t, id)
		}
		// Out of order, and product 2 in two lines: one line of 3.
		cart := []shop.Line{{ProductID: 4, Quantity: 1}, {ProductID: 2, Quantity: 2}, {ProductID: 1, Quantity: 1}, {ProductID: 2, Quantity: 1}}
		placed, err := f.co.Place(ctx, "cart-1", checkout.Request{Lines: cart, Email: "ada@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		want := products[1].PriceCents + 3*products[2].PriceCents + products[4].PriceCents
		if placed.TotalCents != want {
			t.Errorf("total %d cents, want %d", placed.TotalCents, want)
		}
		// The same key and cart answer the same; another cart is a conflict.
		again, err := f.co.Place(ctx, "cart-1", checkout.Request{Lines: cart, Email: "ada@example.com"})
		if err != nil || again != placed {
			t.Errorf("the same cart again: %+v, %v; want %+v", again, err, placed)
		}
		_, err = f.co.Place(ctx, "cart-1", checkout.Request{Lines: cart[:2]})
		wantKind(t, err, shop.ErrConflict)

		if _, err := f.co.Pay(ctx, placed.PaymentID, shop.PaymentPaid); err != nil {
			t.Fatal(err)
		}
		f.awaitOrder(t, placed.OrderID, shop.StatusDispatched)
		found, err := f.co.FindByKey(ctx, "cart-1")
		if err != nil {
			t.Fatal(err)
		}
		if found.Quantity != 5 || found.Email != "ada@example.com" || len(found.Lines) != 3 {
			t.Fatalf("order %+v, want 5 units in 3 lines for ada@example.com", found)
		}
		for i, id := range []int64{1, 2, 4} {
			l := found.Lines[i]
			wantQty := map[int64]int{1: 1, 2: 3, 4: 1}[id]
			if l.ProductID != id || l.Quantity != wantQty || l.UnitPriceCents != products[id].PriceCents || l.ProductName != products[id].Name {
				t.Errorf("line %d: %+v, want %d of %s at %d", i, l, wantQty, products[id].Name, products[id].PriceCents)
			}
			if got := f.product(t, id).Inventory; got != products[id].Inventory-wantQty {
				t.Errorf("product %d stock %d, want %d", id, got, products[id].Inventory-wantQty)
			}
		}
		f.audit(t)
	})
}

// TestCartOutOfStockReservesNothing: a cart one line of which the stock
// cannot cover takes nothing from stock, and the answer names that line.
func TestCartOutOfStockReservesNothing(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		f := setup(t, url, fastConfig)
		ctx := context.Background()
		// Product 3 down to 1 in stock, as sales would leave it.
		if _, err := f.co.Place(ctx, "sold-9", checkout.Request{ProductID: 3, Quantity: f.product(t, 3).Inventory - 1}); err != nil {
			t.Fatal(err)
		}
		before := map[int64]int{}
		for _, id := range []int64{1, 2, 3} {
			before[id] = f.product(t, id).Inventory
		}
		// Lines before and after the short one: both must be put back.
		_, err := f.co.Place(ctx, "short-cart", checkout.Request{Lines: []shop.Line{
			{ProductID: 1, Quantity: 2}, {ProductID: 3, Quantity: 2}, {ProductID: 2, Quantity: 1}}})
		wantKind(t, err, shop.ErrConflict)
		var shopErr *shop.Error
		if !errors.As(err, &shopErr) || !strings.Contains(shopErr.Message, f.product(t, 3).Name) {
			t.Fatalf("error %v, want one naming %s", err, f.product(t, 3).Name)
		}
		short, _ := shopErr.Detail["unavailable"].([]shop.Shortage)
		if len(short) != 1 || short[0].ProductID != 3 || short[0].Wanted != 2 || short[0].Available != 1 {
			t.Errorf("unavailable %+v, want product 3 alone, 2 wanted, 1 available", shopErr.Detail["unavailable"])
		}
		for id, n := range before {
			if got := f.product(t, id).Inventory; got != n {
				t.Errorf("product %d stock %d, want %d untouched", id, got, n)
			}
		}
		found, err := f.co.FindByKey(ctx, "short-cart")
		if err != nil || found.Status != shop.StatusCancelled || found.CancelReason != shop.ReasonOutOfStock {
			t.Errorf("order %+v, %v; want cancelled out of stock", found.Order, err)
		}
		f.audit(t)
	})
}

// TestLatePaymentOnSeedWebhookIsOwedBack: a payment reported on the seed's
// webhook after its checkout gave up is refused, but recorded as taken and
// owed back; the seed's webhook has no refund, so it goes to the operator.
// Its redelivery records nothing more.
func TestLatePaymentOnSeedWebhookIsOwedBack(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		cfg := fastConfig
		cfg.PaymentTimeout = 300 * time.Millisecond
		f := setup(t, url, cfg)
		ctx := context.Background()
		placed, err := f.co.Place(ctx, "late-seed", checkout.Request{ProductID: 1, Quantity: 2})
		if err != nil {
			t.Fatal(err)
		}
		f.awaitOrder(t, placed.OrderID, shop.StatusCancelled)
		for range 2 {
			_, err = f.co.Pay(ctx, placed.PaymentID, shop.PaymentPaid)
			wantKind(t, err, shop.ErrConflict)
			if !strings.Contains(err.Error(), "refunded") {
				t.Errorf("late payment answered %q, want it to say the payment will be refunded", err)
			}
		}
		p := awaitRefund(t, f, placed.PaymentID, shop.RefundAttention)
		if p.AmountCents != placed.TotalCents || p.OrderID != placed.OrderID || !strings.Contains(p.RefundNote, "by hand") {
			t.Errorf("payment %+v, want %d cents of order %d, noted to refund by hand", p, placed.TotalCents, placed.OrderID)
		}
		owed, err := store.PaymentsOwed(ctx, f.db.Q(), 10)
		if err != nil || len(owed) != 1 {
			t.Errorf("payments owed %+v, %v; want the one", owed, err)
		}
		found, err := f.co.FindByKey(ctx, "late-seed")
		if err != nil || found.Refund != shop.RefundAttention {
			t.Errorf("order refund %q, %v; want %q", found.Refund, err, shop.RefundAttention)
		}
		f.audit(t)
	})
}

// awaitRefund waits for the payment's refund to reach state.
func awaitRefund(t testing.TB, f fixture, ref, state string) store.Payment {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := store.GetPayment(context.Background(), f.db.Q(), ref)
		if err != nil && !errors.Is(err, shop.ErrNotFound) {
			t.Fatal(err)
		}
		if p.RefundState == state {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment %s: refund state %q, want %q", ref, p.RefundState, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
