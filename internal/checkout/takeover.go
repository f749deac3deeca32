package checkout

import (
	"context"
	"log/slog"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos/internals"

	"github.com/widgetstore/widgetstore/internal/store"
)

// TakeOver runs until ctx is done, on PostgreSQL, where several instances
// may share the database. It records this instance's heartbeat every
// heartbeat, and when another instance has been silent for longer than
// after, and for longer than store.HeartbeatMargin of the heartbeats that
// instance recorded, it recovers that instance's pending workflows, as
// DBOS recovers an instance's own at launch: they are re-enqueued and run
// by whichever live instance dequeues them. DBOS fences the silent instance
// out of them (their owner changes), so one that was only slow cannot
// commit a step of them any more.
//
// after must be at least store.HeartbeatMargin times heartbeat (the
// command refuses to start otherwise); TakeOver does nothing but log
// when it is not.
//
// DBOS v1.8.0 offers this recovery of other executors only through its
// internals package, the contract with its commercial Conductor, which
// otherwise does this job.
func (c *Checkout) TakeOver(ctx context.Context, executorID string, heartbeat, after time.Duration) {
	if heartbeat <= 0 || after < store.HeartbeatMargin*heartbeat {
		c.logger.Error("taking over silent instances is off: the silence must be at least the margin times the heartbeat",
			"heartbeat", heartbeat, "after", after, "margin", store.HeartbeatMargin)
		return
	}
	runtime, err := internals.RuntimeOf(c.dbosCtx)
	if err != nil {
		c.logger.Error("taking over silent instances is off", slog.Any("error", err))
		return
	}
	ticker := time.NewTicker(heartbeat)
	defer ticker.Stop()
	beats := steadyBeats{interval: heartbeat}
	for {
		err := store.Heartbeat(ctx, c.db.Q(), executorID, heartbeat)
		if err != nil && ctx.Err() == nil {
			c.logger.Warn("heartbeat", slog.Any("error", err))
		}
		if beats.note(err == nil, time.Now()) >= after {
			c.takeOverSilent(ctx, runtime, executorID, after)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// takeOverSilent recovers the workflows of every instance silent for
// longer than after.
func (c *Checkout) takeOverSilent(ctx context.Context, runtime internals.Runtime, executorID string, after time.Duration) {
	silent, err := store.SilentExecutors(ctx, c.db.Q(), executorID, after)
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
		c.logger.Warn("took over the workflows of a silent instance", "instance", id, "workflows", len(recovered), "silent_for_more_than", after)
		if err := store.ForgetExecutor(ctx, c.db.Q(), id, after); err != nil {
			c.logger.Warn("forgetting a silent instance", "instance", id, slog.Any("error", err))
		}
	}
}

// steadyBeats follows this instance's own heartbeats. While this instance
// could not beat (its database out of reach, failing over, or the process
// paused), the others may not have been able to either: their rows look
// silent then without their being dead. So an instance takes others over
// only once its own beats have been steady for the whole silence it
// allows them, time in which every live instance has beaten again.
type steadyBeats struct {
	interval time.Duration
	since    time.Time // the first beat of the current steady run; zero: none
	last     time.Time // the last beat that got through
}

// note records a beat, written or not, at now, and returns how long the
// beats have been steady: none failed, none later than the margin.
func (b *steadyBeats) note(ok bool, now time.Time) time.Duration {
	switch {
	case !ok:
		b.since = time.Time{}
		return 0
	case b.since.IsZero() || now.Sub(b.last) > store.HeartbeatMargin*b.interval:
		b.since = now
	}
	b.last = now
	return now.Sub(b.since)
}
