package checkout

import (
	"context"
	"fmt"
	"slices"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// stepRecv is the name DBOS v1.8.0 records a Recv under: the checkout's
// wait for its payment word.
const stepRecv = "DBOS.recv"

// rewindable says whether Rewind takes workflow w: a checkout that failed.
func rewindable(w dbos.WorkflowStatus) bool {
	return w.Name == WorkflowCheckout && w.Status == dbos.WorkflowStatusError
}

// Rewind runs a failed checkout again in place, under its own id, from
// startStep: DBOS drops its checkpoints from there on (the database
// transactions' included) and runs them again, on this instance or another
// of its version. It is refused, with an error of kind shop.ErrConflict
// saying why, for a checkout that did not fail, one a fork carries on, a
// step that would apply one of the checkout's effects twice
// (replayRefusal), or a version this build cannot replay.
//
// DBOS's rewind deletes every message not yet consumed, and those the
// dropped steps consumed: a payment word the checkout took at or after
// startStep, or one that came while it lay failed. The order row keeps
// what the word said, so a paid order's word is sent again, after the
// rewind (a word sent before it would be deleted too). Should the replay
// reach its wait first, it waits for it; past the deadline, it times out
// and cancelUnpaid finds the order paid and goes on with it. A payment
// reported between the rewind and the read of the order sends its own
// word too: the checkout takes one and leaves the other unread. The other
// caveat, that a replayed Send is delivered twice, does not arise: no
// checkout step sends (the webhook does, outside the workflow). All of
// this is of the checkouts before version5: a checkout of version5 waits
// on its order's row, which the rewind leaves as it is, and its replayed
// wait is woken by the poll of the settlements (settlement.go).
func (c *Checkout) Rewind(ctx context.Context, id string, startStep int) error {
	d, err := c.Workflow(ctx, id)
	if err != nil {
		return err
	}
	if !d.Rewindable {
		return shop.Errorf(shop.ErrConflict, "workflow %s is a %s %s: only a checkout that failed (ERROR) is rewound; resume a CANCELLED one", id, d.Status, d.Name)
	}
	if err := replayRefusal(d, startStep, "rewinding"); err != nil {
		return err
	}
	if fork, err := c.liveFork(ctx, id); err != nil {
		return err
	} else if fork != "" {
		return shop.Errorf(shop.ErrConflict, "workflow %s was forked as %s, which carries on its work: rewinding it too would run its order twice", id, fork)
	}
	opts := []dbos.RewindWorkflowOption{dbos.WithRewindStartStep(uint(startStep))}
	// DBOS runs only the workflows of its own version: one recorded under
	// a version this build replays is restamped with this build's.
	if version := dbos.GetApplicationVersion(c.dbosCtx); d.AppVersion != version {
		if !slices.Contains(AdoptedVersions, d.AppVersion) {
			return shop.Errorf(shop.ErrConflict, "checkout %s ran under version %s, which this build (%s) does not replay: rewind it from an instance of its version", id, d.AppVersion, version)
		}
		opts = append(opts, dbos.WithRewindApplicationVersion(version))
	}
	if _, err := dbos.RewindWorkflow[Result](c.dbosCtx, id, opts...); err != nil {
		return fmt.Errorf("rewinding workflow %s to step %d: %w", id, startStep, err)
	}
	if d.Order == nil || !rewindsWait(d, startStep) {
		return nil // no order to be paid (a refusal failed to publish), or its word kept
	}
	order, err := store.GetOrder(ctx, c.db.Q(), d.Order.ID)
	if err != nil {
		return fmt.Errorf("reading the order of rewound checkout %s: %w", id, err)
	}
	if order.Status != shop.StatusPaid || order.CheckoutVersion >= version5 {
		return nil // a payment reported from now on sends its own word; a checkout of version5 reads the row
	}
	word := paymentWord{Status: shop.PaymentPaid, PaidAt: order.PaidAt}
	if err := dbos.Send(dbos.From(c.dbosCtx, ctx), id, word, topicPayment); err != nil {
		return fmt.Errorf("sending rewound checkout %s the word of its order %d, paid: %w", id, order.ID, err)
	}
	return nil
}

// rewindsWait says whether rewinding checkout d to startStep drops its
// payment wait's checkpoint, or lands before a wait it never reached.
func rewindsWait(d WorkflowDetail, startStep int) bool {
	for _, s := range d.Steps {
		if s.Name == stepRecv {
			return startStep <= s.ID
		}
	}
	return true
}
