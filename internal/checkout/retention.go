package checkout

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/widgetstore/widgetstore/internal/store"
)

// WorkflowRetention is the durable name of the retention workflow.
const WorkflowRetention = "checkout.Retention"

// retentionBatch bounds how many workflows one retention run deletes, so
// that its step stays a short transaction; the next run goes on.
const retentionBatch = 1000

// Retention says how long the records of finished checkouts are kept, and
// how often the old ones are deleted.
type Retention struct {
	Keep  time.Duration // 0: keep them forever
	Every time.Duration
}

// DefaultRetention keeps 30 days, cleaned up every hour.
var DefaultRetention = Retention{Keep: 30 * 24 * time.Hour, Every: time.Hour}

// startRetention starts, once per period of r.Every, the retention run of
// that period. Its workflow id names the period, so the instances sharing
// a database start one run between them, and a run cut by a crash is
// recovered like any workflow.
func (c *Checkout) startRetention(now time.Time) {
	if c.retention.Keep <= 0 || c.retention.Every <= 0 {
		return
	}
	period := now.UTC().Truncate(c.retention.Every)
	if !period.After(c.lastRetention) {
		return
	}
	c.lastRetention = period
	id := "retention:" + period.Format(time.RFC3339Nano)
	if _, err := dbos.RunWorkflow(c.dbosCtx, c.retain, period.Add(-c.retention.Keep), dbos.WithWorkflowID(id)); err != nil {
		c.logger.Warn("starting the retention run", "workflow", id, slog.Any("error", err))
	}
}

// retain is the workflow "checkout.Retention": it deletes the DBOS records
// (status, steps, events, messages) of the checkouts and refunds that ended
// successfully before cutoff, the contacts saved before cutoff that no
// checkout took, and the lock rows of clients that hold no order awaiting
// payment. The shop's own tables keep every order, payment
// and stock move, which the books' audit reads; workflows that failed or
// were cancelled are kept for the operator. A key whose checkout was
// deleted still finds its order (store.PlaceOrder).
func (c *Checkout) retain(ctx dbos.Context, cutoff time.Time) (int, error) {
	ids, err := dbos.RunAsStep(ctx, func(stepCtx context.Context) ([]string, error) {
		found, err := dbos.ListWorkflows(dbos.From(c.dbosCtx, stepCtx),
			dbos.WithFilterName(WorkflowCheckout, WorkflowRefund, WorkflowRetention),
			dbos.WithFilterStatus(dbos.WorkflowStatusSuccess),
			dbos.WithFilterCompletedBefore(cutoff),
			dbos.WithFilterLimit(retentionBatch),
			dbos.WithFilterLoadInput(false), dbos.WithFilterLoadOutput(false))
		if err != nil {
			return nil, fmt.Errorf("listing the checkouts finished before %s: %w", cutoff, err)
		}
		ids := make([]string, len(found))
		for i, w := range found {
			ids[i] = w.ID
		}
		return ids, nil
	}, dbos.WithStepName("retention.findFinished"))
	if err != nil {
		return 0, err
	}
	if len(ids) > 0 {
		if err := dbos.DeleteWorkflows(ctx, ids); err != nil {
			return 0, fmt.Errorf("deleting %d finished checkouts: %w", len(ids), err)
		}
		c.logger.Info("deleted the records of finished checkouts", "count", len(ids), "finished_before", cutoff)
	}
	// Last, so that a run of a build without it replays as it ran.
	if _, err := dbos.RunAsTransaction(ctx, c.ds, func(ctx context.Context, tx dbos.Tx) (int64, error) {
		// Contacts no checkout took (its key was used already) go with
		// the records of the checkouts of their time.
		if _, err := store.PruneContacts(ctx, tx, cutoff); err != nil {
			return 0, err
		}
		return store.PruneClientLocks(ctx, tx)
	}, dbos.WithStepName("retention.pruneClientLocks")); err != nil {
		return 0, err
	}
	return len(ids), nil
}
