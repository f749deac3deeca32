package checkout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// WorkflowRefund is the durable name of the refund of a payment owed back.
const WorkflowRefund = "checkout.Refund"

// refundWorkflowID is the id of the refund of a payment: one refund per
// payment, however many times it is started.
func refundWorkflowID(ref string) string { return "refund:" + ref }

// refundsSweptEvery is how often the watch starts the refunds of payments
// owed back that have none running: the payment's report committed, and
// the shop died before it started the refund. refundsSweptAfter is how old
// such a payment must be, so that the sweep does not race the report that
// is about to start it.
const (
	refundsSweptEvery = 30 * time.Second
	refundsSweptAfter = 10 * time.Second
)

// refundAttempt is one call to the provider's Refund, as the refund's step
// records it. The step itself never fails: an error is recorded as text,
// so that a replay takes the same decision as the run that recorded it
// (DBOS does not keep an error's type across a restart).
type refundAttempt struct {
	Refund  payment.Refund
	Refused bool   // the provider refused: trying again will not help
	Error   string // the call failed, or the refund is not through yet
}

// refund is the workflow "checkout.Refund": it gives back a payment that
// no order kept (its checkout had given up, or the order was paid twice),
// through the provider that took it, under an idempotency key of the
// payment, so the provider refunds it once however often the call is made.
// A refusal, or a refund that has not gone through after Config's
// RefundAttempts, is put on the operator's list (shop.RefundAttention); so
// is a payment reported on the seed's webhook, which has no refund.
func (c *Checkout) refund(ctx dbos.Context, ref string) (string, error) {
	p, err := dbos.RunAsStep(ctx, func(ctx context.Context) (store.Payment, error) {
		return store.GetPayment(ctx, c.db.Q(), ref)
	}, dbos.WithStepName("checkout.readPayment"))
	if err != nil {
		return "", err
	}
	if p.RefundState != shop.RefundDue {
		return p.RefundState, nil
	}
	if p.Provider == store.SeedProvider || c.provider == nil {
		return c.endRefund(ctx, p, shop.RefundAttention, "", "taken on the seed's webhook, which has no refund: refund it by hand")
	}
	backoff := c.cfg.RefundBackoff
	for attempt := 1; ; attempt++ {
		tried, err := dbos.RunAsStep(ctx, func(ctx context.Context) (refundAttempt, error) {
			return c.tryRefund(ctx, p), nil
		}, dbos.WithStepName("checkout.refund"))
		if err != nil {
			return "", err
		}
		switch {
		case tried.Error == "":
			return c.endRefund(ctx, p, shop.RefundDone, tried.Refund.ID, "")
		case tried.Refused || attempt >= c.cfg.RefundAttempts:
			return c.endRefund(ctx, p, shop.RefundAttention, tried.Refund.ID,
				fmt.Sprintf("the provider did not refund it after %d attempts: %s", attempt, tried.Error))
		}
		c.logger.Warn("a refund did not go through; trying again", "payment", ref, "order", p.OrderID, "attempt", attempt, "error", tried.Error)
		if _, err := dbos.Sleep(ctx, backoff); err != nil {
			return "", err
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// tryRefund asks the provider to refund p, once, and says how it went.
func (c *Checkout) tryRefund(ctx context.Context, p store.Payment) refundAttempt {
	r, err := c.provider.Refund(ctx, payment.RefundRequest{IdempotencyKey: refundWorkflowID(p.Ref), IntentID: p.Ref,
		AmountCents: p.AmountCents, Reason: "the order did not keep the payment"})
	switch {
	case errors.Is(err, payment.ErrRefused):
		return refundAttempt{Refused: true, Error: err.Error()}
	case err != nil:
		return refundAttempt{Error: err.Error()}
	case r.Status == payment.RefundFailed:
		return refundAttempt{Refund: r, Refused: true, Error: "the provider failed the refund"}
	case r.Status != payment.RefundSucceeded:
		return refundAttempt{Refund: r, Error: "the refund is " + r.Status}
	}
	return refundAttempt{Refund: r}
}

// endRefund records how the refund of p ended.
func (c *Checkout) endRefund(ctx dbos.Context, p store.Payment, state, refundID, note string) (string, error) {
	order, err := dbos.RunAsTransaction(ctx, c.ds, func(ctx context.Context, tx dbos.Tx) (orderOutput, error) {
		now := time.Now()
		ended, err := store.EndRefund(ctx, tx, p.Ref, state, refundID, note, now)
		if err != nil || !ended || state != shop.RefundDone {
			return orderOutput{}, err
		}
		order, err := store.GetOrder(ctx, tx, p.OrderID)
		if err != nil {
			return recorded(order), err
		}
		return recorded(order), c.enqueueReceipt(ctx, tx, order, receipt.StageRefunded, p.AmountCents, now)
	}, dbos.WithStepName("checkout.endRefund"))
	if err != nil {
		return "", err
	}
	if err := c.sendReceipt(ctx, order, receipt.StageRefunded); err != nil {
		return "", err
	}
	c.metrics.refunds.WithLabelValues(state).Inc()
	if state == shop.RefundDone {
		c.logger.Info("refunded a payment no order kept", "payment", p.Ref, "order", p.OrderID, "cents", p.AmountCents, "refund", refundID)
	} else {
		c.logger.Error("a payment no order kept needs the operator to refund it", "payment", p.Ref, "order", p.OrderID,
			"cents", p.AmountCents, "why", note)
	}
	return state, nil
}

// startRefund starts the refund of a payment owed back, or finds the one
// started already.
func (c *Checkout) startRefund(ref string) error {
	if _, err := dbos.RunWorkflow(c.dbosCtx, c.refund, ref, dbos.WithWorkflowID(refundWorkflowID(ref))); err != nil {
		return fmt.Errorf("starting the refund of payment %s: %w", ref, err)
	}
	return nil
}

// sweepRefunds starts the refunds that a crash kept from starting.
func (c *Checkout) sweepRefunds(ctx context.Context, now time.Time) {
	due, err := store.RefundsDue(ctx, c.db.Q(), now.Add(-refundsSweptAfter), 100)
	if err != nil {
		if ctx.Err() == nil {
			c.logger.Warn("looking for refunds due", slog.Any("error", err))
		}
		return
	}
	for _, p := range due {
		if err := c.startRefund(p.Ref); err != nil {
			c.logger.Warn("starting a refund due", "payment", p.Ref, slog.Any("error", err))
		}
	}
}
