package checkout_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// TestNoPersonalDataInDBOSRecords runs checkouts with an email address and
// a client address (paid and dispatched, refused, timed out) and finds
// neither in any of DBOS's tables (workflow inputs and outputs, step
// outputs, events, messages), which DBOS keeps for the retention's 30
// days; the order's row has both, and the receipts went to the address.
func TestNoPersonalDataInDBOSRecords(t *testing.T) {
	const email, client = "ada.lovelace@example.com", "203.0.113.77"
	dbtest.RunEach(t, func(t *testing.T, url string) {
		cfg := fastConfig
		cfg.PaymentTimeout, cfg.PendingUnitsPerClient = 2*time.Second, 20
		f := setup(t, url, cfg)
		ctx := context.Background()
		req := checkout.Request{ProductID: 1, Quantity: 1, Email: email, Client: client}

		paid, err := f.co.Place(ctx, "personal-paid", req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.co.Pay(ctx, paid.PaymentID, shop.PaymentPaid); err != nil {
			t.Fatal(err)
		}
		refused, err := f.co.Place(ctx, "personal-refused", req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.co.Pay(ctx, refused.PaymentID, shop.PaymentFailed); err != nil {
			t.Fatal(err)
		}
		unpaid, err := f.co.Place(ctx, "personal-unpaid", req)
		if err != nil {
			t.Fatal(err)
		}
		dispatched := f.awaitOrder(t, paid.OrderID, shop.StatusDispatched)
		f.awaitOrder(t, refused.OrderID, shop.StatusCancelled)
		f.awaitOrder(t, unpaid.OrderID, shop.StatusCancelled)
		if dispatched.Email != email {
			t.Errorf("the order's email is %q, want %q", dispatched.Email, email)
		}
		awaitFinished(t, f, "personal-paid", "personal-refused", "personal-unpaid")
		if n := countWhere(t, f.db, "SELECT COUNT(*) FROM orders WHERE client = $1 AND email = $2", client, email); n != 3 {
			t.Errorf("%d orders record the client and the email, want 3", n)
		}
		if n := countWhere(t, f.db, "SELECT COUNT(*) FROM receipts WHERE recipient = $1", email); n != 2 {
			t.Errorf("%d receipts to the address, want 2 (paid, dispatched)", n)
		}
		if n := countWhere(t, f.db, "SELECT COUNT(*) FROM checkout_contacts"); n != 0 {
			t.Errorf("%d contacts left after the checkouts placed their orders, want 0", n)
		}

		values := dbosValues(t, f.db)
		if len(values) < 10 {
			t.Fatalf("read only %d values from DBOS's tables", len(values))
		}
		for _, v := range values {
			for _, secret := range []string{email, client} {
				if strings.Contains(v.text, secret) {
					t.Errorf("DBOS's %s.%s holds %q: %.200s", v.table, v.column, secret, v.text)
				}
			}
		}
	})
}

// awaitFinished waits for the checkouts of ids to end: DBOS records their
// outcomes after their last step.
func awaitFinished(t *testing.T, f fixture, ids ...string) {
	t.Helper()
	table := "workflow_status"
	if f.db.SQLite == nil {
		table = "dbos.workflow_status"
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n := 0
		for _, id := range ids {
			n += countWhere(t, f.db, "SELECT COUNT(*) FROM "+table+" WHERE workflow_uuid = $1 AND status = 'SUCCESS'", id)
		}
		if n == len(ids) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the checkouts %q ended", n, ids)
		}
	}
}

func countWhere(t *testing.T, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Q().QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// dbosValue is one value of one of DBOS's tables, as text, and decoded
// from base64 (DBOS's JSON serializer stores base64 of the JSON) where it
// decodes.
type dbosValue struct{ table, column, text string }

// dbosValues reads every column of every row of DBOS's tables.
func dbosValues(t *testing.T, db *store.DB) []dbosValue {
	t.Helper()
	ctx := context.Background()
	q := db.Q()
	tables := []string{"workflow_status", "operation_outputs", "workflow_events", "workflow_events_history", "notifications", "streams"}
	var values []dbosValue
	for _, table := range tables {
		columnsQuery, qualified := "SELECT name FROM pragma_table_info($1)", table
		if db.SQLite == nil {
			columnsQuery, qualified = "SELECT column_name FROM information_schema.columns WHERE table_schema = 'dbos' AND table_name = $1", "dbos."+table
		}
		columns, err := store.QueryAll(ctx, q, func(row dbos.Row) (c string, err error) { return c, row.Scan(&c) }, columnsQuery, table)
		if err != nil {
			t.Fatal(err)
		}
		if len(columns) == 0 {
			t.Fatalf("DBOS's table %s has no columns", table)
		}
		for _, column := range columns {
			texts, err := store.QueryAll(ctx, q, func(row dbos.Row) (s string, err error) { return s, row.Scan(&s) },
				`SELECT COALESCE(CAST("`+column+`" AS TEXT), '') FROM `+qualified)
			if err != nil {
				t.Fatal(err)
			}
			for _, text := range texts {
				if decoded, err := base64.StdEncoding.DecodeString(text); err == nil {
					text += "\n" + string(decoded)
				}
				values = append(values, dbosValue{table, column, text})
			}
		}
	}
	return values
}
