package checkout

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// patchExpireIntent is the patch that brought the intent's expiry into the
// checkout (dbos.Patch): a checkout paid through the provider that ends
// unpaid (its deadline passed, its payment failed, its customer cancelled)
// expires its intent, so the customer can no longer pay it. A checkout
// that had ended before the patch never reaches it; one waiting for its
// payment when the patch is deployed reaches it and expires its intent.
// The name is durable: it is written in every such checkout's history.
// Checkouts of version4 and after, which came with the expiry, have it
// without asking the patch, so its marker costs them nothing.
const patchExpireIntent = "expireIntent"

// expireIntent expires the checkout's payment intent at the provider,
// when it has one, once the checkout has stopped waiting for its payment:
// a payment that got in before is refunded when its event comes, as any
// payment no order keeps. It is a step under an idempotency key of the
// checkout, so a crash between the provider's answer and the checkpoint
// expires it once. It never fails the checkout, whose order is cancelled
// already: an intent left open is one the provider expires itself later,
// and a payment on it is refunded all the same.
//
// It costs a checkout paid through the provider that ends unpaid the
// step's checkpoint, and one started before version4 the patch's
// marker too.
func (c *Checkout) expireIntent(ctx dbos.Context, checkoutID string, in input, intentID string) error {
	if intentID == "" || c.provider == nil {
		return nil
	}
	if in.Version < version4 {
		if patched, err := dbos.Patch(ctx, patchExpireIntent); err != nil || !patched {
			return err
		}
	}
	// The step's output is why the provider refused, recorded as text:
	// a replay takes the same path as the run that recorded it.
	refused, err := dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
		err := c.provider.ExpireIntent(ctx, payment.ExpireRequest{IdempotencyKey: "expire:" + checkoutID, IntentID: intentID})
		if errors.Is(err, payment.ErrRefused) {
			return err.Error(), nil
		}
		return "", err
	}, dbos.WithStepName("checkout.expireIntent"), dbos.WithStepMaxRetries(intentRetries))
	switch {
	case err != nil:
		c.logger.Error("expiring the payment intent failed: a payment on it will be refunded", "checkout", checkoutID, "intent", intentID, "err", err)
	case refused != "":
		// Paid in the meantime, most likely: its event brings the refund.
		c.logger.Warn("the provider refused to expire the payment intent", "checkout", checkoutID, "intent", intentID, "why", refused)
	}
	return nil
}

// CancelByKey cancels, for its customer, the order of the checkout of an
// idempotency key while it awaits payment, and returns it: in one
// transaction its stock goes back, and the checkout is told, as the
// payment webhook tells it (see settle), so that it stops waiting and
// expires its payment intent. A payment that still comes is refunded. An order
// cancelled already, for whatever reason, is answered as it is; one paid
// is an error of kind shop.ErrConflict, an unknown key one of kind
// shop.ErrNotFound. The key is the customer's secret: knowing it is what
// entitles one to cancel.
func (c *Checkout) CancelByKey(ctx context.Context, key string) (Found, error) {
	if err := shop.ValidateKey(key); err != nil {
		return Found{}, err
	}
	var order shop.Order
	err := c.db.InTx(ctx, func(tx dbos.Tx) error {
		var changed bool
		var err error
		order, changed, err = store.CancelCheckout(ctx, tx, key, shop.ReasonCustomer)
		if err != nil || !changed || order.CheckoutVersion >= version5 {
			return err // a checkout of version5 reads the order's row
		}
		// The word a refused payment sends: a checkout of the last release
		// reads it as cancelled too.
		word := paymentWord{Status: shop.PaymentFailed}
		if err := dbos.Send(c.dbosCtx, key, word, topicPayment, dbos.WithSendTransaction(tx), dbos.WithIdempotencyKey("cancel:"+key)); err != nil {
			return fmt.Errorf("telling checkout %s that its customer cancelled: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return Found{}, err
	}
	c.settlements.settled(order.ID)
	if order.Status != shop.StatusCancelled {
		return Found{}, shop.Errorf(shop.ErrConflict, "order %d is %s: it can no longer be cancelled", order.ID, order.Status)
	}
	return c.FindByKey(ctx, key)
}
