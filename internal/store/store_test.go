package store_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/store"
)

func openMigrated(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(context.Background(), dbtest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestMigrateAppliesAMissedMigration: a migration numbered below the
// highest applied one, but not applied itself (a build that numbered its
// own higher migrated the database first), is applied by the next Migrate.
func TestMigrateAppliesAMissedMigration(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := openMigrated(t, url)
		for _, stmt := range []string{`DELETE FROM app_migrations WHERE version = 11`, `DROP INDEX orders_client_created`} {
			if _, err := db.Q().Exec(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Migrate(ctx, dbtest.Logger(t)); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.Q().QueryRow(ctx, `SELECT COUNT(*) FROM app_migrations WHERE version = 11`).Scan(&n); err != nil || n != 1 {
			t.Errorf("migration 11 recorded %d times, %v; want it applied again, once", n, err)
		}
		// Its index is back: dropping it again succeeds.
		if _, err := db.Q().Exec(ctx, `DROP INDEX orders_client_created`); err != nil {
			t.Errorf("migration 11's index is not there: %v", err)
		}
	})
}

func TestMigrateIsIdempotent(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		db := openMigrated(t, url)
		if err := db.Migrate(context.Background(), dbtest.Logger(t)); err != nil {
			t.Fatalf("second migration: %v", err)
		}
		products, err := store.ListProducts(context.Background(), db.Q())
		if err != nil {
			t.Fatal(err)
		}
		if len(products) != 4 || products[0].Name != "Premium Quality Widget" || products[0].PriceCents != 9999 {
			t.Errorf("catalog = %+v, want 4 products, the seed's widget first at 9999 cents", products)
		}
	})
}

// TestMigrateConcurrently starts several instances on one PostgreSQL at
// once, as a deployment does.
func TestMigrateConcurrently(t *testing.T) {
	url := dbtest.NewDatabase(t, "postgres")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			db, err := store.Open(context.Background(), url)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			errs[i] = db.Migrate(context.Background(), dbtest.Logger(t))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent migration: %v", err)
		}
	}
	db := openMigrated(t, url)
	products, err := store.ListProducts(context.Background(), db.Q())
	if err != nil || len(products) != 4 {
		t.Errorf("catalog after concurrent migrations: %d products, %v", len(products), err)
	}
}

// TestAuditFindsBreaches makes sure the audit that the other tests rely on
// can fail: each corruption must be reported.
func TestAuditFindsBreaches(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := openMigrated(t, url)
		if breaches, err := store.Audit(ctx, db.Q()); err != nil || len(breaches) != 0 {
			t.Fatalf("fresh shop: breaches %q, %v", breaches, err)
		}
		if _, err := db.Restock(ctx, 120); err != nil {
			t.Fatal(err)
		}
		if breaches, err := store.Audit(ctx, db.Q()); err != nil || len(breaches) != 0 {
			t.Fatalf("after a restock: breaches %q, %v", breaches, err)
		}

		corruptions := []struct {
			sql, want string
		}{
			{`UPDATE products SET inventory = inventory - 1 WHERE product_id = 2`, "product 2: inventory"},
			{`INSERT INTO orders (checkout_id, payment_id, product_id, quantity, total_cents, status, dispatch_steps, dispatch_interval_ms, paid_at_ms, created_at_ms, updated_at_ms)
			  VALUES ('k', 'p', 1, 1, 9999, 'PAID', 3, 1000, 5000, 0, 0)`, "1 units for 9999 cents, its lines 0 for 0"},
			{`UPDATE orders SET email = ''`, "(PAID): total 9999, keeps 0 in 0 payments"},
			{`INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price_cents)
			  SELECT order_id, 1, 1, 1, 9999 FROM orders`, "product 1: holds 0 of 1"},
			{`INSERT INTO payments (payment_ref, order_id, provider, amount_cents, taken_at_ms)
			  SELECT 'p', order_id, 'seed', 9999, 5000 FROM orders`, "product 1: holds 0 of 1"},
			{`INSERT INTO payments (payment_ref, order_id, provider, amount_cents, taken_at_ms)
			  SELECT 'p2', order_id, 'seed', 9999, 5000 FROM orders`, "keeps 19998 in 2 payments"},
			{`UPDATE payments SET refund_state = 'gone' WHERE payment_ref = 'p2'`, "payment p2: refund state gone"},
			{`UPDATE payments SET refund_state = 'due' WHERE payment_ref = 'p2'`, "product 1: holds 0 of 1"},
			{`INSERT INTO inventory_ledger (product_id, order_id, delta, reason, created_at_ms)
			  SELECT 1, order_id, -1, 'reserve', 0 FROM orders`, "product 1: inventory 120, ledger 119"},
			{`INSERT INTO inventory_ledger (product_id, order_id, delta, reason, created_at_ms)
			  SELECT 1, order_id, -1, 'reserve', 0 FROM orders`, "2 reserve entries"},
			{`UPDATE orders SET status = 'DISPATCHED'`, "paid at 5000, dispatched at 0"},
			{`UPDATE orders SET dispatched_at_ms = 7999`, "paid at 5000, dispatched at 7999"}, // before 5000 + 3 × 1000
			{`UPDATE orders SET paid_at_ms = NULL, status = 'PENDING'`, "(PENDING): paid at 0, dispatched at 7999"},
		}
		for _, c := range corruptions {
			if _, err := db.Q().Exec(ctx, c.sql); err != nil {
				t.Fatalf("%s: %v", c.sql, err)
			}
			breaches, err := store.Audit(ctx, db.Q())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(breaches, "\n"), c.want) {
				t.Errorf("after %s:\nbreaches %q, want one with %q", c.sql, breaches, c.want)
			}
		}
	})
}

func TestOpenRejectsUnknownDatabases(t *testing.T) {
	for _, url := range []string{"mysql://root@localhost/shop", ""} {
		if db, err := store.Open(context.Background(), url); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", url)
		}
	}
}

// TestOpenCreatesAMissingPostgresDatabase: a URL naming a database that
// does not exist yet opens it, created, and migrates it.
func TestOpenCreatesAMissingPostgresDatabase(t *testing.T) {
	ctx := context.Background()
	existing := dbtest.NewDatabase(t, "postgres")
	admin, err := store.Open(ctx, existing)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	u, err := url.Parse(existing)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Replace(strings.TrimPrefix(u.Path, "/"), "widgetstore_test_", "widgetstore_new_", 1)
	u.Path = "/" + name
	missing := u.String()
	t.Cleanup(func() { admin.Q().Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`) })

	db := openMigrated(t, missing)
	if products, err := store.ListProducts(ctx, db.Q()); err != nil || len(products) != 4 {
		t.Errorf("the created database's catalog: %d products, %v", len(products), err)
	}
}

// TestSilentExecutorsWaitForTheirOwnHeartbeats: an instance is silent for
// another once it has missed the other's silence and store.HeartbeatMargin
// of its own recorded heartbeats, so one that beats slowly is not taken
// for dead by one that expects quick beats; only a silent one is forgotten.
func TestSilentExecutorsWaitForTheirOwnHeartbeats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openMigrated(t, dbtest.NewDatabase(t, "postgres"))
	q := db.Q()
	for _, id := range []string{"self", "quick", "slow", "old-build"} {
		if err := store.Heartbeat(ctx, q, id, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Each last beat 10 s ago, "slow" beating every 4 s (so silent only
	// after 12 s), "old-build" without an interval recorded.
	for id, every := range map[string]int64{"quick": 1000, "slow": 4000, "old-build": 0} {
		if _, err := q.Exec(ctx, `UPDATE executors SET heartbeat_at_ms = heartbeat_at_ms - 10000, heartbeat_every_ms = $2 WHERE executor_id = $1`, id, every); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		after time.Duration
		want  []string
	}{
		{2 * time.Second, []string{"old-build", "quick"}},
		{9 * time.Second, []string{"old-build", "quick"}},
		{11 * time.Second, nil},
	} {
		silent, err := store.SilentExecutors(ctx, q, "self", tt.after)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(silent, tt.want) {
			t.Errorf("silent for more than %v: %q, want %q", tt.after, silent, tt.want)
		}
	}
	for _, id := range []string{"quick", "slow"} {
		if err := store.ForgetExecutor(ctx, q, id, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var left []string
	rows, err := q.Query(ctx, `SELECT executor_id FROM executors ORDER BY executor_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		left = append(left, id)
	}
	rows.Close()
	if want := []string{"old-build", "self", "slow"}; !slices.Equal(left, want) {
		t.Errorf("after forgetting the silent ones: %q, want %q", left, want)
	}
}
