package checkout_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/payment/demopay"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// TestForkRefusesASecondPaymentIntent: a cart paid through the payment
// provider asked it for a payment intent, keyed by the checkout's id; a
// fork, under a new id, would ask for a second one, which the customer
// could pay as well. Forking from that step or before is refused; from the
// step after, the fork carries the first intent and is let through.
func TestForkRefusesASecondPaymentIntent(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		ctx := context.Background()
		db, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		if err := db.Migrate(ctx, dbtest.Logger(t)); err != nil {
			t.Fatal(err)
		}
		// The webhook is never called: no one pays in this test.
		provider, err := demopay.New(db, demopay.Config{WebhookURL: "http://127.0.0.1:9/", SigningSecret: "whsec_test", Logger: dbtest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		co, err := checkout.Launch(ctx, db, checkout.LaunchConfig{Checkout: fastConfig, ExecutorID: "test",
			Logger: dbtest.Logger(t), Provider: provider, Register: provider.Register})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := co.Shutdown(10 * time.Second); err != nil {
				t.Error(err)
			}
		})

		const key = "fork-intent"
		if _, err := co.Place(ctx, key, checkout.Request{Lines: []shop.Line{{ProductID: 1, Quantity: 1}}, ViaProvider: true}); err != nil {
			t.Fatal(err)
		}
		if err := co.Cancel(ctx, key); err != nil {
			t.Fatal(err)
		}
		d, err := co.Workflow(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		intent := -1
		for _, s := range d.Steps {
			if s.Name == "checkout.createIntent" {
				intent = s.ID
			}
		}
		if intent < 0 || d.Status != "CANCELLED" {
			t.Fatalf("the cart's checkout: %s, steps %+v; want CANCELLED with a createIntent step", d.Status, d.Steps)
		}
		_, err = co.Fork(ctx, key, intent)
		if !errors.Is(err, shop.ErrConflict) || !strings.Contains(err.Error(), "second payment intent") {
			t.Errorf("forking from createIntent: %v, want a conflict naming a second payment intent", err)
		}
		forkID, err := co.Fork(ctx, key, intent+1)
		if err != nil {
			t.Fatalf("forking from the step after createIntent: %v", err)
		}
		if err := co.Cancel(ctx, forkID); err != nil && !errors.Is(err, shop.ErrConflict) {
			t.Fatal(err)
		}
	})
}
