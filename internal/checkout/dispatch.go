package checkout

import (
	"context"
	"log/slog"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// The dispatch of the checkouts of version5 and later. Their checkout ends
// when its order is paid; the order becomes DISPATCHED when its last
// progress step is due (shop.Order.DispatchDone, counted from the recorded
// payment time), moved there by a sweep that every instance runs: one
// transaction moves the orders due and enqueues their dispatched receipts
// (store.DispatchDue), whose status guard dispatches each order once when
// instances sweep at once. Those receipts are then queued to be sent
// (queueReceipt), as the checkout's step sent them; one that could not go,
// or a crash kept from going, is sent by the watch's sweep of the receipts
// (sweepReceipts). Older
// checkouts dispatch their own orders (dispatch), which the sweep never
// takes.

const (
	// sweepEveryMost bounds how long an order due waits for its dispatch:
	// the sweep runs once a dispatch interval, and at least once a second.
	sweepEveryMost = time.Second
	// sweepEveryLeast keeps a shop with (nearly) no dispatch interval
	// from sweeping without pause.
	sweepEveryLeast = 10 * time.Millisecond
	// sweptAtOnce bounds the orders one sweep's transaction dispatches;
	// the sweep goes on at once while it finds that many.
	sweptAtOnce = 500
)

// sweepEvery is how often the instance sweeps the dispatches due.
func (c *Checkout) sweepEvery() time.Duration {
	return min(sweepEveryMost, max(c.cfg.DispatchInterval, sweepEveryLeast))
}

// runDispatchSweep sweeps the dispatches due every sweepEvery until ctx is
// done; their dispatched receipts are queued (queueReceipt), so that a
// slow mail server does not hold the dispatches.
func (c *Checkout) runDispatchSweep(ctx context.Context) {
	ticker := time.NewTicker(c.sweepEvery())
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		for {
			dispatched, err := c.sweepDispatches(ctx, time.Now())
			if err != nil {
				if ctx.Err() == nil {
					c.logger.Warn("dispatching the orders due", slog.Any("error", err))
				}
				break
			}
			for _, o := range dispatched {
				if o.Email != "" {
					c.queueReceipt(o.ID, receipt.StageDispatched)
				}
			}
			if len(dispatched) < sweptAtOnce {
				break
			}
		}
	}
}

// sweepDispatches dispatches the orders due at now, and enqueues their
// dispatched receipts, in one transaction (in a span when the checkout
// traces); it returns them. A read first sees whether any is due: an idle
// shop sweeps with it alone, and traces nothing.
func (c *Checkout) sweepDispatches(ctx context.Context, now time.Time) ([]shop.Order, error) {
	if due, err := store.AnyDispatchDue(ctx, c.db.Q(), now); err != nil || !due {
		return nil, err
	}
	dispatched, err := tracedSweep(ctx, c, func(ctx context.Context) ([]shop.Order, error) { return c.dispatchDue(ctx, now) })
	if err != nil {
		return nil, err
	}
	c.metrics.settled[shop.StatusDispatched].Add(float64(len(dispatched)))
	return dispatched, nil
}

// dispatchDue is the sweep's transaction: it dispatches the orders due at
// now, at most sweptAtOnce, and enqueues their dispatched receipts.
func (c *Checkout) dispatchDue(ctx context.Context, now time.Time) ([]shop.Order, error) {
	var dispatched []shop.Order
	err := c.db.InTx(ctx, func(tx dbos.Tx) error {
		var err error
		if dispatched, err = store.DispatchDue(ctx, tx, now, sweptAtOnce); err != nil {
			return err
		}
		for _, o := range dispatched {
			if err := c.enqueueReceipt(ctx, tx, o, receipt.StageDispatched, 0, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dispatched, nil
}

// dispatchOverdueAfter is how long past its due time a swept order may
// stay PAID before the console lists it (Stuck.DispatchOverdue): two
// sweeps, and a watch tick for a sweep's transaction under load.
func (c *Checkout) dispatchOverdueAfter() time.Duration { return 2*c.sweepEvery() + watchInterval }
