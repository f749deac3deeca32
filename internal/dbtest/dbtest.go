// Package dbtest gives tests a fresh, real database on each engine: a
// temporary SQLite file, and a new PostgreSQL database when one is
// reachable. Under CI=true an unreachable PostgreSQL fails the test.
package dbtest

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is where the tests look for PostgreSQL unless
// TEST_DATABASE_URL says otherwise.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Engines are the names RunEach gives its subtests.
var Engines = []string{"sqlite", "postgres"}

// RunEach runs test once per engine, as a subtest named after it, with the
// URL of a fresh empty database that is dropped afterwards.
func RunEach(t *testing.T, test func(t *testing.T, databaseURL string)) {
	for _, engine := range Engines {
		t.Run(engine, func(t *testing.T) {
			test(t, NewDatabase(t, engine))
		})
	}
}

// NewDatabase returns the URL of a fresh empty database of engine
// ("sqlite" or "postgres"), removed when the test ends.
func NewDatabase(t testing.TB, engine string) string {
	t.Helper()
	if engine == "sqlite" {
		return "sqlite:" + t.TempDir() + "/widgetstore.db"
	}
	adminURL := os.Getenv("TEST_DATABASE_URL")
	if adminURL == "" {
		adminURL = DefaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is unreachable, and CI=true requires it: %v", redact(adminURL), err)
		}
		t.Skipf("skipping: PostgreSQL at %s is unreachable (set TEST_DATABASE_URL): %v", redact(adminURL), err)
	}
	defer admin.Close(context.Background())

	name := "widgetstore_test_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatalf("parsing TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Logger returns a logger that writes to the test's log, and drops what
// DBOS's goroutines still say after the test has ended.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close) // registered first, so it runs after every other cleanup
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
