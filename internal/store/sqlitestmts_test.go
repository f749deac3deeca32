package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestSQLiteStatementCache runs a statement again while rows of the same
// statement are still being read, on the one connection, and more
// distinct statements than the cache keeps: every answer stays right.
func TestSQLiteStatementCache(t *testing.T) {
	ctx := context.Background()
	db := openMigrated(t, dbtest.NewDatabase(t, "sqlite"))
	const query = `SELECT product_id FROM products ORDER BY product_id`

	tx, err := db.SQLite.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var outer, inner []int64
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		outer = append(outer, id)
		// The same text while the rows above are open: a statement of its own.
		var first int64
		if err := tx.QueryRowContext(ctx, query).Scan(&first); err != nil {
			t.Fatal(err)
		}
		inner = append(inner, first)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 2, 3, 4}; !slices.Equal(outer, want) || !slices.Equal(inner, []int64{1, 1, 1, 1}) {
		t.Errorf("outer rows %v, inner first rows %v; want %v and 1 each time", outer, inner, want)
	}

	// More distinct statements than the cache keeps, then the first again.
	for i := range 600 {
		var got int
		if err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d + product_id FROM products WHERE product_id = 1`, i)).Scan(&got); err != nil || got != i+1 {
			t.Fatalf("statement %d: %d, %v", i, got, err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM (`+query+`)`).Scan(&n); err != nil || n != 4 {
		t.Errorf("after the cache started over: %d products, %v", n, err)
	}
}
