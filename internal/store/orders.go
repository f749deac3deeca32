package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// The write functions below each run in one transaction: a checkout's
// dbos.RunAsTransaction step, so a workflow applies each exactly once, or
// the payment webhook's own transaction. Their WHERE clauses also check the
// status they move from: a write that finds the order elsewhere changes
// nothing and says so, rather than applying an effect twice.

// NewOrder is what a checkout places.
type NewOrder struct {
	CheckoutID       string
	PaymentID        string
	ProductID        int64
	Quantity         int
	PaymentDeadline  time.Time
	DispatchSteps    int
	DispatchInterval time.Duration
	// Client is who asked, recorded on the order: an address, or "" for
	// the shop's own callers, which no limit applies to.
	Client string
	// ClientLimit is how many units Client may hold in orders awaiting
	// payment, this one's included; 0: no limit.
	ClientLimit int
}

// Placed is what PlaceOrder did: the order it placed or found, or nothing
// when the client's limit refused it. It is the checkout's step output,
// recorded as JSON, and embeds shop.Order so that the output recorded by a
// build whose step returned a bare shop.Order reads back the same.
type Placed struct {
	shop.Order
	// Limited says that nothing was placed: the client held Held units in
	// orders awaiting payment, and this one would have taken it past its
	// limit. The first of them reaches its payment deadline at HeldUntil.
	Limited   bool      `json:",omitempty"`
	Held      int       `json:",omitempty"`
	HeldUntil time.Time `json:",omitzero"`
}

// PlaceOrder inserts the order, priced from the catalog, and takes its
// quantity from stock, in one transaction. The order is PENDING, awaiting
// its payment, or, when the stock is short, CANCELLED for that reason with
// no stock taken. When the checkout already has an order, placed by an
// earlier checkout of the same key whose records were deleted since
// (retention), that order is returned as it is. With a client and a limit,
// an order that would take the client past its limit is not placed:
// Placed.Limited says so. An unknown product is an error of kind
// shop.ErrNotFound.
func PlaceOrder(ctx context.Context, tx dbos.Querier, o NewOrder) (Placed, error) {
	if o.ClientLimit > 0 && o.Client != "" {
		held, until, err := pendingUnits(ctx, tx, o.Client)
		if err != nil {
			return Placed{}, err
		}
		if held+o.Quantity > o.ClientLimit {
			existing, err := OrderByCheckoutID(ctx, tx, o.CheckoutID)
			if err == nil {
				return Placed{Order: existing}, nil
			}
			if !errors.Is(err, shop.ErrNotFound) {
				return Placed{}, err
			}
			return Placed{Limited: true, Held: held, HeldUntil: until}, nil
		}
	}

	now := time.Now().UnixMilli()
	order := shop.Order{CheckoutID: o.CheckoutID, PaymentID: o.PaymentID, ProductID: o.ProductID, Quantity: o.Quantity,
		Status: shop.StatusPending, PaymentDeadline: time.UnixMilli(o.PaymentDeadline.UnixMilli()),
		DispatchSteps: o.DispatchSteps, DispatchInterval: o.DispatchInterval}
	err := tx.QueryRow(ctx, `
		INSERT INTO orders (checkout_id, payment_id, product_id, quantity, total_cents, status,
			payment_deadline_ms, dispatch_steps, dispatch_interval_ms, created_at_ms, updated_at_ms, client)
		SELECT $1, $2, product_id, $3, price_cents * CAST($3 AS INTEGER), $4, $5, $6, $7, $8, $8, $9
		FROM products WHERE product_id = $10
		ON CONFLICT (checkout_id) DO NOTHING
		RETURNING order_id, total_cents`,
		o.CheckoutID, o.PaymentID, o.Quantity, shop.StatusPending, o.PaymentDeadline.UnixMilli(),
		o.DispatchSteps, o.DispatchInterval.Milliseconds(), now, o.Client, o.ProductID).Scan(&order.ID, &order.TotalCents)
	if isNoRows(err) {
		// No such product, or the key's order exists already.
		if existing, err := OrderByCheckoutID(ctx, tx, o.CheckoutID); err == nil {
			return Placed{Order: existing}, nil
		}
		return Placed{Order: order}, shop.Errorf(shop.ErrNotFound, "no product %d", o.ProductID)
	}
	if err != nil {
		return Placed{Order: order}, fmt.Errorf("creating the order of checkout %s: %w", o.CheckoutID, err)
	}
	order.UpdatedAt = time.UnixMilli(now).UTC()

	err = moveStock(ctx, tx, o.ProductID, &order.ID, -int64(o.Quantity), "reserve", now)
	if errors.Is(err, errOutOfStock) {
		order.Status, order.CancelReason = shop.StatusCancelled, shop.ReasonOutOfStock
		return Placed{Order: order}, setStatus(ctx, tx, order.ID, shop.StatusPending, shop.StatusCancelled, shop.ReasonOutOfStock, now)
	}
	if err != nil {
		return Placed{Order: order}, fmt.Errorf("reserving stock for order %d: %w", order.ID, err)
	}
	return Placed{Order: order}, nil
}

// pendingUnits returns how many units client holds in orders awaiting
// payment, and when the first of them reaches its payment deadline (the
// zero time when none). It first locks the client's row of client_locks,
// to the end of the transaction, so that two checkouts of one client take
// turns from the count to the order's insert: on PostgreSQL, at READ
// COMMITTED, each statement reads what was committed when it began, and two
// checkouts counting at once would each miss the other's order. The count,
// begun once the lock is taken, sees the orders of every checkout that held
// it before. (SQLite runs one writing transaction at a time anyway.)
func pendingUnits(ctx context.Context, tx dbos.Querier, client string) (units int, until time.Time, err error) {
	if _, err := tx.Exec(ctx, `
		INSERT INTO client_locks (client) VALUES ($1)
		ON CONFLICT (client) DO UPDATE SET client = excluded.client`, client); err != nil {
		return 0, until, fmt.Errorf("locking client %s: %w", client, err)
	}
	// 'PENDING' is written out, not a parameter: only a query that names
	// it may use the partial index orders_pending_client.
	var untilMs int64
	if err := tx.QueryRow(ctx, `
		SELECT COALESCE(SUM(quantity), 0), COALESCE(MIN(payment_deadline_ms), 0)
		FROM orders WHERE client = $1 AND status = 'PENDING'`, client).Scan(&units, &untilMs); err != nil {
		return 0, until, fmt.Errorf("counting the pending units of client %s: %w", client, err)
	}
	if untilMs != 0 {
		until = time.UnixMilli(untilMs).UTC()
	}
	return units, until, nil
}

// SettlePayment applies the payment provider's report on a payment id:
// paid moves a PENDING order to PAID, from now on, if its payment deadline
// has not passed; failed cancels it and puts its stock back. It returns the
// order and whether the report changed it: a report on an order already
// settled changes nothing, nor does a payment past its deadline. An unknown
// payment id is an error of kind shop.ErrNotFound.
func SettlePayment(ctx context.Context, tx dbos.Querier, paymentID string, status shop.PaymentStatus, now time.Time) (order shop.Order, changed bool, err error) {
	nowMs := now.UnixMilli()
	if status == shop.PaymentPaid {
		err = tx.QueryRow(ctx, `
			UPDATE orders SET status = $1, paid_at_ms = $2, updated_at_ms = $2
			WHERE payment_id = $3 AND status = $4 AND payment_deadline_ms >= $2
			RETURNING `+settledColumns,
			shop.StatusPaid, nowMs, paymentID, shop.StatusPending).Scan(settledFields(&order)...)
		changed = err == nil
		if isNoRows(err) {
			err = nil
		}
	} else {
		order, changed, err = cancelPending(ctx, tx, "payment_id", paymentID, shop.ReasonPaymentFailed, nowMs)
	}
	if err != nil {
		return order, false, fmt.Errorf("settling payment %s as %s: %w", paymentID, status, err)
	}
	if changed {
		return order, true, nil
	}
	// Settled already, past its deadline, or no such payment: say which.
	order, err = OrderByPaymentID(ctx, tx, paymentID)
	if errors.Is(err, shop.ErrNotFound) {
		return order, false, shop.Errorf(shop.ErrNotFound, "unknown payment id %q", paymentID)
	}
	return order, false, err
}

// CancelUnpaid cancels an order still PENDING at the end of its payment
// wait and puts its stock back. It returns the order as it then is: a
// payment applied first leaves it PAID, a refusal CANCELLED.
func CancelUnpaid(ctx context.Context, tx dbos.Querier, orderID int64) (shop.Order, error) {
	order, changed, err := cancelPending(ctx, tx, "order_id", orderID, shop.ReasonPaymentTimeout, time.Now().UnixMilli())
	if err != nil {
		return order, fmt.Errorf("cancelling unpaid order %d: %w", orderID, err)
	}
	if changed {
		return order, nil
	}
	return GetOrder(ctx, tx, orderID)
}

// cancelPending cancels the PENDING order whose column equals value and
// puts its stock back; false when no pending order matched.
func cancelPending(ctx context.Context, tx dbos.Querier, column string, value any, reason string, nowMs int64) (shop.Order, bool, error) {
	var order shop.Order
	err := tx.QueryRow(ctx, `
		UPDATE orders SET status = $1, cancel_reason = $2, updated_at_ms = $3
		WHERE `+column+` = $4 AND status = $5
		RETURNING `+settledColumns,
		shop.StatusCancelled, reason, nowMs, value, shop.StatusPending).Scan(settledFields(&order)...)
	if isNoRows(err) {
		return order, false, nil
	}
	if err != nil {
		return order, false, err
	}
	if err := moveStock(ctx, tx, order.ProductID, &order.ID, int64(order.Quantity), "release", nowMs); err != nil {
		return order, false, fmt.Errorf("releasing stock of order %d: %w", order.ID, err)
	}
	return order, true, nil
}

// settledColumns are what a write that settles an order returns of it.
const settledColumns = `order_id, checkout_id, payment_id, product_id, quantity, total_cents, status, cancel_reason,
	payment_deadline_ms, dispatch_steps, dispatch_interval_ms, COALESCE(paid_at_ms, 0), updated_at_ms`

// settledFields are where settledColumns are scanned to; the times are
// converted by the scanner types below.
func settledFields(o *shop.Order) []any {
	return []any{&o.ID, &o.CheckoutID, &o.PaymentID, &o.ProductID, &o.Quantity, &o.TotalCents, &o.Status, &o.CancelReason,
		(*msTime)(&o.PaymentDeadline), &o.DispatchSteps, (*msDuration)(&o.DispatchInterval), (*msTime)(&o.PaidAt), (*msTime)(&o.UpdatedAt)}
}

// MarkDispatched moves a PAID order to DISPATCHED: its dispatch's last step.
func MarkDispatched(ctx context.Context, tx dbos.Querier, orderID int64) error {
	res, err := tx.Exec(ctx, `
		UPDATE orders SET status = $1, dispatched_at_ms = $2, updated_at_ms = $2
		WHERE order_id = $3 AND status = $4`,
		shop.StatusDispatched, time.Now().UnixMilli(), orderID, shop.StatusPaid)
	if err != nil {
		return fmt.Errorf("dispatching order %d: %w", orderID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("dispatching order %d: it is not %s", orderID, shop.StatusPaid)
	}
	return nil
}

func setStatus(ctx context.Context, tx dbos.Querier, orderID int64, from, to shop.OrderStatus, reason string, nowMs int64) error {
	res, err := tx.Exec(ctx, `
		UPDATE orders SET status = $1, cancel_reason = $2, updated_at_ms = $3
		WHERE order_id = $4 AND status = $5`,
		to, reason, nowMs, orderID, from)
	if err != nil {
		return fmt.Errorf("moving order %d from %s to %s: %w", orderID, from, to, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("moving order %d from %s to %s: it is not %s", orderID, from, to, from)
	}
	return nil
}

const orderColumns = `o.order_id, o.checkout_id, o.payment_id, o.product_id, p.product, o.quantity,
	o.total_cents, o.status, o.cancel_reason, o.payment_deadline_ms, o.dispatch_steps, o.dispatch_interval_ms,
	COALESCE(o.paid_at_ms, 0), o.updated_at_ms`

const orderFrom = ` FROM orders o JOIN products p ON p.product_id = o.product_id `

func scanOrder(row dbos.Row) (shop.Order, error) {
	var o shop.Order
	err := row.Scan(&o.ID, &o.CheckoutID, &o.PaymentID, &o.ProductID, &o.ProductName, &o.Quantity,
		&o.TotalCents, &o.Status, &o.CancelReason, (*msTime)(&o.PaymentDeadline), &o.DispatchSteps,
		(*msDuration)(&o.DispatchInterval), (*msTime)(&o.PaidAt), (*msTime)(&o.UpdatedAt))
	return o, err
}

// msTime scans a time stored as Unix milliseconds; 0 is the zero time.
type msTime time.Time

func (t *msTime) Scan(src any) error {
	ms, ok := src.(int64)
	if !ok {
		return fmt.Errorf("a time in milliseconds must be an integer, not %T", src)
	}
	*t = msTime{}
	if ms != 0 {
		*t = msTime(time.UnixMilli(ms).UTC())
	}
	return nil
}

// msDuration scans a duration stored in milliseconds.
type msDuration time.Duration

func (d *msDuration) Scan(src any) error {
	ms, ok := src.(int64)
	if !ok {
		return fmt.Errorf("a duration in milliseconds must be an integer, not %T", src)
	}
	*d = msDuration(time.Duration(ms) * time.Millisecond)
	return nil
}

func getOrderWhere(ctx context.Context, q dbos.Querier, where string, arg any) (shop.Order, error) {
	o, err := scanOrder(q.QueryRow(ctx, `SELECT `+orderColumns+orderFrom+`WHERE `+where, arg))
	if isNoRows(err) {
		return o, shop.Errorf(shop.ErrNotFound, "no such order")
	}
	if err != nil {
		return o, fmt.Errorf("reading order (%s %v): %w", where, arg, err)
	}
	return o, nil
}

// GetOrder returns an order by id, or an error of kind shop.ErrNotFound.
func GetOrder(ctx context.Context, q dbos.Querier, id int64) (shop.Order, error) {
	return getOrderWhere(ctx, q, `o.order_id = $1`, id)
}

// OrderByPaymentID returns the order a payment id was issued for, or an
// error of kind shop.ErrNotFound.
func OrderByPaymentID(ctx context.Context, q dbos.Querier, paymentID string) (shop.Order, error) {
	return getOrderWhere(ctx, q, `o.payment_id = $1`, paymentID)
}

// OrderByCheckoutID returns the order a checkout created, or an error of
// kind shop.ErrNotFound.
func OrderByCheckoutID(ctx context.Context, q dbos.Querier, checkoutID string) (shop.Order, error) {
	return getOrderWhere(ctx, q, `o.checkout_id = $1`, checkoutID)
}

// ListOrders returns the newest orders first, at most limit of them.
func ListOrders(ctx context.Context, q dbos.Querier, limit int) ([]shop.Order, error) {
	orders, err := queryAll(ctx, q, scanOrder, `SELECT `+orderColumns+orderFrom+`ORDER BY o.order_id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing orders: %w", err)
	}
	return orders, nil
}
