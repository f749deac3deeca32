package checkout_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/checkout/checkouttest"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// fastConfig keeps the tests quick: a dispatch of 3 short steps.
var fastConfig = checkout.Config{PaymentTimeout: 30 * time.Second, DispatchSteps: 3, DispatchInterval: 20 * time.Millisecond}

type fixture struct {
	db *store.DB
	co *checkout.Checkout
}

// setup launches the shop's workflows on a fresh database at url.
func setup(t testing.TB, url string, cfg checkout.Config) fixture {
	t.Helper()
	db, co := checkouttest.Launch(t, url, cfg, dbtest.Logger(t))
	return fixture{db: db, co: co}
}

func (f fixture) product(t testing.TB, id int64) shop.Product {
	t.Helper()
	p, err := store.GetProduct(context.Background(), f.db.Q(), id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// awaitOrder waits for the order to reach status, and returns it.
func (f fixture) awaitOrder(t testing.TB, id int64, status shop.OrderStatus) shop.Order {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err := store.GetOrder(context.Background(), f.db.Q(), id)
		if err != nil {
			t.Fatal(err)
		}
		if o.Status == status {
			return o
		}
		if o.Status.Final() || time.Now().After(deadline) {
			t.Fatalf("order %d is %s (%s), want %s", id, o.Status, o.CancelReason, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// audit fails the test if the books do not balance.
func (f fixture) audit(t testing.TB) {
	t.Helper()
	breaches, err := store.Audit(context.Background(), f.db.Q())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range breaches {
		t.Errorf("audit: %s", b)
	}
}

func (f fixture) orderCount(t testing.TB) int {
	t.Helper()
	orders, err := store.ListOrders(context.Background(), f.db.Q(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(orders)
}

func wantKind(t testing.TB, err, kind error) {
	t.Helper()
	var shopErr *shop.Error
	if !errors.Is(err, kind) || !errors.As(err, &shopErr) {
		t.Fatalf("got error %v, want a shop error of kind %v", err, kind)
	}
}

func TestCheckoutPaid(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		f := setup(t, url, fastConfig)
		ctx := context.Background()
		stock := f.product(t, 1).Inventory

		paymentID, err := f.co.Start(ctx, "paid-1", checkout.Request{ProductID: 1, Quantity: 2})
		if err != nil {
			t.Fatal(err)
		}
		again, err := f.co.Start(ctx, "paid-1", checkout.Request{ProductID: 1, Quantity: 2})
		if err != nil || again != paymentID {
			t.Fatalf("same key again: got %q, %v; want %q", again, err, paymentID)
		}
		// The same key for another purchase is refused.
		_, err = f.co.Start(ctx, "paid-1", checkout.Request{ProductID: 1, Quantity: 3})
		wantKind(t, err, shop.ErrConflict)
		if got := f.product(t, 1).Inventory; got != stock-2 {
			t.Errorf("stock while awaiting payment = %d, want %d", got, stock-2)
		}

		order, err := f.co.Pay(ctx, paymentID, shop.PaymentPaid)
		if err != nil {
			t.Fatal(err)
		}
		if order.Status != shop.StatusPaid && order.Status != shop.StatusDispatched {
			t.Fatalf("after payment the order is %s, want PAID or DISPATCHED", order.Status)
		}
		if order.TotalCents != 2*9999 || order.Quantity != 2 || order.CheckoutID != "paid-1" {
			t.Errorf("order = %+v, want 2 widgets for 19998 cents, checkout paid-1", order)
		}
		dispatched := f.awaitOrder(t, order.ID, shop.StatusDispatched)
		if dispatched.ProgressRemaining(time.Now()) != 0 {
			t.Errorf("dispatched with progress_remaining %d", dispatched.ProgressRemaining(time.Now()))
		}

		// A redelivered webhook answers the same and changes nothing.
		redelivered, err := f.co.Pay(ctx, paymentID, shop.PaymentPaid)
		if err != nil || redelivered.ID != order.ID {
			t.Fatalf("redelivered payment: got order %d, %v; want order %d", redelivered.ID, err, order.ID)
		}
		// A contradicting one is refused and changes nothing.
		_, err = f.co.Pay(ctx, paymentID, shop.PaymentFailed)
		wantKind(t, err, shop.ErrConflict)

		if got := f.product(t, 1).Inventory; got != stock-2 {
			t.Errorf("stock after dispatch = %d, want %d", got, stock-2)
		}
		if n := f.orderCount(t); n != 1 {
			t.Errorf("%d orders, want 1", n)
		}
		f.audit(t)
	})
}

func TestCheckoutRefused(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		f := setup(t, url, fastConfig)
		ctx := context.Background()
		stock := f.product(t, 2).Inventory

		paymentID, err := f.co.Start(ctx, "refused-1", checkout.Request{ProductID: 2, Quantity: 3})
		if err != nil {
			t.Fatal(err)
		}
		order, err := f.co.Pay(ctx, paymentID, shop.PaymentFailed)
		if err != nil {
			t.Fatal(err)
		}
		if order.Status != shop.StatusCancelled || order.CancelReason != shop.ReasonPaymentFailed {
			t.Fatalf("order is %s (%s), want CANCELLED (%s)", order.Status, order.CancelReason, shop.ReasonPaymentFailed)
		}
		if _, err := f.co.Pay(ctx, paymentID, shop.PaymentFailed); err != nil {
			t.Errorf("redelivered refusal: %v", err)
		}
		_, err = f.co.Pay(ctx, paymentID, shop.PaymentPaid)
		wantKind(t, err, shop.ErrConflict)

		if got := f.product(t, 2).Inventory; got != stock {
			t.Errorf("stock = %d, want %d: the refused order's stock is released", got, stock)
		}
		f.audit(t)
	})
}

func TestCheckoutPaymentTimeout(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		cfg := fastConfig
		cfg.PaymentTimeout = 300 * time.Millisecond
		f := setup(t, url, cfg)
		ctx := context.Background()
		stock := f.product(t, 1).Inventory

		paymentID, err := f.co.Start(ctx, "timeout-1", checkout.Request{ProductID: 1, Quantity: 1})
		if err != nil {
			t.Fatal(err)
		}
		order, err := store.OrderByPaymentID(ctx, f.db.Q(), paymentID)
		if err != nil {
			t.Fatal(err)
		}
		order = f.awaitOrder(t, order.ID, shop.StatusCancelled)
		if order.CancelReason != shop.ReasonPaymentTimeout {
			t.Errorf("cancel reason %q, want %q", order.CancelReason, shop.ReasonPaymentTimeout)
		}
		// A payment after the deadline is refused, at once.
		start := time.Now()
		_, err = f.co.Pay(ctx, paymentID, shop.PaymentPaid)
		wantKind(t, err, shop.ErrConflict)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("late payment answered after %v, want at once", d)
		}
		if got := f.product(t, 1).Inventory; got != stock {
			t.Errorf("stock = %d, want %d", got, stock)
		}
		f.audit(t)
	})
}

func TestCheckoutOutOfStock(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		f := setup(t, url, fastConfig)
		ctx := context.Background()
		stock := f.product(t, 3).Inventory

		if _, err := f.co.Start(ctx, "all-of-them", checkout.Request{ProductID: 3, Quantity: stock}); err != nil {
			t.Fatal(err)
		}
		_, err := f.co.Start(ctx, "one-more", checkout.Request{ProductID: 3, Quantity: 1})
		wantKind(t, err, shop.ErrConflict)
		// The same key again answers the same.
		_, err = f.co.Start(ctx, "one-more", checkout.Request{ProductID: 3, Quantity: 1})
		wantKind(t, err, shop.ErrConflict)

		order, err := store.OrderByCheckoutID(ctx, f.db.Q(), "one-more")
		if err != nil {
			t.Fatal(err)
		}
		if order.Status != shop.StatusCancelled || order.CancelReason != shop.ReasonOutOfStock {
			t.Errorf("order is %s (%s), want CANCELLED (%s)", order.Status, order.CancelReason, shop.ReasonOutOfStock)
		}
		// Its payment id was never handed out; a payment for it changes nothing.
		_, err = f.co.Pay(ctx, order.PaymentID, shop.PaymentPaid)
		wantKind(t, err, shop.ErrConflict)
		if got := f.product(t, 3).Inventory; got != 0 {
			t.Errorf("stock = %d, want 0", got)
		}
		f.audit(t)
	})
}

// TestCheckoutNeverOversells races more checkouts than there is stock.
func TestCheckoutNeverOversells(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		f := setup(t, url, fastConfig)
		ctx := context.Background()
		stock := f.product(t, 3).Inventory
		const buyers = 25

		var wg sync.WaitGroup
		errs := make([]error, buyers)
		for i := range buyers {
			wg.Go(func() {
				_, errs[i] = f.co.Start(ctx, fmt.Sprintf("race-%d", i), checkout.Request{ProductID: 3, Quantity: 1})
			})
		}
		wg.Wait()
		sold := 0
		for _, err := range errs {
			switch {
			case err == nil:
				sold++
			case errors.Is(err, shop.ErrConflict):
			default:
				t.Errorf("checkout: %v", err)
			}
		}
		if sold != stock {
			t.Errorf("%d checkouts got stock, want %d", sold, stock)
		}
		if got := f.product(t, 3).Inventory; got != 0 {
			t.Errorf("stock = %d, want 0", got)
		}
		if n := f.orderCount(t); n != buyers {
			t.Errorf("%d orders, want one per key: %d", n, buyers)
		}
		f.audit(t)
	})
}

func TestCheckoutRejectsBadInput(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		f := setup(t, url, fastConfig)
		ctx := context.Background()
		tests := []struct {
			name string
			key  string
			req  checkout.Request
			kind error
		}{
			{"empty key", "", checkout.Request{ProductID: 1, Quantity: 1}, shop.ErrInvalid},
			{"key with a space", "a b", checkout.Request{ProductID: 1, Quantity: 1}, shop.ErrInvalid},
			{"key with a colon", "payment:x", checkout.Request{ProductID: 1, Quantity: 1}, shop.ErrInvalid},
			{"zero quantity", "k1", checkout.Request{ProductID: 1, Quantity: 0}, shop.ErrInvalid},
			{"too many", "k2", checkout.Request{ProductID: 1, Quantity: shop.MaxQuantity + 1}, shop.ErrInvalid},
			{"unknown product", "k3", checkout.Request{ProductID: 99, Quantity: 1}, shop.ErrNotFound},
		}
		for _, tt := range tests {
			_, err := f.co.Start(ctx, tt.key, tt.req)
			if !errors.Is(err, tt.kind) {
				t.Errorf("%s: got %v, want kind %v", tt.name, err, tt.kind)
			}
		}
		_, err := f.co.Pay(ctx, "pay_unknown", shop.PaymentPaid)
		wantKind(t, err, shop.ErrNotFound)
		if n := f.orderCount(t); n != 0 {
			t.Errorf("%d orders after bad requests, want 0", n)
		}
		f.audit(t)
	})
}

// TestCheckoutSameKeyAtOnce is the double click: one key, many requests at
// the same moment. All get the same payment id, and there is one order.
func TestCheckoutSameKeyAtOnce(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		f := setup(t, url, fastConfig)
		ctx := context.Background()
		stock := f.product(t, 1).Inventory
		const clicks = 10
		var wg sync.WaitGroup
		paymentIDs := make([]string, clicks)
		errs := make([]error, clicks)
		for i := range clicks {
			wg.Go(func() {
				paymentIDs[i], errs[i] = f.co.Start(ctx, "double-click", checkout.Request{ProductID: 1, Quantity: 1})
			})
		}
		wg.Wait()
		for i := range clicks {
			if errs[i] != nil || paymentIDs[i] != paymentIDs[0] {
				t.Errorf("click %d: payment id %q, %v; want %q", i, paymentIDs[i], errs[i], paymentIDs[0])
			}
		}
		if n := f.orderCount(t); n != 1 {
			t.Errorf("%d orders, want 1", n)
		}
		if got := f.product(t, 1).Inventory; got != stock-1 {
			t.Errorf("stock = %d, want %d", got, stock-1)
		}
		f.audit(t)
	})
}

// TestPaymentReportsRace reports "paid" and "failed" for one payment at the
// same moment, several times each: the first report wins, every other
// answer agrees with it or is a conflict, and the order ends as it says.
func TestPaymentReportsRace(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		f := setup(t, url, fastConfig)
		ctx := context.Background()
		paymentID, err := f.co.Start(ctx, "race-pay", checkout.Request{ProductID: 1, Quantity: 1})
		if err != nil {
			t.Fatal(err)
		}
		statuses := []shop.PaymentStatus{shop.PaymentPaid, shop.PaymentFailed, shop.PaymentPaid, shop.PaymentFailed, shop.PaymentPaid, shop.PaymentFailed}
		var wg sync.WaitGroup
		errs := make([]error, len(statuses))
		for i, status := range statuses {
			wg.Go(func() { _, errs[i] = f.co.Pay(ctx, paymentID, status) })
		}
		wg.Wait()

		order, err := store.OrderByPaymentID(ctx, f.db.Q(), paymentID)
		if err != nil {
			t.Fatal(err)
		}
		won := shop.PaymentFailed
		if order.Status != shop.StatusCancelled {
			won = shop.PaymentPaid
		}
		for i, status := range statuses {
			switch {
			case status == won && errs[i] != nil:
				t.Errorf("report %d (%s, the winner's status): %v", i, status, errs[i])
			case status != won && !errors.Is(errs[i], shop.ErrConflict):
				t.Errorf("report %d (%s, against the winner %s): %v, want a conflict", i, status, won, errs[i])
			}
		}
		if won == shop.PaymentPaid {
			f.awaitOrder(t, order.ID, shop.StatusDispatched)
		} else if order.CancelReason != shop.ReasonPaymentFailed {
			t.Errorf("order %+v, want cancelled as refused", order)
		}
		f.audit(t)
	})
}

// TestRetentionDeletesFinishedCheckouts runs the retention every second
// with nothing kept: the records of a dispatched checkout go, those of a
// checkout awaiting its payment stay, the books still balance, and the
// deleted checkout's key still finds its order and nothing else.
func TestRetentionDeletesFinishedCheckouts(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		cfg := fastConfig
		cfg.PendingUnitsPerClient = 20 // so that each client has a lock row
		db, co := checkouttest.LaunchWith(t, url, checkout.LaunchConfig{
			Checkout: cfg, ExecutorID: "test", Logger: dbtest.Logger(t),
			Retention: checkout.Retention{Keep: time.Millisecond, Every: time.Second},
		})
		f := fixture{db: db, co: co}
		ctx := context.Background()
		done, err := co.Start(ctx, "kept-order", checkout.Request{ProductID: 1, Quantity: 1, Client: "paid-client"})
		if err != nil {
			t.Fatal(err)
		}
		order, err := co.Pay(ctx, done, shop.PaymentPaid)
		if err != nil {
			t.Fatal(err)
		}
		f.awaitOrder(t, order.ID, shop.StatusDispatched)
		waiting, err := co.Start(ctx, "still-waiting", checkout.Request{ProductID: 2, Quantity: 1, Client: "waiting-client"})
		if err != nil {
			t.Fatal(err)
		}

		deadline := time.Now().Add(30 * time.Second)
		for {
			found, err := co.Workflows(ctx, nil, 100)
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]bool{}
			for _, w := range found {
				ids[w.ID] = true
			}
			// The client with an order awaiting payment keeps its lock row;
			// the one whose order was paid loses it.
			var locks []string
			rows, err := db.Q().Query(ctx, `SELECT client FROM client_locks ORDER BY client`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var client string
				if err := rows.Scan(&client); err != nil {
					t.Fatal(err)
				}
				locks = append(locks, client)
			}
			rows.Close()
			if !ids["kept-order"] && ids["still-waiting"] && slices.Equal(locks, []string{"waiting-client"}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 30 s the workflows are %v and the clients' locks %q, want kept-order deleted, still-waiting kept, and waiting-client's lock alone", ids, locks)
			}
			time.Sleep(100 * time.Millisecond)
		}

		again, err := co.Start(ctx, "kept-order", checkout.Request{ProductID: 1, Quantity: 1})
		if err != nil || again != done {
			t.Errorf("the deleted checkout's key again: %q, %v; want its payment id %q", again, err, done)
		}
		if o, err := store.OrderByCheckoutID(ctx, db.Q(), "kept-order"); err != nil || o.Status != shop.StatusDispatched {
			t.Errorf("the deleted checkout's order: %+v, %v; want it dispatched still", o, err)
		}
		if _, err := co.Pay(ctx, waiting, shop.PaymentPaid); err != nil {
			t.Errorf("paying the checkout that was kept: %v", err)
		}
		if n := f.orderCount(t); n != 2 {
			t.Errorf("%d orders, want 2", n)
		}
		f.audit(t)
	})
}
