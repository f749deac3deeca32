package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// SweptFromVersion is the first checkout version (the orders'
// checkout_version) whose orders the dispatch sweep dispatches
// (DispatchDue): the checkouts of widgetstore-5 end when their order is
// paid. The orders of older checkouts are dispatched by their own
// checkout (MarkDispatched), and the sweep never takes them.
const SweptFromVersion = 5

// sweptDue is the condition of the orders the sweep takes, due at $1,
// written as the index orders_dispatch_due (migration 0017) is: 'PAID'
// and the version literally, and the due time as its expression.
var sweptDue = `status = 'PAID' AND checkout_version >= ` + strconv.Itoa(SweptFromVersion) + `
	AND paid_at_ms + dispatch_steps * dispatch_interval_ms <= $1`

// AnyDispatchDue says whether an order of the swept checkouts is due for
// its dispatch at now (DispatchDue): one read of the index, outside any
// transaction, so that a sweep that finds none costs no more.
func AnyDispatchDue(ctx context.Context, q dbos.Querier, now time.Time) (bool, error) {
	var one int
	err := q.QueryRow(ctx, `SELECT 1 FROM orders WHERE `+sweptDue+` LIMIT 1`, now.UnixMilli()).Scan(&one)
	switch {
	case IsNoRows(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("looking for the orders due for their dispatch: %w", err)
	}
	return true, nil
}

// DispatchDue moves to DISPATCHED the paid orders of the swept checkouts
// (SweptFromVersion) whose last dispatch step is due at now, the earliest
// first, at most limit of them, and returns them as they then are, with
// their email addresses for their receipts. The update checks the status
// it moves from: two sweeps at once (two instances) dispatch each order
// once, the second finding it DISPATCHED already.
func DispatchDue(ctx context.Context, tx dbos.Querier, now time.Time, limit int) ([]shop.Order, error) {
	orders, err := QueryAll(ctx, tx, func(row dbos.Row) (o shop.Order, err error) { return o, row.Scan(settledFields(&o)...) }, `
		UPDATE orders SET status = $2, dispatched_at_ms = $1, updated_at_ms = $1
		WHERE order_id IN (SELECT order_id FROM orders WHERE `+sweptDue+`
			ORDER BY paid_at_ms + dispatch_steps * dispatch_interval_ms LIMIT $3)
		  AND status = 'PAID'
		RETURNING `+settledColumns,
		now.UnixMilli(), shop.StatusDispatched, limit)
	if err != nil {
		return nil, fmt.Errorf("dispatching the orders due: %w", err)
	}
	return orders, nil
}

// DispatchesOverdue lists the checkouts of the paid orders that the sweep
// should have dispatched before before (DispatchDue), the most overdue
// first, at most limit: no instance swept them.
func DispatchesOverdue(ctx context.Context, q dbos.Querier, before time.Time, limit int) ([]string, error) {
	ids, err := QueryAll(ctx, q, scanString, `SELECT checkout_id FROM orders WHERE `+sweptDue+`
		ORDER BY paid_at_ms + dispatch_steps * dispatch_interval_ms LIMIT $2`, before.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("listing the orders overdue for their dispatch: %w", err)
	}
	return ids, nil
}
