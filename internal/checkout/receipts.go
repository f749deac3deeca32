package checkout

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// Receipts. The receipt of an order's stage (paid, dispatched, refunded)
// is written to the outbox in the transaction that moves the order there,
// so a change is never without its receipt, and sent right after: by a
// step of the workflow that moved it, or, for the dispatched receipt of a
// checkout of version5 and later, by the dispatch sweep that dispatched
// it (dispatch.go). One the mail server refused, or a crash kept from
// going, is sent by the watch's sweep of the receipts: those left unsent
// before the instance launched at its first sweep, the others once
// receiptsSweptAfter old. A receipt is sent twice only if the shop dies
// between the mail server's acceptance and its mark (receipt.Deliver):
// two deliverers at once are kept apart by Deliver's claim. Orders
// without an email address have none, and cost nothing more.

// receiptsSweptAfter is how old an unsent receipt enqueued since the
// instance launched must be before the watch's sweep sends it: younger
// ones are their step's, or those queued (sendQueuedReceipts), to send.
const receiptsSweptAfter = time.Minute

// enqueueReceipt writes the receipt of the order's stage to the outbox, in
// tx, the transaction that moves the order to that stage; o is the order
// as read from the database, with its email address.
func (c *Checkout) enqueueReceipt(ctx context.Context, tx dbos.Querier, o shop.Order, stage receipt.Stage, refundCents int64, at time.Time) error {
	if o.Email == "" {
		return nil
	}
	lines, err := store.OrderLines(ctx, tx, o.ID)
	if err != nil {
		return err
	}
	r := receipt.Receipt{OrderID: o.ID, Stage: stage, To: o.Email, TotalCents: o.TotalCents, RefundCents: refundCents, At: at,
		OrderURL: c.orderURL(o.CheckoutID)}
	for _, l := range lines {
		r.Lines = append(r.Lines, receipt.Line{Product: l.ProductName, Quantity: l.Quantity, UnitCents: l.UnitPriceCents})
	}
	_, err = receipt.Enqueue(ctx, tx, r)
	return err
}

// orderURL is the customer's page of the checkout's order, or "" when the
// shop's public address is not known.
func (c *Checkout) orderURL(checkoutID string) string {
	if c.publicURL == "" {
		return ""
	}
	return c.publicURL + "/?checkout=" + url.QueryEscape(checkoutID)
}

// sendReceipt sends the receipt of the order's stage, enqueued already, in
// a step that never fails the workflow: a receipt that cannot go now is
// the sweep's to send.
func (c *Checkout) sendReceipt(ctx dbos.Context, o orderOutput, stage receipt.Stage) error {
	if !o.receipts() {
		return nil
	}
	_, err := runStep(ctx, c, "checkout.sendReceipt", o.ID, func(ctx context.Context) (string, error) {
		if _, err := receipt.Deliver(ctx, c.db.Q(), c.receipts, o.ID, stage); err != nil {
			c.logger.Warn("a receipt could not be sent; the sweep will try again", "order", o.ID, "stage", stage, slog.Any("error", err))
			return err.Error(), nil
		}
		return "", nil
	})
	return err
}

// A receipt that this process enqueued in the transaction that moved its
// order (the payment it settled, the dispatch it swept) is sent soon after
// by sendQueuedReceipts, outside any step: a checkout of version5 sends
// none itself.

// queuedReceipt is a receipt in the outbox, for sendQueuedReceipts.
type queuedReceipt struct {
	orderID int64
	stage   receipt.Stage
}

const (
	// receiptsQueued bounds the receipts waiting in this process to be
	// sent; one more is left to the receipts' sweep.
	receiptsQueued = 1024
	// receiptsSentAtOnce bounds the receipts sent at once, so that a slow
	// mail server holds no more than that many.
	receiptsSentAtOnce = 8
)

// queueReceipt has a receipt that this process enqueued sent soon. One
// the queue has no room for, or a crash keeps from going, is sent by the
// receipts' sweep; queueReceipt never waits.
func (c *Checkout) queueReceipt(orderID int64, stage receipt.Stage) {
	select {
	case c.receiptQueue <- queuedReceipt{orderID: orderID, stage: stage}:
	default:
		c.logger.Debug("the receipts queue is full: the receipts' sweep will send this one", "order", orderID, "stage", stage)
	}
}

// sendQueuedReceipts sends the receipts queued until ctx is done,
// receiptsSentAtOnce at a time, and then waits for those it is sending.
func (c *Checkout) sendQueuedReceipts(ctx context.Context) {
	var sending sync.WaitGroup
	defer sending.Wait()
	slots := make(chan struct{}, receiptsSentAtOnce)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-c.receiptQueue:
			slots <- struct{}{}
			sending.Go(func() {
				defer func() { <-slots }()
				c.deliverReceipt(ctx, r.orderID, r.stage)
			})
		}
	}
}

// deliverReceipt sends a receipt enqueued already, outside any step; one
// that cannot go now is the receipts' sweep's to send.
func (c *Checkout) deliverReceipt(ctx context.Context, orderID int64, stage receipt.Stage) {
	if _, err := receipt.Deliver(ctx, c.db.Q(), c.receipts, orderID, stage); err != nil &&
		!errors.Is(err, receipt.ErrInFlight) && ctx.Err() == nil {
		c.logger.Warn("a receipt could not be sent; the sweep will try again", "order", orderID, "stage", stage, slog.Any("error", err))
	}
}

// sweepReceipts sends the receipts that their step, or the dispatch
// sweep, could not: those receiptsSweptAfter old, and every one enqueued
// before the instance launched, which a crash may have kept from going.
func (c *Checkout) sweepReceipts(ctx context.Context, now time.Time) {
	enqueuedBefore := now.Add(-receiptsSweptAfter)
	if enqueuedBefore.Before(c.launchedAt) {
		enqueuedBefore = c.launchedAt
	}
	unsent, err := receipt.Pending(ctx, c.db.Q(), enqueuedBefore, 100)
	if err != nil {
		if ctx.Err() == nil {
			c.logger.Warn("looking for unsent receipts", slog.Any("error", err))
		}
		return
	}
	for _, u := range unsent {
		if _, err := receipt.Deliver(ctx, c.db.Q(), c.receipts, u.OrderID, u.Stage); err != nil && !errors.Is(err, receipt.ErrInFlight) {
			c.logger.Warn("a receipt could not be sent", "order", u.OrderID, "stage", u.Stage, "attempts", u.Attempts, slog.Any("error", err))
		}
	}
}
