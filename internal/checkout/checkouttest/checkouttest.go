// Package checkouttest launches the shop's workflows for tests, on a real
// database, as the server does.
package checkouttest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/demopay"
	"github.com/widgetstore/widgetstore/internal/store"
)

// Launch opens and migrates the database at url and launches the shop's
// workflows on it with cfg. DBOS is shut down and the database closed when
// the test ends.
func Launch(t testing.TB, url string, cfg checkout.Config, logger *slog.Logger) (*store.DB, *checkout.Checkout) {
	t.Helper()
	return LaunchWith(t, url, checkout.LaunchConfig{Checkout: cfg, ExecutorID: "test", Logger: logger})
}

// LaunchWith is Launch with the whole of Launch's configuration.
func LaunchWith(t testing.TB, url string, cfg checkout.LaunchConfig) (*store.DB, *checkout.Checkout) {
	t.Helper()
	db := Open(t, url, cfg.Logger)
	return db, launch(t, db, cfg)
}

// LaunchDemoPay is LaunchWith with carts paid through the demo payment
// provider, configured by demo: it delivers its events to demo.WebhookURL,
// which the test serves (web.Server's POST /api/payment_events).
func LaunchDemoPay(t testing.TB, url string, cfg checkout.LaunchConfig, demo demopay.Config) (*store.DB, *checkout.Checkout, *demopay.Provider) {
	t.Helper()
	return LaunchDemoPayWrapped(t, url, cfg, demo, nil)
}

// LaunchDemoPayWrapped is LaunchDemoPay with the provider that the
// checkout calls inside wrap (unless nil): a test holds a call there.
func LaunchDemoPayWrapped(t testing.TB, url string, cfg checkout.LaunchConfig, demo demopay.Config,
	wrap func(payment.Provider) payment.Provider) (*store.DB, *checkout.Checkout, *demopay.Provider) {
	t.Helper()
	db := Open(t, url, cfg.Logger)
	if demo.Logger == nil {
		demo.Logger = cfg.Logger
	}
	provider, err := demopay.New(db, demo)
	if err != nil {
		t.Fatal(err)
	}
	register := cfg.Register
	cfg.Provider, cfg.Register = provider, func(ctx dbos.Context) error {
		if register != nil {
			if err := register(ctx); err != nil {
				return err
			}
		}
		return provider.Register(ctx)
	}
	if wrap != nil {
		cfg.Provider = wrap(provider)
	}
	return db, launch(t, db, cfg), provider
}

// Open opens and migrates the database at url, closed when the test ends.
func Open(t testing.TB, url string, logger *slog.Logger) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx, logger); err != nil {
		t.Fatal(err)
	}
	return db
}

// launch launches the shop's workflows on db, shut down when the test ends
// (before db closes).
func launch(t testing.TB, db *store.DB, cfg checkout.LaunchConfig) *checkout.Checkout {
	t.Helper()
	co, err := checkout.Launch(context.Background(), db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := co.Shutdown(10 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return co
}
