package checkout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// publishWait bounds how long a request waits for a workflow to publish an
// event that it publishes right after one or two steps.
const publishWait = 30 * time.Second

// Start starts the checkout for an idempotency key, or finds the one the
// key already started, and returns the payment id the customer pays
// against. Errors have a shop error kind: invalid request, unknown product,
// or out of stock (a conflict).
func (c *Checkout) Start(reqCtx context.Context, key string, req Request) (paymentID string, err error) {
	ctx := dbos.From(c.dbosCtx, reqCtx) // waits end with the request
	if err := shop.ValidateKey(key); err != nil {
		return "", err
	}
	if err := shop.ValidateQuantity(req.Quantity); err != nil {
		return "", err
	}
	if _, err := store.GetProduct(ctx, c.db.Q(), req.ProductID); err != nil {
		return "", err
	}
	if _, err := dbos.RunWorkflow(c.dbosCtx, c.checkout, req, dbos.WithWorkflowID(key)); err != nil {
		return "", fmt.Errorf("starting checkout %s: %w", key, err)
	}
	paymentID, err = dbos.GetEvent[string](ctx, key, EventPaymentID, publishWait)
	if err != nil {
		return "", fmt.Errorf("waiting for the payment id of checkout %s: %w", key, err)
	}
	order, err := store.OrderByCheckoutID(ctx, c.db.Q(), key)
	if paymentID == "" {
		// The checkout published no payment id: it cancelled the order
		// for want of stock, or it failed, which its status records.
		if err == nil && order.CancelReason == shop.ReasonOutOfStock {
			return "", shop.Errorf(shop.ErrConflict, "%s is not available in that quantity", order.ProductName)
		}
		return "", fmt.Errorf("checkout %s placed no order (order lookup: %w)", key, err)
	}
	if err != nil {
		return "", err
	}
	// A key names one purchase: the same key for another is a client's bug.
	if order.ProductID != req.ProductID || order.Quantity != req.Quantity {
		return "", shop.Errorf(shop.ErrConflict, "idempotency key %q was already used for %d of product %d", key, order.Quantity, order.ProductID)
	}
	return paymentID, nil
}

// Pay reports a payment's status to the checkout waiting for it and returns
// the order once the checkout has settled it. Reporting the same status
// again is harmless and answers the same; an unknown payment id, or a status
// for a payment that was already settled otherwise, is an error with a shop
// error kind and changes nothing.
func (c *Checkout) Pay(reqCtx context.Context, paymentID string, status shop.PaymentStatus) (shop.Order, error) {
	ctx := dbos.From(c.dbosCtx, reqCtx) // waits end with the request
	order, err := store.OrderByPaymentID(ctx, c.db.Q(), paymentID)
	if errors.Is(err, shop.ErrNotFound) {
		return order, shop.Errorf(shop.ErrNotFound, "unknown payment id %q", paymentID)
	}
	if err != nil {
		return order, err
	}
	if order.Status != shop.StatusPending {
		return order, settled(order, status)
	}

	if _, err := dbos.RunWorkflow(c.dbosCtx, c.payment, status, dbos.WithWorkflowID(paymentWorkflowID(paymentID))); err != nil {
		return order, fmt.Errorf("reporting payment %s: %w", paymentID, err)
	}
	// The status that counts is the one the payment's workflow published:
	// another report may have started it first. (Its event, not its handle:
	// the handle of a workflow started elsewhere polls once a second.)
	first, err := dbos.GetEvent[shop.PaymentStatus](ctx, paymentWorkflowID(paymentID), EventPaymentStatus, publishWait)
	if err != nil {
		return order, fmt.Errorf("reading the status of payment %s: %w", paymentID, err)
	}
	if first != status {
		return order, shop.Errorf(shop.ErrConflict, "payment %s was already reported %s", paymentID, first)
	}
	if _, err := dbos.GetEvent[int64](ctx, order.CheckoutID, EventOrderID, publishWait); err != nil {
		return order, fmt.Errorf("waiting for checkout %s to settle payment %s: %w", order.CheckoutID, paymentID, err)
	}
	if order, err = store.GetOrder(ctx, c.db.Q(), order.ID); err != nil {
		return order, err
	}
	// The payment can lose a race with the checkout's timeout.
	return order, settled(order, status)
}

// settled says whether a settled order agrees with a reported status: nil
// for a redelivery, a conflict for a contradiction.
func settled(order shop.Order, status shop.PaymentStatus) error {
	switch {
	case status == shop.PaymentPaid && (order.Status == shop.StatusPaid || order.Status == shop.StatusDispatched):
		return nil
	case status == shop.PaymentFailed && order.Status == shop.StatusCancelled && order.CancelReason == shop.ReasonPaymentFailed:
		return nil
	case order.Status == shop.StatusCancelled:
		return shop.Errorf(shop.ErrConflict, "order %d was cancelled (%s); payment not applied", order.ID, order.CancelReason)
	default:
		return shop.Errorf(shop.ErrConflict, "order %d is already %s", order.ID, order.Status)
	}
}
