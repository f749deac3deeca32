package checkout

import (
	"context"
	"errors"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// Request is what a checkout buys.
type Request struct {
	ProductID int64
	Quantity  int
}

// Result is how a checkout ended.
type Result struct {
	OrderID int64
	Status  shop.OrderStatus
}

// checkout is the workflow "checkout.Checkout"; its id is the client's
// idempotency key, so the same key always finds the same order.
func (c *Checkout) checkout(ctx dbos.Context, req Request) (Result, error) {
	checkoutID, err := dbos.GetWorkflowID(ctx)
	if err != nil {
		return Result{}, err
	}
	order, err := dbos.RunAsTransaction(ctx, c.ds, func(ctx context.Context, tx dbos.Tx) (shop.Order, error) {
		return store.CreateOrder(ctx, tx, store.NewOrder{
			CheckoutID: checkoutID,
			PaymentID:  newPaymentID(),
			ProductID:  req.ProductID,
			Quantity:   req.Quantity,
			Steps:      c.cfg.DispatchSteps,
		})
	}, dbos.WithStepName("checkout.createOrder"))
	if err != nil {
		// Tell the waiting client now rather than at its timeout.
		return Result{}, errors.Join(err, dbos.SetEvent(ctx, EventPaymentID, ""))
	}

	reserved, err := dbos.RunAsTransaction(ctx, c.ds, func(ctx context.Context, tx dbos.Tx) (bool, error) {
		return store.ReserveStock(ctx, tx, order)
	}, dbos.WithStepName("checkout.reserveStock"))
	if err != nil {
		return Result{}, err
	}
	if !reserved {
		if err := dbos.SetEvent(ctx, EventPaymentID, ""); err != nil {
			return Result{}, err
		}
		return Result{OrderID: order.ID, Status: shop.StatusCancelled}, dbos.SetEvent(ctx, EventOrderID, order.ID)
	}
	if err := dbos.SetEvent(ctx, EventPaymentID, order.PaymentID); err != nil {
		return Result{}, err
	}

	// The payment arrives as an event of the payment's own workflow rather
	// than as a dbos.Send: on SQLite DBOS wakes a Recv only by polling once a
	// second, while a SetEvent wakes the waiters in its process at once.
	// The deadline is checkpointed, so a restart waits only what is left.
	status, err := dbos.GetEvent[shop.PaymentStatus](ctx, paymentWorkflowID(order.PaymentID), EventPaymentStatus, c.cfg.PaymentTimeout)
	if err != nil && !isTimeout(err) {
		return Result{}, err
	}

	result := Result{OrderID: order.ID, Status: shop.StatusPaid}
	if status == shop.PaymentPaid {
		if _, err := dbos.RunAsTransaction(ctx, c.ds, func(ctx context.Context, tx dbos.Tx) (struct{}, error) {
			return struct{}{}, store.MarkPaid(ctx, tx, order.ID)
		}, dbos.WithStepName("checkout.markPaid")); err != nil {
			return Result{}, err
		}
		if _, err := dbos.RunWorkflow(ctx, c.dispatch, order.ID, dbos.WithWorkflowID(dispatchWorkflowID(checkoutID))); err != nil {
			return Result{}, err
		}
	} else {
		reason := shop.ReasonPaymentFailed
		if status == "" {
			reason = shop.ReasonPaymentTimeout
		}
		if _, err := dbos.RunAsTransaction(ctx, c.ds, func(ctx context.Context, tx dbos.Tx) (struct{}, error) {
			return struct{}{}, store.CancelOrder(ctx, tx, order, reason)
		}, dbos.WithStepName("checkout.cancelOrder")); err != nil {
			return Result{}, err
		}
		result.Status = shop.StatusCancelled
	}
	return result, dbos.SetEvent(ctx, EventOrderID, order.ID)
}

// dispatch is the workflow "checkout.Dispatch", a child of the checkout. It
// counts the order's progress down, one durable sleep between steps: after
// a restart it sleeps only what was left and never repeats a step.
func (c *Checkout) dispatch(ctx dbos.Context, orderID int64) (int64, error) {
	for {
		if _, err := dbos.Sleep(ctx, c.cfg.DispatchInterval); err != nil {
			return 0, err
		}
		remaining, err := dbos.RunAsTransaction(ctx, c.ds, func(ctx context.Context, tx dbos.Tx) (int, error) {
			return store.AdvanceDispatch(ctx, tx, orderID)
		}, dbos.WithStepName("dispatch.advance"))
		if err != nil {
			return 0, err
		}
		if remaining == 0 {
			return orderID, nil
		}
	}
}

// payment is the workflow "checkout.Payment": one per payment id, so the
// first status reported for a payment is the one that counts and a
// redelivered webhook finds the same workflow. It publishes the status for
// the checkout waiting on it.
func (c *Checkout) payment(ctx dbos.Context, status shop.PaymentStatus) (shop.PaymentStatus, error) {
	return status, dbos.SetEvent(ctx, EventPaymentStatus, status)
}
