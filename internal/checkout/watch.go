package checkout

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/store"
)

// watchInterval is how often the watch probes the database, looks for
// stranded checkouts and sees whether a retention run or a sweep of the
// refunds due is.
const watchInterval = time.Second

// watch keeps the shop healthy between restarts. DBOS recovers the
// workflows left pending only when it launches; but a workflow whose
// outcome could not be written (a full disk, a database that refused a
// write) stays PENDING with nothing running it for as long as the process
// lives, its order holding its stock. So every checkout that returns is
// noted, and one that is still PENDING a tick or two later is resumed from
// its last checkpoint. And the watch writes to the database every tick,
// so the shop can say it is not ready while its database refuses writes.
type watch struct {
	mu       sync.Mutex
	returned []string // checkouts that returned since the last tick
	probeErr error    // the last write probe's error
}

// noteReturned records that a checkout's function returned: DBOS records
// its outcome next.
func (w *watch) noteReturned(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.returned = append(w.returned, id)
}

// Healthy returns an error while the database refuses writes.
func (c *Checkout) Healthy() error {
	c.watch.mu.Lock()
	defer c.watch.mu.Unlock()
	return c.watch.probeErr
}

// runWatch runs the watch until ctx is done.
func (c *Checkout) runWatch(ctx context.Context, executorID string) {
	ticker := time.NewTicker(watchInterval)
	defer ticker.Stop()
	var due []string // returned a tick ago or more: their outcome is written by now
	var lastSweep time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			c.startRetention(now)
			if now.Sub(lastSweep) >= refundsSweptEvery {
				c.sweepRefunds(ctx, now)
				c.sweepReceipts(ctx, now)
				lastSweep = now
			}
		}
		probeErr := store.ProbeWrite(ctx, c.db.Q(), executorID)
		if probeErr != nil && ctx.Err() == nil {
			c.logger.Warn("the database refuses writes", slog.Any("error", probeErr))
		}
		c.watch.mu.Lock()
		if c.watch.probeErr != nil && probeErr == nil {
			c.logger.Info("the database takes writes again")
		}
		c.watch.probeErr = probeErr
		next := c.watch.returned
		c.watch.returned = nil
		c.watch.mu.Unlock()

		if len(due) > 0 {
			stranded, err := c.resumeStranded(ctx, due)
			if err != nil && ctx.Err() == nil {
				c.logger.Warn("looking for stranded checkouts", slog.Any("error", err))
			}
			next = append(next, stranded...) // not resumed yet: again next tick
		}
		due = next
	}
}

// resumeStranded resumes those of the checkouts ids that are still
// PENDING although their function returned. It returns the ids it could
// not resume.
func (c *Checkout) resumeStranded(ctx context.Context, ids []string) ([]string, error) {
	pending, err := dbos.ListWorkflows(dbos.From(c.dbosCtx, ctx), dbos.WithFilterWorkflowIDs(ids...),
		dbos.WithFilterStatus(dbos.WorkflowStatusPending), dbos.WithFilterLoadInput(false), dbos.WithFilterLoadOutput(false))
	if err != nil {
		return ids, err
	}
	var failed []string
	var errs []error
	for _, w := range pending {
		if _, err := dbos.ResumeWorkflow[any](c.dbosCtx, w.ID); err != nil {
			failed = append(failed, w.ID)
			errs = append(errs, err)
			continue
		}
		c.logger.Warn("resumed a checkout left pending by a failed write", "workflow", w.ID)
	}
	return slices.Clip(failed), errors.Join(errs...)
}
