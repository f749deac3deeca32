package checkout

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// How a request learns what its checkout placed. The checkout it started
// hands its placement off in this process (placementWaiters); for a key
// whose checkout was started before (another instance's, one recovered
// here, a key sent again after its checkout ended) the placement is read
// from the steps DBOS recorded: placeOrder's output and, paid through the
// provider, createIntent's. Every version of the checkout records them
// alike, so the read answers for the checkouts of widgetstore-4 and older
// too, whose placement event (EventPlaced) nothing reads any more.

// placementPoll is how often a request reads again the records of a
// checkout that has not placed yet and does not run in this process.
const placementPoll = 100 * time.Millisecond

// stepCancelUnpaid is the name that cancelUnpaid's step records.
const stepCancelUnpaid = "checkout.cancelUnpaid"

// handOffWait is how long a request waits for the hand-off of the
// checkout it started before it reads the checkout's records too: the
// hand-off comes in the time the first step takes, milliseconds, unless
// the payment provider is slow to give an intent or the checkout was
// cancelled while it placed, and then never.
const handOffWait = 2 * time.Second

// awaitPlacement waits for the placement of checkout key for the request
// of w: handed off by the checkout when the request started it (started),
// read from the checkout's records when it did not, or when the hand-off
// is late. A failure for want of the database (a full disk, say) is that
// error, so the client is told to send the same key again, as it was when
// the event that would have told it could not be written either.
func (c *Checkout) awaitPlacement(ctx context.Context, key string, w *placementWaiter, started bool) (placement, error) {
	if started {
		wait := time.NewTimer(handOffWait)
		defer wait.Stop()
		select {
		case h := <-w.handed:
			return h.result()
		case <-wait.C:
		case <-ctx.Done():
			return placement{}, ctx.Err()
		}
	}
	return c.readPlacement(ctx, key, w)
}

// result is the placement handed off, or the error that kept it from
// being placed when that error is the database's.
func (h handOff) result() (placement, error) {
	if store.IsUnavailable(h.err) {
		return placement{}, h.err
	}
	return h.placement, nil
}

// readPlacement is the placement of checkout key read from its records,
// again every placementPoll until it has placed or ended, unless its
// hand-off to w comes first (it runs here). w registered before the
// checkout could start, so a hand-off before w is in the records read.
func (c *Checkout) readPlacement(ctx context.Context, key string, w *placementWaiter) (placement, error) {
	poll := time.NewTicker(placementPoll)
	defer poll.Stop()
	for {
		if p, ok, err := c.recordedPlacement(ctx, key); ok || err != nil {
			return p, err
		}
		select {
		case h := <-w.handed:
			return h.result()
		case <-poll.C:
		case <-ctx.Done():
			return placement{}, ctx.Err()
		}
	}
}

// recordedPlacement is the placement of checkout key as DBOS recorded it,
// and whether there is one: false while the checkout has not placed yet.
// A checkout that ended without placing (it failed, or was cancelled) has
// the failure for placement. Its status is read before its steps: a
// checkout found ended had recorded every step it would.
func (c *Checkout) recordedPlacement(ctx context.Context, key string) (placement, bool, error) {
	dctx := dbos.From(c.dbosCtx, ctx)
	found, err := dbos.ListWorkflows(dctx, dbos.WithFilterWorkflowIDs(key), dbos.WithFilterLoadOutput(false))
	if err != nil {
		return placement{}, false, fmt.Errorf("reading checkout %s: %w", key, err)
	}
	if len(found) == 0 || found[0].Name != WorkflowCheckout {
		return placement{}, false, fmt.Errorf("workflow %s, found started, is no checkout now", key)
	}
	w := found[0]
	var in input
	if err := json.Unmarshal(toJSON(w.Input), &in); err != nil {
		return placement{}, false, fmt.Errorf("reading the input of checkout %s: %w", key, err)
	}
	steps, err := dbos.GetWorkflowSteps(dctx, key)
	if err != nil {
		return placement{}, false, fmt.Errorf("reading the steps of checkout %s: %w", key, err)
	}
	if o, ok := recordedOutcome(steps, in, c.cfg.PendingUnitsPerClient); ok {
		return publication(in, o), true, nil
	}
	switch w.Status {
	case dbos.WorkflowStatusPending, dbos.WorkflowStatusEnqueued, dbos.WorkflowStatusDelayed:
		return placement{}, false, nil
	}
	reason := fmt.Sprintf("it ended %s without placing", w.Status)
	if w.Error != nil {
		reason = w.Error.Error()
	}
	return publication(in, failed{reason: reason}), true, nil
}

// recordedOutcome is the outcome that place returned, read from the steps
// it recorded, and whether it has returned; case by case as place. The
// limit is this instance's: placeOrder records what the client held, not
// what it may hold.
func recordedOutcome(steps []dbos.StepInfo, in input, limit int) (outcome, bool) {
	placeOrder, ok := stepAfter(steps, stepPlaceOrder, -1)
	if !ok {
		return nil, false
	}
	var p placedOutput
	if err := stepOutput(placeOrder, &p); err != nil {
		return failed{reason: err.Error()}, true
	}
	switch {
	case p.Screened:
		return screened{until: p.HeldUntil}, true
	case p.Limited:
		return limited{held: p.Held, limit: limit, until: p.HeldUntil}, true
	case p.Status == shop.StatusCancelled && p.CancelReason == shop.ReasonOutOfStock:
		return outOfStock{order: p.order(), unavailable: p.Unavailable}, true
	case in.ViaProvider && p.Status == shop.StatusPending:
		return recordedIntent(steps, placeOrder.StepID, p.order())
	}
	return placed{order: p.order()}, true
}

// recordedIntent is createIntent's outcome for order, read from the steps
// after placeOrder's (the step numbered placedAt), and whether it has
// returned.
func recordedIntent(steps []dbos.StepInfo, placedAt int, order orderOutput) (outcome, bool) {
	created, ok := stepAfter(steps, stepCreateIntent, placedAt)
	if !ok {
		return nil, false
	}
	var intent payment.Intent
	if stepOutput(created, &intent) == nil {
		return placed{order: order, intent: intent}, true
	}
	// No intent: the order was cancelled for want of one, unless a
	// payment got to it first.
	cancelled, ok := stepAfter(steps, stepCancelUnpaid, created.StepID)
	if !ok {
		return nil, false
	}
	var o orderOutput
	if err := stepOutput(cancelled, &o); err != nil {
		return failed{order: order, reason: err.Error()}, true
	}
	if o.Status == shop.StatusCancelled {
		o.PaymentID = ""
		return failed{order: o, reason: shop.ReasonProviderDown}, true
	}
	return placed{order: order}, true
}

// recordedPayURL is where the customer of checkout id pays: the page of
// the payment intent its createIntent recorded, "" when it recorded none.
func (c *Checkout) recordedPayURL(ctx context.Context, checkoutID string) (string, error) {
	steps, err := dbos.GetWorkflowSteps(dbos.From(c.dbosCtx, ctx), checkoutID)
	if err != nil {
		return "", fmt.Errorf("reading the steps of checkout %s: %w", checkoutID, err)
	}
	var intent payment.Intent
	if created, ok := stepAfter(steps, stepCreateIntent, -1); ok && stepOutput(created, &intent) == nil {
		return intent.PayURL, nil
	}
	return "", nil
}

// stepAfter is the first step named name after the step at id after.
func stepAfter(steps []dbos.StepInfo, name string, after int) (dbos.StepInfo, bool) {
	for _, s := range steps {
		if s.StepID > after && s.StepName == name {
			return s, true
		}
	}
	return dbos.StepInfo{}, false
}

// stepOutput decodes a step's recorded output into v, or returns the
// error it recorded.
func stepOutput(s dbos.StepInfo, v any) error {
	if s.Error != nil {
		return s.Error
	}
	if err := json.Unmarshal(toJSON(s.Output), v); err != nil {
		return fmt.Errorf("reading the output of step %s: %w", s.StepName, err)
	}
	return nil
}
