package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// TestIsUnavailable classifies errors the engines really return: those of
// a database out of reach for a moment, and those of a request or a shop
// that is wrong, which a retry would not mend.
func TestIsUnavailable(t *testing.T) {
	ctx := context.Background()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		db := openMigrated(t, url)
		var unavailable, wrong []error

		_, err := db.Q().Exec(ctx, `SELECT * FROM no_such_table`)
		wrong = append(wrong, err)
		_, err = store.GetOrder(ctx, db.Q(), 12345)
		wrong = append(wrong, err)

		switch db.Engine() {
		case "postgres":
			// A server that does not answer, and a connection the server cut.
			pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2")
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			unavailable = append(unavailable, pool.Ping(ctx))

			conn, err := db.Postgres.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
			unavailable = append(unavailable, err)
			_, err = conn.Exec(ctx, `SELECT 1`)
			unavailable = append(unavailable, err)
			conn.Release()
		case "sqlite":
			// A second handle holding the write lock past the busy timeout.
			other, err := sql.Open("sqlite", "file:"+db.URL[len("sqlite:"):]+"?_pragma=busy_timeout(0)")
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			tx, err := db.SQLite.BeginTx(ctx, nil) // _txlock=immediate: takes the lock
			if err != nil {
				t.Fatal(err)
			}
			_, err = other.ExecContext(ctx, `UPDATE products SET inventory = inventory WHERE product_id = 1`)
			unavailable = append(unavailable, err)
			tx.Rollback()
		}

		for _, err := range unavailable {
			if err == nil || !store.IsUnavailable(fmt.Errorf("wrapped: %w", err)) {
				t.Errorf("IsUnavailable(%v) = false, want true", err)
			}
		}
		for _, err := range wrong {
			if err == nil || store.IsUnavailable(err) {
				t.Errorf("IsUnavailable(%v) = true, want false", err)
			}
		}
		// What pgx 5.13 returned to the webhook for a connection a failover
		// had cut (the "conn closed" of chaos/TestDatabaseFailover), which
		// this test cannot provoke on one server.
		if !store.IsUnavailable(fmt.Errorf("settling: %w", pgconn.ErrConnClosed)) {
			t.Error("IsUnavailable(pgconn.ErrConnClosed) = false, want true")
		}
		if store.IsUnavailable(shop.Errorf(shop.ErrConflict, "no")) || store.IsUnavailable(errors.New("x")) {
			t.Error("IsUnavailable is true for an error that is no database's")
		}
	})
}
