package checkout

import (
	"context"
	"log/slog"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos/internals"

	"github.com/widgetstore/widgetstore/internal/store"
)

// TakeOver runs until ctx is done, on PostgreSQL, where several instances
// may share the database. It keeps this instance's heartbeat, and when
// another instance has been silent for longer than silence it recovers
// that instance's pending workflows, as DBOS recovers an instance's own at
// launch: they are re-enqueued and run by whichever live instance dequeues
// them. DBOS fences the silent instance out of them (their owner changes),
// so one that was only slow cannot commit a step of them any more.
//
// DBOS v1.8.0 offers this recovery of other executors only through its
// internals package, the contract with its commercial Conductor, which
// otherwise does this job.
func (c *Checkout) TakeOver(ctx context.Context, executorID string, silence time.Duration) {
	runtime, err := internals.RuntimeOf(c.dbosCtx)
	if err != nil {
		c.logger.Error("taking over silent instances is off", slog.Any("error", err))
		return
	}
	ticker := time.NewTicker(silence / 4)
	defer ticker.Stop()
	for {
		if err := store.Heartbeat(ctx, c.db.Q(), executorID); err != nil && ctx.Err() == nil {
			c.logger.Warn("heartbeat", slog.Any("error", err))
		}
		silent, err := store.SilentExecutors(ctx, c.db.Q(), executorID, silence)
		if err != nil && ctx.Err() == nil {
			c.logger.Warn("looking for silent instances", slog.Any("error", err))
		}
		for _, id := range silent {
			// Its checkouts of older versions too: this build finishes them.
			if err := adopt(ctx, c.db, c.dbosCtx, id, c.logger); err != nil {
				c.logger.Error("taking over a silent instance's workflows", "instance", id, slog.Any("error", err))
				continue
			}
			recovered, err := runtime.RecoverPendingWorkflows([]string{id})
			if err != nil {
				c.logger.Error("taking over a silent instance's workflows", "instance", id, slog.Any("error", err))
				continue
			}
			c.takeoverMetrics.takeovers.Inc()
			c.takeoverMetrics.workflows.Add(float64(len(recovered)))
			c.logger.Warn("took over the workflows of a silent instance", "instance", id, "workflows", len(recovered), "silent_for_more_than", silence)
			if err := store.ForgetExecutor(ctx, c.db.Q(), id, silence); err != nil {
				c.logger.Warn("forgetting a silent instance", "instance", id, slog.Any("error", err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
