package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestSQLiteTurnsInOrder: goroutines waiting for SQLite's one connection
// get it in the order they began to wait, transactions and statements
// outside one alike. database/sql's own queue would serve them at random
// (ten waiters in order by chance: one in 3.6 million).
func TestSQLiteTurnsInOrder(t *testing.T) {
	ctx := context.Background()
	db := openMigrated(t, dbtest.NewDatabase(t, "sqlite"))
	holder, err := db.SQLite.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		served []int
		wg     sync.WaitGroup
	)
	const waiters = 10
	for i := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 { // a transaction
				tx, err := db.SQLite.BeginTx(ctx, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				served = append(served, i)
				mu.Unlock()
				if _, err := tx.ExecContext(ctx, `UPDATE products SET inventory = inventory WHERE product_id = 1`); err != nil {
					t.Error(err)
				}
				if err := tx.Commit(); err != nil {
					t.Error(err)
				}
				return
			}
			// A statement outside a transaction: its turn lasts until its
			// rows are closed.
			rows, err := db.SQLite.QueryContext(ctx, `SELECT product_id FROM products`)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			served = append(served, i)
			mu.Unlock()
			for rows.Next() {
			}
			if err := rows.Close(); err != nil {
				t.Error(err)
			}
		}()
		time.Sleep(20 * time.Millisecond) // waiting now
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(served, want) {
		t.Errorf("served in the order %v, want %v", served, want)
	}
}

// TestSQLiteTurnWaitEndsWithItsContext: a wait for the connection ends
// when its context does, and leaves the queue working.
func TestSQLiteTurnWaitEndsWithItsContext(t *testing.T) {
	ctx := context.Background()
	db := openMigrated(t, dbtest.NewDatabase(t, "sqlite"))
	holder, err := db.SQLite.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := db.SQLite.ExecContext(waitCtx, `UPDATE products SET inventory = inventory`); err == nil {
		t.Fatal("a statement ran while a transaction held the connection")
	}
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.SQLite.QueryRowContext(ctx, `SELECT count(*) FROM products`).Scan(&n); err != nil || n == 0 {
		t.Fatalf("after the wait ended: %d products, %v", n, err)
	}
}
