package checkout_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
)

// TestPendingUnitsPerClientAtOnce: several clients each start many
// checkouts at the same moment, with new keys, on several products: none
// ever holds more than the limit, each gets as many checkouts through as
// the limit lets, and the others are refused with a wait no longer than
// the payment window. Checkouts of no client are not limited.
func TestPendingUnitsPerClientAtOnce(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		const limit, quantity, clients, each = 10, 3, 4, 8
		cfg := fastConfig
		cfg.PendingUnitsPerClient = limit
		f := setup(t, url, cfg)
		ctx := context.Background()

		var wg sync.WaitGroup
		errs := make([][]error, clients)
		for c := range clients {
			errs[c] = make([]error, each)
			for i := range each {
				wg.Go(func() {
					// Products apart, so that no stock row's lock puts the
					// checkouts of one client in turn.
					req := checkout.Request{ProductID: []int64{1, 2, 4}[i%3], Quantity: quantity, Client: fmt.Sprintf("192.0.2.%d", c)}
					_, errs[c][i] = f.co.Start(ctx, fmt.Sprintf("client-%d-%d", c, i), req)
				})
			}
		}
		// The shop's own callers name no client.
		for i := range 4 {
			wg.Go(func() {
				if _, err := f.co.Start(ctx, fmt.Sprint("internal-", i), checkout.Request{ProductID: 1, Quantity: shop.MaxQuantity}); err != nil {
					t.Errorf("a checkout of no client: %v", err)
				}
			})
		}
		wg.Wait()

		for c := range clients {
			placed := 0
			for _, err := range errs[c] {
				var shopErr *shop.Error
				switch {
				case err == nil:
					placed++
				case errors.Is(err, shop.ErrLimited) && errors.As(err, &shopErr):
					if shopErr.RetryAfter <= 0 || shopErr.RetryAfter > cfg.PaymentTimeout {
						t.Errorf("client %d refused with a wait of %v, want up to the payment window, %v", c, shopErr.RetryAfter, cfg.PaymentTimeout)
					}
				default:
					t.Errorf("client %d: %v", c, err)
				}
			}
			if want := limit / quantity; placed != want {
				t.Errorf("client %d placed %d checkouts of %d units, want %d under a limit of %d", c, placed, quantity, want, limit)
			}
		}
		rows, err := f.db.Q().Query(ctx, `SELECT client, SUM(quantity) FROM orders WHERE status = 'PENDING' GROUP BY client`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var client string
			var units int
			if err := rows.Scan(&client, &units); err != nil {
				t.Fatal(err)
			}
			if client != "" && units > limit {
				t.Errorf("client %s holds %d units awaiting payment, over the limit of %d", client, units, limit)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		f.audit(t)
	})
}
