package checkout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// Request is what a checkout buys, and for whom.
type Request struct {
	// The seed's checkout buys one line, ProductID and Quantity; a cart's
	// checkout sets Lines instead, normalized (shop.NormalizeLines).
	ProductID int64
	Quantity  int
	Lines     []shop.Line
	// Email is where the receipts go; "" for none.
	Email string
	// ViaProvider: the customer pays through the payment provider, for
	// which the checkout creates a payment intent; otherwise the payment
	// comes on the seed's webhook, against the payment id.
	ViaProvider bool
	// Client is who asked (web: an address), held to
	// Config.PendingUnitsPerClient and recorded on the order while that
	// limit is on; "" for none, which no limit applies to.
	Client string
}

// Result is how a checkout ended: zero when it placed no order, its
// client being at its limit.
type Result struct {
	OrderID int64
	Status  shop.OrderStatus
}

// paymentWord is what the payment webhook sends the checkout, in the
// transaction that settled the order: how it was settled, and when.
type paymentWord struct {
	Status shop.PaymentStatus
	PaidAt time.Time
}

// checkout is the workflow "checkout.Checkout"; its id is the client's
// idempotency key, so the same key always finds the same order. It places
// the order, hands what it placed to the request waiting for it, waits
// for the payment or its deadline, and then ends with the order paid (the
// dispatch sweep dispatches it; before version5, the checkout did) or
// cancels it.
//
// It costs, paid: the workflow's row, placeOrder, and the workflow's
// outcome; the webhook's transaction settles the order, and a sweep's
// transaction dispatches it with others. A seed checkout takes the
// settlement step only when its deadline passed unpaid; a cart paid
// through the provider adds createIntent and always takes the settlement.
// Before version5 the checkout also published its placement, waited with
// Recv, and ran markDispatched and a sendReceipt step per receipt.
// docs/performance.md counts their statements.
func (c *Checkout) checkout(ctx dbos.Context, in input) (Result, error) {
	checkoutID, err := dbos.GetWorkflowID(ctx)
	if err != nil {
		return Result{}, err
	}
	defer c.watch.noteReturned(checkoutID)
	c.metrics.started.Inc()
	outcome, err := c.place(ctx, checkoutID, in)
	settledWake, stopWaiting := c.awaitedSettlement(outcome)
	defer stopWaiting()
	// Handed off even when it failed: the waiting client is told now
	// rather than at its timeout.
	c.placements.handOff(checkoutID, handOffOf(in, outcome, err))
	if in.Version < version5 {
		// widgetstore-4's checkouts and older published it as an event,
		// a step, and replay it; nothing reads it any more (readPlacement).
		err = errors.Join(err, dbos.SetEvent(ctx, EventPlaced, publication(in, outcome)))
	}
	if err != nil {
		return Result{}, err
	}
	awaiting, ok := outcome.(placed)
	if !ok || awaiting.order.Status != shop.StatusPending {
		return outcome.result(), nil
	}
	settled, err := c.awaitSettlement(ctx, in, awaiting.order, settledWake)
	if err != nil {
		return Result{}, err
	}
	if settled.Status == shop.StatusPaid || settled.Status == shop.StatusDispatched {
		return c.dispatch(ctx, in, settled)
	}
	return orderResult(settled.Order), c.expireIntent(ctx, checkoutID, in, awaiting.intent.ID)
}

// place places the checkout's order (the step checkout.placeOrder) and,
// when it is paid through the provider, creates its payment intent.
func (c *Checkout) place(ctx dbos.Context, checkoutID string, in input) (outcome, error) {
	screen, err := c.screening(ctx, in)
	if err != nil {
		return failed{reason: err.Error()}, err
	}
	p, err := runTransaction(ctx, c, "checkout.placeOrder", 0, func(ctx context.Context, tx dbos.Tx) (placedOutput, error) {
		return c.placeOrder(ctx, tx, checkoutID, in, screen)
	})
	switch {
	case err != nil:
		return failed{reason: err.Error()}, err
	case p.Screened:
		return screened{until: p.HeldUntil}, nil
	case p.Limited:
		// Refused, not failed: the step's output says so and replays the
		// same, and the key's workflow ends here without an order.
		return limited{held: p.Held, limit: c.cfg.PendingUnitsPerClient, until: p.HeldUntil}, nil
	case p.Status == shop.StatusCancelled && p.CancelReason == shop.ReasonOutOfStock:
		return outOfStock{order: p.order(), unavailable: p.Unavailable}, nil
	case in.ViaProvider && p.Status == shop.StatusPending:
		return c.createIntent(ctx, checkoutID, p.order())
	}
	return placed{order: p.order()}, nil
}

// placeOrder is the step checkout.placeOrder's transaction: it takes the
// checkout's contact and places its order (store.PlaceOrder).
func (c *Checkout) placeOrder(ctx context.Context, tx dbos.Tx, checkoutID string, in input, screen store.Screen) (placedOutput, error) {
	contact := store.Contact{Email: in.Email, Client: in.Client} // as older builds recorded it
	if in.Contact {
		var err error
		if contact, err = store.TakeContact(ctx, tx, checkoutID); err != nil {
			return placedOutput{}, err
		}
	}
	p, err := store.PlaceOrder(ctx, tx, store.NewOrder{
		CheckoutID:       checkoutID,
		PaymentID:        newPaymentID(),
		Lines:            in.lines(),
		Email:            contact.Email,
		PaymentDeadline:  time.Now().Add(c.cfg.PaymentTimeout),
		DispatchSteps:    c.cfg.DispatchSteps,
		DispatchInterval: c.cfg.DispatchInterval,
		Client:           contact.Client,
		ClientLimit:      c.cfg.PendingUnitsPerClient,
		Screen:           screen,
		CheckoutVersion:  in.Version,
	})
	return recordedPlaced(p), err
}

// createIntent creates the payment intent of an order paid through the
// provider. A step: a crash after the provider answered re-runs it with the
// same idempotency key, and the provider answers the same intent. No
// payment can come without one: when it cannot be had, the order is
// cancelled now, and the client told, rather than at its deadline.
func (c *Checkout) createIntent(ctx dbos.Context, checkoutID string, order orderOutput) (outcome, error) {
	intent, err := runStep(ctx, c, "checkout.createIntent", order.ID, func(ctx context.Context) (payment.Intent, error) {
		return c.provider.CreateIntent(ctx, payment.IntentRequest{
			IdempotencyKey: "checkout:" + checkoutID, AmountCents: order.TotalCents, Currency: Currency,
			CheckoutID: checkoutID, Description: fmt.Sprintf("Widget store order %d", order.ID), ExpiresAt: order.PaymentDeadline,
		})
	}, dbos.WithStepMaxRetries(intentRetries))
	if err == nil {
		return placed{order: order, intent: intent}, nil
	}
	c.logger.Error("creating the payment intent failed", "checkout", checkoutID, "order", order.ID, "err", err)
	cancelled, err := c.cancelUnpaid(ctx, order, shop.ReasonProviderDown)
	if err != nil {
		return failed{order: order, reason: err.Error()}, err
	}
	if cancelled.Status == shop.StatusCancelled {
		cancelled.PaymentID = ""
		return failed{order: cancelled, reason: shop.ReasonProviderDown}, nil
	}
	return placed{order: order}, nil // a payment got to it first: it goes on as paid
}

// awaitSettlement waits until the order is settled (paid, refused, or
// cancelled by its customer: the webhook's transaction, or CancelByKey's,
// writes its row) or its payment deadline passes, and returns it as it
// then is: the step checkout.settlement reads it, and cancels it if it is
// still pending, its deadline passed. The deadline is the order's, which
// placeOrder recorded, so a restart waits only what is left; a wake is
// only a signal (settlements), and a restart is woken by the poll.
// Checkouts before version5 wait for the webhook's word instead
// (awaitWord).
func (c *Checkout) awaitSettlement(ctx dbos.Context, in input, order orderOutput, wake <-chan struct{}) (orderOutput, error) {
	if in.Version < version5 {
		return c.awaitWord(ctx, order)
	}
	deadline := time.NewTimer(time.Until(order.PaymentDeadline))
	defer deadline.Stop()
	woken := false
	select {
	case <-wake:
		woken = true
	case <-deadline.C:
	case <-ctx.Done():
		return orderOutput{}, ctx.Err()
	}
	if !in.ViaProvider {
		// A seed checkout takes no step after its wait but this one, and
		// only for an order still pending: one settled by the webhook or
		// its customer ends the checkout as the row says, without a
		// checkpoint. Not a step, this read may see a later state on a
		// replay (DISPATCHED for PAID), never another path: the status only
		// moves on from PENDING once, and nothing follows but the outcome.
		o, err := store.GetSettled(ctx, c.db.Q(), order.ID)
		if err != nil {
			return orderOutput{}, err
		}
		if o.Status != shop.StatusPending {
			return recorded(o), nil
		}
		woken = false
	}
	settled, err := runTransaction(ctx, c, "checkout.settlement", order.ID, func(ctx context.Context, tx dbos.Tx) (orderOutput, error) {
		if woken { // settled: nothing to cancel
			o, err := store.GetSettled(ctx, tx, order.ID)
			return recorded(o), err
		}
		o, err := store.CancelUnpaid(ctx, tx, order.ID, shop.ReasonPaymentTimeout)
		return recorded(o), err
	})
	if err == nil {
		c.noteTimeout(settled)
	}
	return settled, err
}

// awaitedSettlement registers the checkout as waiting for the settlement
// of its order, when one was placed awaiting payment: before the payment
// id is published, so that no payment reported to this process comes
// before it.
func (c *Checkout) awaitedSettlement(o outcome) (wake <-chan struct{}, stop func()) {
	if p, ok := o.(placed); ok && p.order.Status == shop.StatusPending {
		return c.settlements.wait(p.order.ID)
	}
	return nil, func() {}
}

// awaitWord is the wait of the checkouts before version5: for the payment
// webhook's word on the order (dbos.Recv, its deadline checkpointed),
// sent in the transaction that settled the order; with no word by the
// deadline, the order is cancelled now (cancelUnpaid), unless a payment
// got to it first.
func (c *Checkout) awaitWord(ctx dbos.Context, order orderOutput) (orderOutput, error) {
	word, err := recv[paymentWord](ctx, c, order.ID, topicPayment, time.Until(order.PaymentDeadline))
	if err != nil && !isTimeout(err) {
		return orderOutput{}, err
	}
	switch word.Status {
	case shop.PaymentPaid:
		order.PaidAt, order.Status = word.PaidAt, shop.StatusPaid
		return order, nil
	case "":
		cancelled, err := c.cancelUnpaid(ctx, order, shop.ReasonPaymentTimeout)
		if err == nil {
			c.noteTimeout(cancelled)
		}
		return cancelled, err
	default: // refused, or cancelled by the customer, in the word's transaction
		order.Status = shop.StatusCancelled
		return order, nil
	}
}

// noteTimeout logs and counts an order that its deadline cancelled; a
// refusal that got to the order first was counted by settle.
func (c *Checkout) noteTimeout(order orderOutput) {
	if order.Status == shop.StatusCancelled && order.CancelReason == shop.ReasonPaymentTimeout {
		c.logger.Info("no payment by the deadline: the order is cancelled and its stock released", "checkout", order.CheckoutID, "order", order.ID)
		c.metrics.timedOut.Inc()
	}
}

// awaitDispatchDone waits, for a checkout before version5, until the paid
// order's last dispatch step is due. The time is counted from the payment time the checkout recorded
// (the word its Recv consumed, or cancelUnpaid's output), so a restart
// waits only what is left without a checkpoint of its own; the checkouts
// of the builds before version4 took a durable sleep here (a step,
// DBOS.sleep), and replay it.
func (c *Checkout) awaitDispatchDone(ctx dbos.Context, in input, order shop.Order) error {
	wait := time.Until(order.DispatchDone())
	if in.Version < version4 {
		_, err := sleep(ctx, c, order.ID, wait)
		return err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cancelUnpaid is the step checkout.cancelUnpaid: it cancels the order,
// for reason, unless a payment or a refusal got to it first, and returns
// it as it then is.
func (c *Checkout) cancelUnpaid(ctx dbos.Context, order orderOutput, reason string) (orderOutput, error) {
	return runTransaction(ctx, c, "checkout.cancelUnpaid", order.ID, func(ctx context.Context, tx dbos.Tx) (orderOutput, error) {
		o, err := store.CancelUnpaid(ctx, tx, order.ID, reason)
		return recorded(o), err
	})
}

// dispatch ends a paid checkout. One of version5 and later ends here, its
// order PAID: the dispatch sweep (dispatch.go) dispatches it when its last
// step is due. One before version5 sends the paid receipt and dispatches
// the order itself: its progress is counted from the time it was paid
// (shop.Order.ProgressRemaining), so the workflow waits until the last
// step is due and then marks the order DISPATCHED.
func (c *Checkout) dispatch(ctx dbos.Context, in input, order orderOutput) (Result, error) {
	if in.Version >= version5 {
		// PAID, or DISPATCHED already when the sweep got to it before the
		// checkout's settlement did (a restart, the poll's second). Its
		// paid receipt is sent by the process that settled the payment
		// (settle, queueReceipt), not by a step here.
		return Result{OrderID: order.ID, Status: order.Status}, nil
	}
	if err := c.sendReceipt(ctx, order, receipt.StagePaid); err != nil {
		return Result{}, err
	}
	if err := c.awaitDispatchDone(ctx, in, order.Order); err != nil {
		return Result{}, err
	}
	if _, err := runTransaction(ctx, c, "checkout.markDispatched", order.ID, func(ctx context.Context, tx dbos.Tx) (struct{}, error) {
		email, err := store.MarkDispatched(ctx, tx, order.ID)
		if err != nil {
			return struct{}{}, err
		}
		dispatched := order.Order
		dispatched.Email = email // read from the order's row: the workflow's records have none
		return struct{}{}, c.enqueueReceipt(ctx, tx, dispatched, receipt.StageDispatched, 0, time.Now())
	}); err != nil {
		return Result{}, err
	}
	if err := c.sendReceipt(ctx, order, receipt.StageDispatched); err != nil {
		return Result{}, err
	}
	c.metrics.settled[shop.StatusDispatched].Inc()
	return Result{OrderID: order.ID, Status: shop.StatusDispatched}, nil
}
