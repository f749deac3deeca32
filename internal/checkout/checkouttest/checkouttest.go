// Package checkouttest launches the shop's workflows for tests, on a real
// database, as the server does.
package checkouttest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
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
	ctx := context.Background()
	db, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx, cfg.Logger); err != nil {
		t.Fatal(err)
	}
	co, err := checkout.Launch(ctx, db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := co.Shutdown(10 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return db, co
}
