package store

import (
	"context"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// OperatorAction is one line of the operator's audit log.
type OperatorAction struct {
	At         time.Time
	Actor      string // "token", "session <id>", or "anyone" when the shop has no operator token
	Address    string // the client's address
	Action     string // cancel, resume, fork
	WorkflowID string
	Detail     string // the action's arguments, e.g. "from step 3"
	Outcome    string // "ok", the new workflow's id, or why it was refused
}

// RecordOperatorAction appends an action to the operator's audit log.
func RecordOperatorAction(ctx context.Context, q dbos.Querier, a OperatorAction) error {
	_, err := q.Exec(ctx, `
		INSERT INTO operator_actions (at_ms, actor, address, action, workflow_id, detail, outcome)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		a.At.UnixMilli(), a.Actor, a.Address, a.Action, a.WorkflowID, a.Detail, a.Outcome)
	if err != nil {
		return fmt.Errorf("recording the operator's %s of %s: %w", a.Action, a.WorkflowID, err)
	}
	return nil
}

// OperatorActions returns the newest actions of the audit log first, at
// most limit of them.
func OperatorActions(ctx context.Context, q dbos.Querier, limit int) ([]OperatorAction, error) {
	actions, err := QueryAll(ctx, q, func(row dbos.Row) (OperatorAction, error) {
		var a OperatorAction
		err := row.Scan((*msTime)(&a.At), &a.Actor, &a.Address, &a.Action, &a.WorkflowID, &a.Detail, &a.Outcome)
		return a, err
	}, `SELECT at_ms, actor, address, action, workflow_id, detail, outcome FROM operator_actions
		ORDER BY at_ms DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing the operator's actions: %w", err)
	}
	return actions, nil
}

// PendingPastDeadline counts the orders still PENDING whose payment
// deadline passed more than grace ago: their checkout should have
// cancelled them by now, and has not (it is cancelled, failed or stranded).
func PendingPastDeadline(ctx context.Context, q dbos.Querier, now time.Time, grace time.Duration) ([]string, error) {
	ids, err := QueryAll(ctx, q, scanString, `
		SELECT checkout_id FROM orders WHERE status = $1 AND payment_deadline_ms < $2
		ORDER BY payment_deadline_ms LIMIT 100`, shop.StatusPending, now.Add(-grace).UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("listing pending orders past their deadline: %w", err)
	}
	return ids, nil
}

// ExecutorHeartbeats returns every instance's last heartbeat (PostgreSQL
// only: on SQLite one process runs the shop and there is no table).
func ExecutorHeartbeats(ctx context.Context, q dbos.Querier) (map[string]time.Time, error) {
	type beat struct {
		id string
		at time.Time
	}
	beats, err := QueryAll(ctx, q, func(row dbos.Row) (beat, error) {
		var b beat
		err := row.Scan(&b.id, (*msTime)(&b.at))
		return b, err
	}, `SELECT executor_id, heartbeat_at_ms FROM executors ORDER BY executor_id`)
	if err != nil {
		return nil, fmt.Errorf("reading the instances' heartbeats: %w", err)
	}
	out := make(map[string]time.Time, len(beats))
	for _, b := range beats {
		out[b.id] = b.at
	}
	return out, nil
}

// LedgerEntry is one move of an order's stock.
type LedgerEntry struct {
	ProductID int64
	Delta     int // negative: taken from stock
	Reason    string
	At        time.Time
}

// OrderLedger returns an order's entries in the stock ledger, oldest
// first: a reservation per line, and a release if it was cancelled.
func OrderLedger(ctx context.Context, q dbos.Querier, orderID int64) ([]LedgerEntry, error) {
	entries, err := QueryAll(ctx, q, func(row dbos.Row) (LedgerEntry, error) {
		var e LedgerEntry
		err := row.Scan(&e.ProductID, &e.Delta, &e.Reason, (*msTime)(&e.At))
		return e, err
	}, `SELECT product_id, delta, reason, created_at_ms FROM inventory_ledger WHERE order_id = $1 ORDER BY entry_id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("reading the stock ledger of order %d: %w", orderID, err)
	}
	return entries, nil
}
