package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// Money moves only here. Every payment a provider reports taken is
// recorded in payments, whatever became of its order: kept when it paid a
// pending order, owed back (refund due) otherwise. Nothing paid is kept
// without a purchase, and Audit checks that the kept payments are exactly
// the paid orders' totals.

// SeedProvider names the payments reported on the seed's webhook, which
// identifies a payment by the shop's own payment id.
const SeedProvider = "seed"

// PaymentReport is a payment provider's report on one payment.
type PaymentReport struct {
	// The order it pays: by its payment id (the seed's webhook) or by its
	// checkout (a provider's event, whose metadata names the checkout).
	PaymentID  string
	CheckoutID string
	Status     shop.PaymentStatus
	// Ref is the provider's id of the payment, unique per payment taken,
	// and Provider who took it.
	Ref      string
	Provider string
	// AmountCents is what the provider took; 0 when it does not say (the
	// seed's webhook), which is taken to be the order's total.
	AmountCents int64
	// EventID, when the report is a provider's event, is recorded so that
	// the same event applies once; "" for none.
	EventID string
	// Mismatch, when set, says why the payment cannot pay its order,
	// whatever the order's state: its currency is not the shop's. An
	// amount other than the order's total is found here. Such a payment is
	// owed back, and recorded with the mismatch for the operator.
	Mismatch string
}

// Settlement is what a payment report did.
type Settlement struct {
	Order shop.Order
	// Changed: the report settled the order (PAID, or CANCELLED and its
	// stock released).
	Changed bool
	// RefundDue: the report took money the order did not keep (it was
	// settled already, cancelled, past its deadline, or the amount was
	// wrong); the payment is recorded as owed back, and a refund must be
	// started for Ref.
	RefundDue bool
	// Replayed: the event was applied before; nothing changed.
	Replayed bool
	// Mismatch: why the payment, owed back, could not pay its order
	// (Payment.Mismatch); "" for none.
	Mismatch string
}

// SettlePayment applies a payment report: paid moves a PENDING order to
// PAID, from now on, if its payment deadline has not passed and the amount
// is its total, and records the payment as kept; a payment that does not
// do that is recorded as owed back. Failed cancels a PENDING order and puts
// its stock back. The same payment or event reported again changes nothing.
// An unknown order is an error of kind shop.ErrNotFound.
func SettlePayment(ctx context.Context, tx dbos.Querier, r PaymentReport, now time.Time) (Settlement, error) {
	if r.EventID != "" {
		first, err := recordPaymentEvent(ctx, tx, r.EventID, now)
		if err != nil {
			return Settlement{}, err
		}
		if !first {
			s := Settlement{Replayed: true}
			s.Order, err = r.order(ctx, tx)
			return s, err
		}
	}
	nowMs := now.UnixMilli()
	if r.Status == shop.PaymentFailed {
		return settleFailed(ctx, tx, r, nowMs)
	}
	return settlePaid(ctx, tx, r, nowMs)
}

// recordPaymentEvent records a provider's event as applied; first is false
// when it was recorded before, and so applies no more.
func recordPaymentEvent(ctx context.Context, tx dbos.Querier, eventID string, now time.Time) (first bool, err error) {
	res, err := tx.Exec(ctx, `INSERT INTO payment_events (event_id, received_at_ms) VALUES ($1, $2)
			ON CONFLICT (event_id) DO NOTHING`, eventID, now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("recording payment event %s: %w", eventID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n != 0, nil
}

// settleFailed cancels the report's order if it is PENDING, putting its
// stock back; otherwise it reads the order as it stands.
func settleFailed(ctx context.Context, tx dbos.Querier, r PaymentReport, nowMs int64) (s Settlement, err error) {
	column, value := r.orderKey()
	s.Order, s.Changed, err = cancelPending(ctx, tx, column, value, shop.ReasonPaymentFailed, nowMs)
	if err != nil {
		return s, fmt.Errorf("settling payment %s as failed: %w", r.Ref, err)
	}
	if !s.Changed {
		s.Order, err = r.order(ctx, tx)
	}
	return s, err
}

// settlePaid moves the report's order to PAID if it can, and records the
// payment: kept when it paid the order, owed back otherwise.
func settlePaid(ctx context.Context, tx dbos.Querier, r PaymentReport, nowMs int64) (Settlement, error) {
	s, err := payPending(ctx, tx, r, nowMs)
	if err != nil {
		return s, err
	}
	amount, mismatch := r.takenAgainst(s.Order.TotalCents)
	refundState := ""
	if !s.Changed {
		refundState = shop.RefundDue
	}
	res, err := tx.Exec(ctx, `
		INSERT INTO payments (payment_ref, order_id, provider, amount_cents, taken_at_ms, refund_state, mismatch)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (payment_ref) DO NOTHING`,
		r.Ref, s.Order.ID, r.Provider, amount, nowMs, refundState, mismatch)
	if err != nil {
		return s, fmt.Errorf("recording payment %s: %w", r.Ref, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s, err
	}
	// No row: the payment was recorded before, and this is its report
	// again (a redelivery), which changes nothing more.
	s.RefundDue = n == 1 && !s.Changed
	if n == 1 {
		s.Mismatch = mismatch
	}
	if s.RefundDue {
		s.Order.Refund = shop.RefundDue
	}
	return s, nil
}

// payPending moves the report's order from PENDING to PAID if its payment
// deadline has not passed, the amount is its total and there is no
// mismatch (Changed); otherwise it reads the order as it stands.
func payPending(ctx context.Context, tx dbos.Querier, r PaymentReport, nowMs int64) (s Settlement, err error) {
	column, value := r.orderKey()
	if r.Mismatch == "" {
		err = tx.QueryRow(ctx, `
		UPDATE orders SET status = $1, paid_at_ms = $2, updated_at_ms = $2
		WHERE `+column+` = $3 AND status = $4 AND payment_deadline_ms >= $2 AND ($5 = 0 OR total_cents = $5)
		RETURNING `+settledColumns,
			shop.StatusPaid, nowMs, value, shop.StatusPending, r.AmountCents).Scan(settledFields(&s.Order)...)
		s.Changed = err == nil
	}
	if !s.Changed && (r.Mismatch != "" || IsNoRows(err)) {
		s.Order, err = r.order(ctx, tx)
	}
	if err != nil {
		return s, fmt.Errorf("settling payment %s as paid: %w", r.Ref, err)
	}
	return s, nil
}

// takenAgainst is the amount the report took (its order's total when it
// does not say) and why it cannot pay an order of totalCents: the report's
// own mismatch, or a wrong amount; "" when it can.
func (r PaymentReport) takenAgainst(totalCents int64) (amount int64, mismatch string) {
	amount = r.AmountCents
	if amount == 0 {
		amount = totalCents
	}
	mismatch = r.Mismatch
	if mismatch == "" && amount != totalCents {
		mismatch = fmt.Sprintf("%d cents taken for an order of %d cents", amount, totalCents)
	}
	return amount, mismatch
}

// orderKey is the orders column that finds the report's order, and its value.
func (r PaymentReport) orderKey() (string, any) {
	if r.CheckoutID != "" {
		return "checkout_id", r.CheckoutID
	}
	return "payment_id", r.PaymentID
}

// order reads the report's order; none is an error of kind shop.ErrNotFound.
func (r PaymentReport) order(ctx context.Context, q dbos.Querier) (shop.Order, error) {
	if r.CheckoutID != "" {
		o, err := OrderByCheckoutID(ctx, q, r.CheckoutID)
		if errors.Is(err, shop.ErrNotFound) {
			return o, shop.Errorf(shop.ErrNotFound, "no order for checkout %q", r.CheckoutID)
		}
		return o, err
	}
	o, err := OrderByPaymentID(ctx, q, r.PaymentID)
	if errors.Is(err, shop.ErrNotFound) {
		return o, shop.Errorf(shop.ErrNotFound, "unknown payment id %q", r.PaymentID)
	}
	return o, err
}

// Payment is a payment taken, as recorded.
type Payment struct {
	Ref         string
	OrderID     int64
	Provider    string
	AmountCents int64
	TakenAt     time.Time
	RefundState string // "" kept; shop.RefundDue, RefundDone or RefundAttention
	RefundID    string
	RefundNote  string
	Mismatch    string // why it could not pay its order (PaymentReport.Mismatch); "" for none
}

const paymentColumns = `payment_ref, order_id, provider, amount_cents, taken_at_ms, refund_state, refund_id, refund_note, mismatch`

func scanPayment(row dbos.Row) (p Payment, err error) {
	err = row.Scan(&p.Ref, &p.OrderID, &p.Provider, &p.AmountCents, (*msTime)(&p.TakenAt), &p.RefundState, &p.RefundID, &p.RefundNote, &p.Mismatch)
	return p, err
}

// GetPayment returns a payment by its provider's id, or an error of kind
// shop.ErrNotFound.
func GetPayment(ctx context.Context, q dbos.Querier, ref string) (Payment, error) {
	p, err := scanPayment(q.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments WHERE payment_ref = $1`, ref))
	if IsNoRows(err) {
		return p, shop.Errorf(shop.ErrNotFound, "no payment %q", ref)
	}
	if err != nil {
		return p, fmt.Errorf("reading payment %s: %w", ref, err)
	}
	return p, nil
}

// RefundsDue lists the payments owed back that were taken before
// takenBefore, oldest first, at most limit of them.
func RefundsDue(ctx context.Context, q dbos.Querier, takenBefore time.Time, limit int) ([]Payment, error) {
	// 'due' is written out, not a parameter: only a query that names it
	// may use the partial index payments_refund_due.
	payments, err := QueryAll(ctx, q, scanPayment, `SELECT `+paymentColumns+` FROM payments
		WHERE refund_state = 'due' AND taken_at_ms < $1 ORDER BY taken_at_ms LIMIT $2`, takenBefore.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("listing the refunds due: %w", err)
	}
	return payments, nil
}

// PaymentsOwed lists the payments owed back that the shop could not refund
// itself, newest first, at most limit of them: the operator's to refund.
func PaymentsOwed(ctx context.Context, q dbos.Querier, limit int) ([]Payment, error) {
	payments, err := QueryAll(ctx, q, scanPayment, `SELECT `+paymentColumns+` FROM payments
		WHERE refund_state = $1 ORDER BY taken_at_ms DESC LIMIT $2`, shop.RefundAttention, limit)
	if err != nil {
		return nil, fmt.Errorf("listing the payments owed: %w", err)
	}
	return payments, nil
}

// PaymentsMismatched lists the payments that could not pay their order
// (Payment.Mismatch), newest first, at most limit of them: refunded, or
// being refunded, like any payment owed back, and the operator's to look
// into.
func PaymentsMismatched(ctx context.Context, q dbos.Querier, limit int) ([]Payment, error) {
	payments, err := QueryAll(ctx, q, scanPayment, `SELECT `+paymentColumns+` FROM payments
		WHERE mismatch <> '' ORDER BY taken_at_ms DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing the mismatched payments: %w", err)
	}
	return payments, nil
}

// EndRefund records how the refund of a payment owed back ended: state is
// shop.RefundDone, with the provider's refund id, or shop.RefundAttention,
// with a note saying why the operator must refund it. A payment no longer
// due is left as it is, and false returned.
func EndRefund(ctx context.Context, tx dbos.Querier, ref, state, refundID, note string, now time.Time) (bool, error) {
	res, err := tx.Exec(ctx, `
		UPDATE payments SET refund_state = $1, refund_id = $2, refund_note = $3, refunded_at_ms = $4
		WHERE payment_ref = $5 AND refund_state = $6`,
		state, refundID, note, now.UnixMilli(), ref, shop.RefundDue)
	if err != nil {
		return false, fmt.Errorf("recording the refund of payment %s: %w", ref, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Money is the shop's books of money, in cents: what the providers took,
// split into what paid orders keep and what is owed back (being refunded,
// refunded, or left to the operator). Taken is always the sum of the rest.
type Money struct {
	TakenCents     int64 `json:"taken_cents"`
	KeptCents      int64 `json:"kept_cents"`
	RefundingCents int64 `json:"refunding_cents"`
	RefundedCents  int64 `json:"refunded_cents"`
	OwedCents      int64 `json:"owed_cents"` // left to the operator
}

// Books sums the payments taken by what became of them.
func Books(ctx context.Context, q dbos.Querier) (Money, error) {
	var m Money
	err := q.QueryRow(ctx, `
		SELECT COALESCE(SUM(amount_cents), 0),
			COALESCE(SUM(CASE WHEN refund_state = '' THEN amount_cents ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN refund_state = $1 THEN amount_cents ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN refund_state = $2 THEN amount_cents ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN refund_state = $3 THEN amount_cents ELSE 0 END), 0)
		FROM payments`, shop.RefundDue, shop.RefundDone, shop.RefundAttention).
		Scan(&m.TakenCents, &m.KeptCents, &m.RefundingCents, &m.RefundedCents, &m.OwedCents)
	if err != nil {
		return m, fmt.Errorf("summing the payments: %w", err)
	}
	return m, nil
}
