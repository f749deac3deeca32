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
	Lines     []shop.Line `json:",omitempty"`
	// Email is where the receipts go; "" for none.
	Email string `json:",omitempty"`
	// ViaProvider: the customer pays through the payment provider, for
	// which the checkout creates a payment intent; otherwise the payment
	// comes on the seed's webhook, against the payment id.
	ViaProvider bool `json:",omitempty"`
	// Client is who asked (web: an address), recorded on the order and
	// held to Config.PendingUnitsPerClient; "" for none, which no limit
	// applies to.
	Client string
}

// lines is what the request buys, cart or not.
func (r Request) lines() []shop.Line {
	if len(r.Lines) > 0 {
		return r.Lines
	}
	return []shop.Line{{ProductID: r.ProductID, Quantity: r.Quantity}}
}

// Result is how a checkout ended: zero when it placed no order, its
// client being at its limit.
type Result struct {
	OrderID int64
	Status  shop.OrderStatus
}

// placement is the checkout's EventPlaced: what the client that started it
// is answered. It carries what was bought, so that a key reused for another
// purchase is told apart without reading the order again.
type placement struct {
	PaymentID string // "" when the order could not be placed
	// What was asked for: the seed's one line, or the cart's Lines.
	ProductID   int64
	Quantity    int
	Lines       []shop.Line `json:",omitempty"`
	ViaProvider bool        `json:",omitempty"`
	OutOfStock  bool
	// Unavailable: the lines the stock could not cover, when OutOfStock.
	Unavailable []shop.Shortage `json:",omitempty"`
	Failed      string          // why the order could not be written, for the log
	// Limited: nothing was placed, since the client held Held units
	// awaiting payment and may hold Limit; the first of them reaches its
	// payment deadline at HeldUntil.
	Limited     bool      `json:",omitempty"`
	Held, Limit int       `json:",omitempty"`
	HeldUntil   time.Time `json:",omitzero"`
	// The order placed, and where its customer pays it when it is paid
	// through the provider.
	OrderID         int64     `json:",omitempty"`
	TotalCents      int64     `json:",omitempty"`
	PaymentDeadline time.Time `json:",omitzero"`
	IntentID        string    `json:",omitempty"`
	PayURL          string    `json:",omitempty"`
	// Screened: nothing was placed, the screening refused the client
	// until HeldUntil (see screen).
	Screened bool `json:",omitempty"`
}

// lines is what the placement's checkout was asked for, cart or not.
func (p placement) lines() []shop.Line {
	return Request{ProductID: p.ProductID, Quantity: p.Quantity, Lines: p.Lines}.lines()
}

// asked is the placement's record of what was asked for.
func asked(req Request) placement {
	return placement{ProductID: req.ProductID, Quantity: req.Quantity, Lines: req.Lines, ViaProvider: req.ViaProvider}
}

// paymentWord is what the payment webhook sends the checkout, in the
// transaction that settled the order: how it was settled, and when.
type paymentWord struct {
	Status shop.PaymentStatus
	PaidAt time.Time
}

// checkout is the workflow "checkout.Checkout"; its id is the client's
// idempotency key, so the same key always finds the same order.
//
// It costs, paid and dispatched: the workflow's row, the screening patch's
// marker, placeOrder, the placement event, the payment wait (its deadline
// and the word it consumes), the dispatch's sleep and markDispatched, and
// the workflow's outcome; the webhook's transaction settles the order and
// sends the word. A cart paid through the provider adds createIntent, and
// an order with an email address a sendReceipt step per receipt.
func (c *Checkout) checkout(ctx dbos.Context, req Request) (Result, error) {
	checkoutID, err := dbos.GetWorkflowID(ctx)
	if err != nil {
		return Result{}, err
	}
	defer c.watch.noteReturned(checkoutID)
	c.metrics.started.Inc()
	screen, err := c.screening(ctx, req)
	if err != nil {
		placed := asked(req)
		placed.Failed = err.Error()
		return Result{}, errors.Join(err, dbos.SetEvent(ctx, EventPlaced, placed))
	}
	placedOrder, err := runTransaction(ctx, c, "checkout.placeOrder", 0, func(ctx context.Context, tx dbos.Tx) (store.Placed, error) {
		return store.PlaceOrder(ctx, tx, store.NewOrder{
			CheckoutID:       checkoutID,
			PaymentID:        newPaymentID(),
			Lines:            req.lines(),
			Email:            req.Email,
			PaymentDeadline:  time.Now().Add(c.cfg.PaymentTimeout),
			DispatchSteps:    c.cfg.DispatchSteps,
			DispatchInterval: c.cfg.DispatchInterval,
			Client:           req.Client,
			ClientLimit:      c.cfg.PendingUnitsPerClient,
			Screen:           screen,
		})
	})
	placed := asked(req)
	if err != nil {
		// Tell the waiting client now rather than at its timeout.
		placed.Failed = err.Error()
		return Result{}, errors.Join(err, dbos.SetEvent(ctx, EventPlaced, placed))
	}
	if placedOrder.Screened {
		// Limited and HeldUntil as well as Screened: a widgetstore-2
		// instance asked for this key during a rolling upgrade knows only
		// those, and answers 429 with the right Retry-After.
		placed.Screened, placed.Limited, placed.HeldUntil = true, true, placedOrder.HeldUntil
		return Result{}, dbos.SetEvent(ctx, EventPlaced, placed)
	}
	if placedOrder.Limited {
		// Refused, not failed: the step's output says so and replays the
		// same, and the key's workflow ends here without an order.
		placed.Limited, placed.Held, placed.Limit, placed.HeldUntil = true, placedOrder.Held, c.cfg.PendingUnitsPerClient, placedOrder.HeldUntil
		return Result{}, dbos.SetEvent(ctx, EventPlaced, placed)
	}
	order := placedOrder.Order
	placed.OrderID, placed.TotalCents, placed.PaymentDeadline = order.ID, order.TotalCents, order.PaymentDeadline
	placed.PaymentID = order.PaymentID
	switch {
	case order.Status == shop.StatusCancelled && order.CancelReason == shop.ReasonOutOfStock:
		placed.PaymentID, placed.OutOfStock, placed.Unavailable = "", true, placedOrder.Unavailable
		return Result{OrderID: order.ID, Status: order.Status}, dbos.SetEvent(ctx, EventPlaced, placed)
	case order.Status != shop.StatusPending:
		// The key's order, placed by a checkout whose records are gone.
		return Result{OrderID: order.ID, Status: order.Status}, dbos.SetEvent(ctx, EventPlaced, placed)
	}
	if req.ViaProvider {
		// A step: a crash after the provider answered re-runs it with the
		// same idempotency key, and the provider answers the same intent.
		intent, err := runStep(ctx, c, "checkout.createIntent", order.ID, func(ctx context.Context) (payment.Intent, error) {
			return c.provider.CreateIntent(ctx, payment.IntentRequest{
				IdempotencyKey: "checkout:" + checkoutID, AmountCents: order.TotalCents, Currency: Currency,
				CheckoutID: checkoutID, Description: fmt.Sprintf("Widget store order %d", order.ID), ExpiresAt: order.PaymentDeadline,
			})
		}, dbos.WithStepMaxRetries(intentRetries))
		if err != nil {
			// No payment can come without an intent: the order is
			// cancelled now, and the client told, rather than at its
			// deadline.
			c.logger.Error("creating the payment intent failed", "checkout", checkoutID, "order", order.ID, "err", err)
			order, err = c.cancel(ctx, order, shop.ReasonProviderDown)
			if err != nil {
				return Result{}, err
			}
			if order.Status == shop.StatusCancelled {
				placed.PaymentID, placed.Failed = "", shop.ReasonProviderDown
				return Result{OrderID: order.ID, Status: order.Status}, dbos.SetEvent(ctx, EventPlaced, placed)
			}
		}
		placed.IntentID, placed.PayURL = intent.ID, intent.PayURL
	}
	if err := dbos.SetEvent(ctx, EventPlaced, placed); err != nil {
		return Result{}, err
	}

	// The webhook settles the order itself and sends its word in the same
	// transaction (see Pay); the deadline of this wait is checkpointed, so a
	// restart waits only what is left.
	word, err := recv[paymentWord](ctx, c, order.ID, topicPayment, time.Until(order.PaymentDeadline))
	if err != nil && !isTimeout(err) {
		return Result{}, err
	}
	if word.Status == "" {
		// No word in time: cancel the order unless a payment got to it
		// first, in which case it goes on as paid.
		order, err = c.cancel(ctx, order, shop.ReasonPaymentTimeout)
		if err != nil {
			return Result{}, err
		}
		// A refusal that got to the order first was counted by Pay.
		if order.Status == shop.StatusCancelled && order.CancelReason == shop.ReasonPaymentTimeout {
			c.metrics.timedOut.Inc()
		}
	} else {
		order.PaidAt = word.PaidAt
		order.Status = shop.StatusPaid
		if word.Status == shop.PaymentFailed {
			order.Status = shop.StatusCancelled
		}
	}
	if order.Status != shop.StatusPaid {
		return Result{OrderID: order.ID, Status: order.Status}, c.expireIntent(ctx, checkoutID, placed.IntentID)
	}
	if err := c.sendReceipt(ctx, order, receipt.StagePaid); err != nil {
		return Result{}, err
	}
	return c.dispatch(ctx, order)
}

// cancel cancels the order, for reason, unless a payment or a refusal got
// to it first, and returns it as it then is.
func (c *Checkout) cancel(ctx dbos.Context, order shop.Order, reason string) (shop.Order, error) {
	return runTransaction(ctx, c, "checkout.cancelUnpaid", order.ID, func(ctx context.Context, tx dbos.Tx) (shop.Order, error) {
		return store.CancelUnpaid(ctx, tx, order.ID, reason)
	})
}

// dispatch dispatches a paid order: its progress is counted from the time
// it was paid (shop.Order.ProgressRemaining), so the workflow sleeps,
// durably, until the last step is due and then marks the order DISPATCHED.
// A restart sleeps only what is left.
func (c *Checkout) dispatch(ctx dbos.Context, order shop.Order) (Result, error) {
	if _, err := sleep(ctx, c, order.ID, time.Until(order.DispatchDone())); err != nil {
		return Result{}, err
	}
	if _, err := runTransaction(ctx, c, "checkout.markDispatched", order.ID, func(ctx context.Context, tx dbos.Tx) (struct{}, error) {
		if err := store.MarkDispatched(ctx, tx, order.ID); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, c.enqueueReceipt(ctx, tx, order, receipt.StageDispatched, 0, time.Now())
	}); err != nil {
		return Result{}, err
	}
	if err := c.sendReceipt(ctx, order, receipt.StageDispatched); err != nil {
		return Result{}, err
	}
	c.metrics.settled[shop.StatusDispatched].Inc()
	return Result{OrderID: order.ID, Status: shop.StatusDispatched}, nil
}
