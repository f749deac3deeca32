package checkout

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// publishWait bounds how long a request waits for a checkout to publish
// its placement, which it does right after its first step.
const publishWait = 30 * time.Second

// Start starts the checkout for an idempotency key, or finds the one the
// key already started, and returns the payment id the customer pays
// against. Errors meant for the client have a shop error kind: invalid
// request, unknown product, a conflict (out of stock, or the key used for
// another purchase), or limited (the client holds as many units awaiting
// payment as it may); any other error is internal. A key refused for the
// limit is used: its checkout ended, and it answers the same refusal again.
func (c *Checkout) Start(reqCtx context.Context, key string, req Request) (paymentID string, err error) {
	if err := shop.ValidateKey(key); err != nil {
		return "", err
	}
	if err := shop.ValidateQuantity(req.Quantity); err != nil {
		return "", err
	}
	// An unknown product is refused before a workflow is started for it.
	if err := c.checkProduct(reqCtx, req.ProductID); err != nil {
		return "", err
	}
	if err := c.writable(reqCtx); err != nil {
		return "", fmt.Errorf("starting checkout %s: %w", key, err)
	}
	if _, err := awaitDatabase(reqCtx, c, startWait, func(context.Context) (dbos.WorkflowHandle[Result], error) {
		return dbos.RunWorkflow(c.dbosCtx, c.checkout, req, dbos.WithWorkflowID(key))
	}); err != nil {
		return "", fmt.Errorf("starting checkout %s: %w", key, err)
	}
	// GetEvent's own timeout says when the checkout took too long, the
	// second more only that the database stopped answering.
	placed, err := awaitDatabase(reqCtx, c, publishWait+time.Second, func(ctx context.Context) (placement, error) {
		return dbos.GetEvent[placement](dbos.From(c.dbosCtx, ctx), key, EventPlaced, publishWait)
	})
	if err != nil {
		return "", fmt.Errorf("waiting for checkout %s to place its order: %w", key, err)
	}
	switch {
	case placed.Failed != "":
		return "", fmt.Errorf("checkout %s could not place its order: %s", key, placed.Failed)
	case placed.ProductID != req.ProductID || placed.Quantity != req.Quantity:
		// A key names one purchase: the same key for another is a client's bug.
		return "", shop.Errorf(shop.ErrConflict, "idempotency key %q was already used for %d of product %d", key, placed.Quantity, placed.ProductID)
	case placed.Limited:
		// The client may try again, with a new key, once the first of its
		// pending orders reaches its payment deadline: paid, refused or
		// timed out by then, it holds its units no more. (This key answers
		// the same refusal again.)
		wait := max(time.Until(placed.HeldUntil), time.Second)
		return "", shop.Limitedf(wait, "you hold %d units in checkouts awaiting payment and may hold at most %d: pay for them, or try again in %.0f s",
			placed.Held, placed.Limit, math.Ceil(wait.Seconds()))
	case placed.OutOfStock:
		name := fmt.Sprintf("product %d", req.ProductID)
		if p, err := store.GetProduct(reqCtx, c.db.Q(), req.ProductID); err == nil {
			name = p.Name
		}
		return "", shop.Errorf(shop.ErrConflict, "%s is not available in that quantity", name)
	}
	return placed.PaymentID, nil
}

// startWait bounds how long a request waits for DBOS to record a new
// checkout. DBOS retries a write that failed for want of the database
// until it succeeds, with a delay that doubles up to 30 s, so a request
// caught by an outage (a failover) would wait on long after the database
// is back.
const startWait = 5 * time.Second

// awaitDatabase runs fn, a call into DBOS, with a context that ends with
// ctx, and waits for it at most limit, and only while the database takes
// writes: once the watch sees a write fail after the wait began, it gives
// up with store.ErrSlow, and the client is answered 503, to send the same
// key again (DBOS retries its writes until the database is back, and
// would keep the request waiting through the outage and its backoff). What
// fn started goes on; the retry finds it.
func awaitDatabase[T any](ctx context.Context, c *Checkout, limit time.Duration, fn func(context.Context) (T, error)) (T, error) {
	began := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends fn's wait when the answer is given up on
	type outcome struct {
		value T
		err   error
	}
	done := make(chan outcome, 1)
	go func() {
		v, err := fn(ctx)
		done <- outcome{v, err}
	}()
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	poll := time.NewTicker(healthPoll)
	defer poll.Stop()
	var zero T
	for {
		select {
		case o := <-done:
			return o.value, o.err
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-timeout.C:
			return zero, fmt.Errorf("no answer from the database in %v: %w", limit, store.ErrSlow)
		case <-poll.C:
			if err := c.failedSince(began); err != nil {
				return zero, fmt.Errorf("%w: %w", store.ErrSlow, err)
			}
		}
	}
}

// healthPoll is how often a request waiting on DBOS looks at what the
// watch says of the database.
const healthPoll = 100 * time.Millisecond

// checkProduct returns an error of kind shop.ErrNotFound for a product that
// is not in the catalog. Products are never deleted (orders refer to them),
// so one seen once is remembered and not read again.
func (c *Checkout) checkProduct(ctx context.Context, id int64) error {
	if _, ok := c.knownProducts.Load(id); ok {
		return nil
	}
	if _, err := store.GetProduct(ctx, c.db.Q(), id); err != nil {
		return err
	}
	c.knownProducts.Store(id, struct{}{})
	return nil
}

// Pay applies the payment provider's report on a payment id and returns
// the order it settled. The report is applied in one transaction that
// settles the order (paid: PAID, if its deadline has not passed; failed:
// CANCELLED, stock released) and sends the word to the checkout waiting
// for it, so a crash leaves both or neither. The first report wins:
// reporting the same status again is harmless and answers the same; an
// unknown payment id, a contradicting status, or a payment after the
// deadline is an error with a shop error kind and changes nothing.
func (c *Checkout) Pay(ctx context.Context, paymentID string, status shop.PaymentStatus) (shop.Order, error) {
	var order shop.Order
	var changed bool
	err := c.db.InTx(ctx, func(tx dbos.Tx) error {
		var err error
		order, changed, err = store.SettlePayment(ctx, tx, paymentID, status, time.Now())
		if err != nil || !changed {
			return err
		}
		word := paymentWord{Status: status, PaidAt: order.PaidAt}
		if err := dbos.Send(c.dbosCtx, order.CheckoutID, word, topicPayment,
			dbos.WithSendTransaction(tx), dbos.WithIdempotencyKey(paymentID)); err != nil {
			return fmt.Errorf("telling checkout %s of payment %s: %w", order.CheckoutID, paymentID, err)
		}
		return nil
	})
	if err != nil {
		c.metrics.paymentReported(order, false, err) // rolled back
		return order, err
	}
	err = settled(order, status)
	c.metrics.paymentReported(order, changed, err)
	return order, err
}

// settled says whether an order agrees with a reported status: nil when
// the report settled it or is a redelivery, a conflict otherwise.
func settled(order shop.Order, status shop.PaymentStatus) error {
	switch {
	case status == shop.PaymentPaid && (order.Status == shop.StatusPaid || order.Status == shop.StatusDispatched):
		return nil
	case status == shop.PaymentFailed && order.Status == shop.StatusCancelled && order.CancelReason == shop.ReasonPaymentFailed:
		return nil
	case order.Status == shop.StatusCancelled:
		return shop.Errorf(shop.ErrConflict, "order %d was cancelled (%s); payment not applied", order.ID, order.CancelReason)
	case order.Status == shop.StatusPending:
		return shop.Errorf(shop.ErrConflict, "order %d is past its payment deadline; payment not applied", order.ID)
	default:
		return shop.Errorf(shop.ErrConflict, "order %d is already %s", order.ID, order.Status)
	}
}

// isTimeout reports whether err is a DBOS wait that ran out of time.
func isTimeout(err error) bool {
	return errors.Is(err, &dbos.Error{Code: dbos.ErrorCodeTimeout})
}
