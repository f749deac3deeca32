package store

import (
	"context"
	"fmt"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// auditQueries each list what breaks one of the shop's invariants, one
// line of text per breach. None should ever return a row.
var auditQueries = []struct{ invariant, query string }{
	{"a product's stock equals its ledger's sum", `
		SELECT 'product ' || p.product_id || ': inventory ' || p.inventory || ', ledger ' || COALESCE(SUM(l.delta), 0)
		FROM products p LEFT JOIN inventory_ledger l ON l.product_id = p.product_id
		GROUP BY p.product_id, p.inventory
		HAVING p.inventory <> COALESCE(SUM(l.delta), 0)`},
	{"an order's stock is reserved at most once and released at most once", `
		SELECT 'order ' || order_id || ': ' || COUNT(*) || ' ' || reason || ' entries'
		FROM inventory_ledger WHERE order_id IS NOT NULL
		GROUP BY order_id, reason HAVING COUNT(*) > 1`},
	{"a live order holds its stock (a pending one may not have it yet), a cancelled one holds none", `
		SELECT 'order ' || o.order_id || ' (' || o.status || ', ' || o.cancel_reason || '): holds ' || -COALESCE(SUM(l.delta), 0) || ' of ' || o.quantity
		FROM orders o LEFT JOIN inventory_ledger l ON l.order_id = o.order_id
		GROUP BY o.order_id, o.status, o.cancel_reason, o.quantity
		HAVING -COALESCE(SUM(l.delta), 0) <> CASE WHEN o.status = '` + string(shop.StatusCancelled) + `' THEN 0 ELSE o.quantity END
		   AND NOT (o.status = '` + string(shop.StatusPending) + `' AND COALESCE(SUM(l.delta), 0) = 0)`},
	{"an order has a paid time exactly when paid, and is dispatched no sooner than its dispatch allows", `
		SELECT 'order ' || order_id || ' (' || status || '): paid at ' || COALESCE(paid_at_ms, 0) || ', dispatched at ' || COALESCE(dispatched_at_ms, 0)
		FROM orders
		WHERE (status IN ('` + string(shop.StatusPaid) + `', '` + string(shop.StatusDispatched) + `')) <> (paid_at_ms IS NOT NULL)
		   OR (status = '` + string(shop.StatusDispatched) + `') <> (dispatched_at_ms IS NOT NULL)
		   OR dispatched_at_ms < paid_at_ms + dispatch_steps * dispatch_interval_ms`},
}

// Audit checks the shop's books: stock against the ledger, and every order
// against the stock it holds. It returns one line per breach, none when the
// books are right.
func Audit(ctx context.Context, q dbos.Querier) ([]string, error) {
	breaches := []string{}
	for _, a := range auditQueries {
		lines, err := queryAll(ctx, q, scanString, a.query)
		if err != nil {
			return nil, fmt.Errorf("auditing %q: %w", a.invariant, err)
		}
		for _, line := range lines {
			breaches = append(breaches, a.invariant+": "+line)
		}
	}
	return breaches, nil
}
