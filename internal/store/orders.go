package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// The write functions below each run inside one dbos.RunAsTransaction step,
// so a workflow applies each of them exactly once. Their WHERE clauses also
// check the status they move from: a write that finds the order elsewhere
// changes nothing and says so, rather than applying an effect twice.

// NewOrder is what a checkout creates.
type NewOrder struct {
	CheckoutID string
	PaymentID  string
	ProductID  int64
	Quantity   int
	Steps      int // dispatch progress steps, counted down in progress_remaining
}

// CreateOrder inserts a PENDING order priced from the catalog. An unknown
// product is an error of kind shop.ErrNotFound.
func CreateOrder(ctx context.Context, tx dbos.Querier, o NewOrder) (shop.Order, error) {
	now := time.Now().UnixMilli()
	var id int64
	err := tx.QueryRow(ctx, `
		INSERT INTO orders (checkout_id, payment_id, product_id, quantity, total_cents, status, dispatch_steps, progress_remaining, created_at_ms, updated_at_ms)
		SELECT $1, $2, product_id, $3, price_cents * CAST($3 AS INTEGER), $4, $5, $5, $6, $6 FROM products WHERE product_id = $7
		RETURNING order_id`,
		o.CheckoutID, o.PaymentID, o.Quantity, shop.StatusPending, o.Steps, now, o.ProductID).Scan(&id)
	if isNoRows(err) {
		return shop.Order{}, shop.Errorf(shop.ErrNotFound, "no product %d", o.ProductID)
	}
	if err != nil {
		return shop.Order{}, fmt.Errorf("creating the order of checkout %s: %w", o.CheckoutID, err)
	}
	return GetOrder(ctx, tx, id)
}

// ReserveStock takes the order's quantity from stock. When there is not
// enough it cancels the order instead and returns false.
func ReserveStock(ctx context.Context, tx dbos.Querier, o shop.Order) (bool, error) {
	err := moveStock(ctx, tx, o.ProductID, &o.ID, -int64(o.Quantity), "reserve", time.Now().UnixMilli())
	if errors.Is(err, errOutOfStock) {
		return false, setStatus(ctx, tx, o.ID, shop.StatusPending, shop.StatusCancelled, shop.ReasonOutOfStock)
	}
	if err != nil {
		return false, fmt.Errorf("reserving stock for order %d: %w", o.ID, err)
	}
	return true, nil
}

// CancelOrder cancels a PENDING order whose stock is reserved and puts the
// stock back.
func CancelOrder(ctx context.Context, tx dbos.Querier, o shop.Order, reason string) error {
	if err := setStatus(ctx, tx, o.ID, shop.StatusPending, shop.StatusCancelled, reason); err != nil {
		return err
	}
	if err := moveStock(ctx, tx, o.ProductID, &o.ID, int64(o.Quantity), "release", time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("releasing stock of order %d: %w", o.ID, err)
	}
	return nil
}

// MarkPaid moves a PENDING order to PAID.
func MarkPaid(ctx context.Context, tx dbos.Querier, orderID int64) error {
	return setStatus(ctx, tx, orderID, shop.StatusPending, shop.StatusPaid, "")
}

// AdvanceDispatch counts a PAID order's progress down by one; the last step
// makes it DISPATCHED. It returns the steps still to go.
func AdvanceDispatch(ctx context.Context, tx dbos.Querier, orderID int64) (int, error) {
	var remaining int
	err := tx.QueryRow(ctx, `
		UPDATE orders SET
			progress_remaining = progress_remaining - 1,
			status = CASE WHEN progress_remaining <= 1 THEN $1 ELSE status END,
			updated_at_ms = $2
		WHERE order_id = $3 AND status = $4 AND progress_remaining > 0
		RETURNING progress_remaining`,
		shop.StatusDispatched, time.Now().UnixMilli(), orderID, shop.StatusPaid).Scan(&remaining)
	if isNoRows(err) {
		return 0, fmt.Errorf("advancing dispatch of order %d: it is not being dispatched", orderID)
	}
	if err != nil {
		return 0, fmt.Errorf("advancing dispatch of order %d: %w", orderID, err)
	}
	return remaining, nil
}

func setStatus(ctx context.Context, tx dbos.Querier, orderID int64, from, to shop.OrderStatus, reason string) error {
	res, err := tx.Exec(ctx, `
		UPDATE orders SET status = $1, cancel_reason = $2, updated_at_ms = $3
		WHERE order_id = $4 AND status = $5`,
		to, reason, time.Now().UnixMilli(), orderID, from)
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
	o.total_cents, o.status, o.cancel_reason, o.dispatch_steps, o.progress_remaining, o.updated_at_ms`

const orderFrom = ` FROM orders o JOIN products p ON p.product_id = o.product_id `

func scanOrder(row dbos.Row) (shop.Order, error) {
	var o shop.Order
	var updatedMs int64
	err := row.Scan(&o.ID, &o.CheckoutID, &o.PaymentID, &o.ProductID, &o.ProductName, &o.Quantity,
		&o.TotalCents, &o.Status, &o.CancelReason, &o.DispatchSteps, &o.ProgressRemaining, &updatedMs)
	o.UpdatedAt = time.UnixMilli(updatedMs).UTC()
	return o, err
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
