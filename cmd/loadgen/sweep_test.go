package main

import (
	"cmp"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestSweepRealShop builds the shop and runs a short sweep on it, on
// SQLite and, when it is reachable, on PostgreSQL (required under
// CI=true), and checks that the numbers are sane.
func TestSweepRealShop(t *testing.T) {
	t.Parallel()
	adminURL := cmp.Or(os.Getenv("TEST_DATABASE_URL"), dbtest.DefaultPostgresURL)
	engines := []string{"sqlite"}
	if err := pingPostgres(t, adminURL); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is unreachable, and CI=true requires it: %v", redactURL(adminURL), err)
		}
		t.Logf("SQLite only: PostgreSQL at %s is unreachable (set TEST_DATABASE_URL): %v", redactURL(adminURL), err)
	} else {
		engines = append(engines, "postgres")
	}

	bin := filepath.Join(t.TempDir(), "widgetstore")
	if out, err := exec.Command("go", "build", "-o", bin, "../widgetstore").CombinedOutput(); err != nil {
		t.Fatalf("building the shop: %v\n%s", err, out)
	}
	rep := runSweepJSON(t, noEnv, "-shop", "this="+bin, "-engine", strings.Join(engines, ","), "-pg-admin-url", adminURL,
		"-customers", "2", "-duration", "2s", "-warmup", "1", "-shop-args", "-dispatch-interval 10ms")

	if len(rep.Runs) != len(engines) {
		t.Fatalf("%d runs, want one per engine %v", len(rep.Runs), engines)
	}
	for i, r := range rep.Runs {
		if r.Failed != "" {
			t.Errorf("%s: failed: %s", r.Engine, r.Failed)
			continue
		}
		if r.Binary != "this" || r.Engine != engines[i] || r.Customers != 2 {
			t.Errorf("run %d is %s %s C=%d, want this %s C=2", i+1, r.Binary, r.Engine, r.Customers, engines[i])
		}
		if r.Completed == 0 || r.PurchasesPerSecond <= 0 || r.Errors != 0 || r.OutOfStock != 0 || r.PendingAfterWait != 0 {
			t.Errorf("%s: completed %d, %.1f/s, errors %d %v, out of stock %d, pending after the wait %d; want some, no errors, none",
				r.Engine, r.Completed, r.PurchasesPerSecond, r.Errors, r.ErrorKinds, r.OutOfStock, r.PendingAfterWait)
		}
		if r.Purchase.Count != r.Completed || !(r.Purchase.P50 > 0) || r.Purchase.P99 < r.Purchase.P50 {
			t.Errorf("%s: purchase latencies %+v", r.Engine, r.Purchase)
		}
		if r.MeasuredSeconds < r.LoadSeconds {
			t.Errorf("%s: measured %.2f s, shorter than the load's %.2f s", r.Engine, r.MeasuredSeconds, r.LoadSeconds)
		}
		if r.ShopCPUMsPerPurchase == nil || !(*r.ShopCPUMsPerPurchase > 0) {
			t.Errorf("%s: the shop's CPU per purchase %v, want above 0", r.Engine, r.ShopCPUMsPerPurchase)
		}
		if r.Engine == "sqlite" {
			if r.CommitsPerPurchase != nil || r.PGCPUMs != nil {
				t.Errorf("sqlite: PostgreSQL's counters %v, %v; want none", r.CommitsPerPurchase, r.PGCPUMs)
			}
			continue
		}
		// A purchase commits its checkout's steps, the payment's
		// workflow, and the dispatch's steps, 10 by default: more than a
		// handful, far fewer than a thousand.
		if r.CommitsPerPurchase == nil || *r.CommitsPerPurchase < 5 || *r.CommitsPerPurchase > 1000 {
			t.Errorf("postgres: commits per purchase %v", r.CommitsPerPurchase)
		}
		if r.PGBackendCPUMsPerPurchase == nil || !(*r.PGBackendCPUMsPerPurchase > 0) {
			t.Errorf("postgres: its backends' CPU per purchase %v, want above 0", r.PGBackendCPUMsPerPurchase)
		}
		if r.PGCPUMs != nil && *r.PGCPUMs < *r.PGBackendCPUMsPerPurchase*float64(r.Completed)-10 { // ticks of 10 ms
			t.Errorf("postgres: the server's CPU %.0f ms, below its run database's backends' %.0f ms",
				*r.PGCPUMs, *r.PGBackendCPUMsPerPurchase*float64(r.Completed))
		}
		if r.WALBytesPerPurchase == nil || !(*r.WALBytesPerPurchase > 0) {
			t.Errorf("postgres: WAL per purchase %v, want above 0", r.WALBytesPerPurchase)
		}
		if w := r.DatabaseWALBytesPerPurchase; w != nil && (!(*w > 0) || *w > *r.WALBytesPerPurchase) {
			t.Errorf("postgres: the database's WAL per purchase %v, want above 0 and at most the server's %v", *w, *r.WALBytesPerPurchase)
		}
		if r.Database == "" || databaseExists(t, adminURL, r.Database) {
			t.Errorf("postgres: the run's database %q was not dropped", r.Database)
		}
	}
}

// TestSweepStartsTheDemo runs a sweep with a stand-in for DBOS's demo
// (testdata/standin), started as the demo is: its database made, its
// migrations run, its stock topped up, its environment set, its pending
// workflows read in its database until its dispatches are over.
func TestSweepStartsTheDemo(t *testing.T) {
	t.Parallel()
	adminURL := cmp.Or(os.Getenv("TEST_DATABASE_URL"), dbtest.DefaultPostgresURL)
	if err := pingPostgres(t, adminURL); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is unreachable, and CI=true requires it: %v", redactURL(adminURL), err)
		}
		t.Skipf("DBOS's demo runs on PostgreSQL, unreachable at %s (set TEST_DATABASE_URL): %v", redactURL(adminURL), err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "widget-store"), "./testdata/standin").CombinedOutput(); err != nil {
		t.Fatalf("building the stand-in: %v\n%s", err, out)
	}
	if out, err := exec.Command("cp", "-R", "testdata/standin/migrations", dir).CombinedOutput(); err != nil {
		t.Fatalf("copying its migrations: %v\n%s", err, out)
	}
	rep := runSweepJSON(t, noEnv, "-shop", "demo="+filepath.Join(dir, "widget-store"), "-engine", "postgres", "-pg-admin-url", adminURL,
		"-customers", "2", "-duration", "1s", "-warmup", "1")

	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(rep.Runs))
	}
	r := rep.Runs[0]
	if r.Failed != "" {
		t.Fatalf("failed: %s", r.Failed)
	}
	if r.Completed == 0 || r.Errors != 0 || r.Restocks != 0 || r.PendingAfterWait != 0 {
		t.Errorf("completed %d, errors %d %v, restocks %d, pending after the wait %d; want some, none, none (stock topped up), none",
			r.Completed, r.Errors, r.ErrorKinds, r.Restocks, r.PendingAfterWait)
	}
	// Each payment leaves its dispatch pending for a second.
	if r.DispatchWaitSeconds < 0.5 {
		t.Errorf("waited %.2f s for the dispatches, want about a second: the pending workflows were not read", r.DispatchWaitSeconds)
	}
	if r.ShopCPUMsPerPurchase == nil || r.CommitsPerPurchase == nil {
		t.Errorf("the shop's CPU %v, commits %v per purchase: want both", r.ShopCPUMsPerPurchase, r.CommitsPerPurchase)
	}
	if r.Database == "" || databaseExists(t, adminURL, r.Database) {
		t.Errorf("the run's database %q was not dropped", r.Database)
	}
}

func pingPostgres(t *testing.T, adminURL string) error {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func databaseExists(t *testing.T, adminURL, name string) bool {
	conn, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}
