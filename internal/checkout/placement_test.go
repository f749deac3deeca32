package checkout_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/checkout/checkouttest"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/demopay"
	"github.com/widgetstore/widgetstore/internal/shop"
)

// heldIntents holds every payment intent the checkout asks for until
// release is closed: its checkout has placed its order, and not yet its
// placement.
type heldIntents struct {
	payment.Provider
	asked   chan string // the checkout of each call, as it comes
	release chan struct{}
}

func (h *heldIntents) CreateIntent(ctx context.Context, req payment.IntentRequest) (payment.Intent, error) {
	h.asked <- req.CheckoutID
	select {
	case <-h.release:
	case <-ctx.Done():
		return payment.Intent{}, ctx.Err()
	}
	return h.Provider.CreateIntent(ctx, req)
}

// launchHeld launches the shop with carts paid through the demo provider,
// its intents held.
func launchHeld(t *testing.T, url string) (*checkout.Checkout, *heldIntents) {
	t.Helper()
	held := &heldIntents{asked: make(chan string, 10), release: make(chan struct{})}
	_, co, _ := checkouttest.LaunchDemoPayWrapped(t, url,
		checkout.LaunchConfig{Checkout: fastConfig, ExecutorID: "test", Logger: dbtest.Logger(t)},
		demopay.Config{WebhookURL: "http://127.0.0.1:9/", SigningSecret: "whsec_test"}, // no one pays here
		func(p payment.Provider) payment.Provider { held.Provider = p; return held })
	return co, held
}

type placeResult struct {
	placed checkout.Placement
	err    error
}

// placeAsync is Place in a goroutine of its own.
func placeAsync(ctx context.Context, co *checkout.Checkout, key string, req checkout.Request) <-chan placeResult {
	done := make(chan placeResult, 1)
	go func() {
		p, err := co.Place(ctx, key, req)
		done <- placeResult{p, err}
	}()
	return done
}

// awaitWaiters waits until n requests wait for a placement.
func awaitWaiters(t *testing.T, co *checkout.Checkout, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for co.PlacementWaiters() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests wait for a placement, want %d", co.PlacementWaiters(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPlacementHandedOffOrRead: the request that starts a checkout is
// handed its placement; the same key sent again while the checkout places
// waits for the hand-off too, having found the checkout started and its
// records without a placement yet; sent after the hand-off, it reads the
// placement from the records; every one is told the same. A request that
// gives up leaves no waiter behind, nor does any that was answered.
func TestPlacementHandedOffOrRead(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		co, held := launchHeld(t, url)
		ctx := context.Background()
		const key = "handed-off"
		req := checkout.Request{Lines: []shop.Line{{ProductID: 1, Quantity: 1}, {ProductID: 2, Quantity: 2}}, ViaProvider: true}

		first := placeAsync(ctx, co, key, req)
		if got := <-held.asked; got != key {
			t.Fatalf("an intent asked for checkout %q, want %q", got, key)
		}
		// Given up: answered with its context's end, and forgotten.
		impatient, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if _, err := co.Place(impatient, key, req); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a request that gave up: %v, want its context's deadline", err)
		}
		awaitWaiters(t, co, 1) // the first request's
		second := placeAsync(ctx, co, key, req)
		awaitWaiters(t, co, 2)
		close(held.release)

		a, b := <-first, <-second
		if a.err != nil || b.err != nil {
			t.Fatalf("the starting request: %v; the same key while it placed: %v", a.err, b.err)
		}
		if a.placed.PayURL == "" || b.placed != a.placed {
			t.Errorf("the same key while its checkout placed: %+v, want %+v, with a page to pay on", b.placed, a.placed)
		}
		// After the hand-off, its checkout still awaiting its payment here.
		again, err := co.Place(ctx, key, req)
		if err != nil || again != a.placed {
			t.Errorf("the same key after the hand-off: %+v, %v; want %+v", again, err, a.placed)
		}
		if _, err := co.Place(ctx, key, checkout.Request{Lines: req.Lines[:1], ViaProvider: true}); !errors.Is(err, shop.ErrConflict) {
			t.Errorf("the key for another purchase: %v, want a conflict", err)
		}
		found, err := co.FindByKey(ctx, key)
		if err != nil || found.PayURL != a.placed.PayURL {
			t.Errorf("the order found by its key: pay URL %q, %v; want %q", found.PayURL, err, a.placed.PayURL)
		}
		if n := co.PlacementWaiters(); n != 0 {
			t.Errorf("%d requests still wait for a placement, every one answered", n)
		}
	})
}

// TestCheckoutEndedWithoutPlacingAnswersAtOnce: a checkout cancelled
// before its placement (its payment intent asked for, not had) hands
// nothing off, and its records show no placement; the request that
// started it, and the same key sent again, are told it failed at once,
// rather than after the 30 s a placement is waited for.
func TestCheckoutEndedWithoutPlacingAnswersAtOnce(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		co, held := launchHeld(t, url)
		ctx := context.Background()
		const key = "ended-unplaced"
		req := checkout.Request{Lines: []shop.Line{{ProductID: 1, Quantity: 1}}, ViaProvider: true}

		first := placeAsync(ctx, co, key, req)
		<-held.asked
		if err := co.Cancel(ctx, key); err != nil {
			t.Fatal(err)
		}
		cancelled := time.Now()
		if r := <-first; r.err == nil || time.Since(cancelled) > 5*time.Second {
			t.Errorf("the request whose checkout was cancelled before it placed: %+v, %v after %v; want an error at once",
				r.placed, r.err, time.Since(cancelled).Round(time.Millisecond))
		}
		began := time.Now()
		_, err := co.Place(ctx, key, req)
		var shopErr *shop.Error
		if err == nil || errors.As(err, &shopErr) || time.Since(began) > 5*time.Second {
			t.Errorf("the same key again: %v after %v, want an internal error at once", err, time.Since(began).Round(time.Millisecond))
		}
		if n := co.PlacementWaiters(); n != 0 {
			t.Errorf("%d requests still wait for a placement, every one answered", n)
		}
	})
}
