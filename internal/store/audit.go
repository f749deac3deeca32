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
	{"an order's stock of a product is reserved at most once and released at most once", `
		SELECT 'order ' || order_id || ', product ' || product_id || ': ' || COUNT(*) || ' ' || reason || ' entries'
		FROM inventory_ledger WHERE order_id IS NOT NULL
		GROUP BY order_id, product_id, reason HAVING COUNT(*) > 1`},
	{"a live order holds the stock of each of its lines (a pending one may not have it yet), a cancelled one holds none", `
		SELECT 'order ' || o.order_id || ' (' || o.status || ', ' || o.cancel_reason || '), product ' || ol.product_id || ': holds ' ||
			-COALESCE(SUM(l.delta), 0) || ' of ' || ol.quantity
		FROM orders o JOIN order_lines ol ON ol.order_id = o.order_id
		LEFT JOIN inventory_ledger l ON l.order_id = o.order_id AND l.product_id = ol.product_id
		GROUP BY o.order_id, o.status, o.cancel_reason, ol.product_id, ol.quantity
		HAVING -COALESCE(SUM(l.delta), 0) <> CASE WHEN o.status = '` + string(shop.StatusCancelled) + `' THEN 0 ELSE ol.quantity END
		   AND NOT (o.status = '` + string(shop.StatusPending) + `' AND COALESCE(SUM(l.delta), 0) = 0)`},
	{"an order's lines add up to its units and its total", `
		SELECT 'order ' || o.order_id || ': ' || o.quantity || ' units for ' || o.total_cents || ' cents, its lines ' ||
			COALESCE(SUM(ol.quantity), 0) || ' for ' || COALESCE(SUM(ol.quantity * ol.unit_price_cents), 0)
		FROM orders o LEFT JOIN order_lines ol ON ol.order_id = o.order_id
		GROUP BY o.order_id, o.quantity, o.total_cents
		HAVING COALESCE(SUM(ol.quantity), 0) <> o.quantity OR COALESCE(SUM(ol.quantity * ol.unit_price_cents), 0) <> o.total_cents`},
	{"a paid order keeps exactly its total of the money taken, any other order keeps none (the rest is owed back)", `
		SELECT 'order ' || o.order_id || ' (' || o.status || '): total ' || o.total_cents || ', keeps ' || COALESCE(SUM(p.amount_cents), 0) ||
			' in ' || COUNT(p.payment_ref) || ' payments'
		FROM orders o LEFT JOIN payments p ON p.order_id = o.order_id AND p.refund_state = ''
		GROUP BY o.order_id, o.status, o.total_cents
		HAVING COUNT(p.payment_ref) <> CASE WHEN o.status IN ('` + string(shop.StatusPaid) + `', '` + string(shop.StatusDispatched) + `') THEN 1 ELSE 0 END
		    OR COALESCE(SUM(p.amount_cents), 0) <> CASE WHEN o.status IN ('` + string(shop.StatusPaid) + `', '` + string(shop.StatusDispatched) + `') THEN o.total_cents ELSE 0 END`},
	{"a payment is kept or owed back", `
		SELECT 'payment ' || payment_ref || ': refund state ' || refund_state
		FROM payments WHERE refund_state NOT IN ('', '` + shop.RefundDue + `', '` + shop.RefundDone + `', '` + shop.RefundAttention + `')`},
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
		lines, err := QueryAll(ctx, q, scanString, a.query)
		if err != nil {
			return nil, fmt.Errorf("auditing %q: %w", a.invariant, err)
		}
		for _, line := range lines {
			breaches = append(breaches, a.invariant+": "+line)
		}
	}
	return breaches, nil
}
