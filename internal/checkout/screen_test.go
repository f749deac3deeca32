package checkout_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
)

// TestScreeningRefusesCardTesters: a client whose last five orders were
// all refused by the payment provider is refused a sixth checkout, with
// the time when it may try again, and nothing is placed; one paid order
// among the five breaks the streak, and other clients are not held to it.
// With the per-client limits off, no one is screened.
func TestScreeningRefusesCardTesters(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		cfg := fastConfig
		cfg.PendingUnitsPerClient = 100
		f := setup(t, url, cfg)
		ctx := context.Background()
		buy := func(client, key string) (string, error) {
			return f.co.Start(ctx, key, checkout.Request{ProductID: 1, Quantity: 1, Client: client})
		}
		settle := func(client, key string, status shop.PaymentStatus) {
			t.Helper()
			paymentID, err := buy(client, key)
			if err != nil {
				t.Fatalf("checkout %s of %s: %v", key, client, err)
			}
			if _, err := f.co.Pay(ctx, paymentID, status); err != nil {
				t.Fatalf("payment %s of %s: %v", status, key, err)
			}
		}
		mustRefuse := func(client, key string) {
			t.Helper()
			_, err := buy(client, key)
			var refusal *shop.Error
			if !errors.As(err, &refusal) || !errors.Is(err, shop.ErrLimited) {
				t.Fatalf("checkout %s of %s: %v, want refused by the screening", key, client, err)
			}
			if refusal.RetryAfter < 9*time.Minute || refusal.RetryAfter > 10*time.Minute {
				t.Errorf("checkout %s of %s: retry after %v, want the 10 minutes of the streak's oldest order", key, client, refusal.RetryAfter)
			}
		}

		// A paid order, then four refused: the last five are not all refused.
		settle("tester", "tester-paid", shop.PaymentPaid)
		for i := range 4 {
			settle("tester", fmt.Sprintf("tester-refused-%d", i), shop.PaymentFailed)
		}
		settle("tester", "tester-refused-4", shop.PaymentFailed) // screened and let through
		stock, orders := f.product(t, 1).Inventory, f.orderCount(t)

		mustRefuse("tester", "tester-more")
		mustRefuse("tester", "tester-more") // the same key answers the same
		if p := f.product(t, 1); p.Inventory != stock || f.orderCount(t) != orders {
			t.Errorf("a refused checkout changed the shop: stock %d, %d orders; want %d, %d", p.Inventory, f.orderCount(t), stock, orders)
		}
		if _, err := buy("another", "another-1"); err != nil {
			t.Errorf("another client's checkout: %v", err)
		}
		if _, err := buy("", "the-shops-own"); err != nil {
			t.Errorf("a checkout without a client: %v", err)
		}
		f.audit(t)
	})
}

// TestScreeningOffWithoutClientLimits: with the per-client limits off
// (-pending-units 0), as behind a proxy that hides the customers'
// addresses, a client's refusals do not stop its checkouts.
func TestScreeningOffWithoutClientLimits(t *testing.T) {
	t.Parallel()
	f := setup(t, dbtest.NewDatabase(t, "sqlite"), fastConfig)
	ctx := context.Background()
	for i := range 6 {
		paymentID, err := f.co.Start(ctx, fmt.Sprintf("proxy-%d", i), checkout.Request{ProductID: 1, Quantity: 1, Client: "proxy"})
		if err != nil {
			t.Fatalf("checkout %d after %d refusals: %v", i, i, err)
		}
		if _, err := f.co.Pay(ctx, paymentID, shop.PaymentFailed); err != nil {
			t.Fatal(err)
		}
	}
}
