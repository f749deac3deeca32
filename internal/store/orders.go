package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	Lines            []shop.Line // as shop.NormalizeLines returns them: one per product, in product order
	Email            string
	PaymentDeadline  time.Time
	DispatchSteps    int
	DispatchInterval time.Duration
	// Client is who asked, recorded on the order: an address, or "" for
	// the shop's own callers, which no limit applies to.
	Client string
	// ClientLimit is how many units Client may hold in orders awaiting
	// payment, this one's included; 0: no limit.
	ClientLimit int
	// Screen, when its Streak is set, refuses a client whose last Streak
	// orders, all placed within Window, were all refused by the payment
	// provider (RefusalStreak).
	Screen Screen
	// CheckoutVersion is the step sequence of the checkout placing it
	// (the orders' checkout_version).
	CheckoutVersion int
}

// Screen is the screening of a client's order: see NewOrder.
type Screen struct {
	Streak int
	Window time.Duration
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
	// Unavailable lists, for an order cancelled out of stock, the lines
	// that could not be had and what was in stock when they were asked.
	Unavailable []shop.Shortage `json:",omitempty"`
	// Screened says that nothing was placed: the screening refused the
	// client until HeldUntil.
	Screened bool `json:",omitempty"`
}

// PlaceOrder inserts the order and its lines, priced from the catalog, and
// takes every line from stock, all or nothing, in one transaction. The
// order is PENDING, awaiting its payment, or, when the stock is short for
// any line, CANCELLED for that reason with no stock taken and the short
// lines listed. When the checkout already has an order, placed by an
// earlier checkout of the same key whose records were deleted since
// (retention), that order is returned as it is. With a client and a limit,
// an order that would take the client past its limit is not placed:
// Placed.Limited says so. An unknown product is an error of kind
// shop.ErrNotFound.
func PlaceOrder(ctx context.Context, tx dbos.Querier, o NewOrder) (Placed, error) {
	units := shop.Units(o.Lines)
	if refusal, refuse, err := clientRefusal(ctx, tx, o, units); err != nil {
		return Placed{}, err
	} else if refuse {
		return refused(ctx, tx, o.CheckoutID, refusal)
	}

	prices, err := productColumn(ctx, tx, "price_cents", o.Lines)
	if err != nil {
		return Placed{}, err
	}
	now := time.Now().UnixMilli()
	order := shop.Order{CheckoutID: o.CheckoutID, PaymentID: o.PaymentID, ProductID: o.Lines[0].ProductID, Quantity: units,
		Email: o.Email, Status: shop.StatusPending, PaymentDeadline: time.UnixMilli(o.PaymentDeadline.UnixMilli()),
		DispatchSteps: o.DispatchSteps, DispatchInterval: o.DispatchInterval, CheckoutVersion: o.CheckoutVersion}
	for _, l := range o.Lines {
		order.TotalCents += prices[l.ProductID] * int64(l.Quantity)
	}
	err = tx.QueryRow(ctx, `
		INSERT INTO orders (checkout_id, payment_id, product_id, quantity, total_cents, status, payment_deadline_ms,
			dispatch_steps, dispatch_interval_ms, created_at_ms, updated_at_ms, client, email, checkout_version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13)
		ON CONFLICT (checkout_id) DO NOTHING
		RETURNING order_id`,
		o.CheckoutID, o.PaymentID, order.ProductID, units, order.TotalCents, shop.StatusPending, o.PaymentDeadline.UnixMilli(),
		o.DispatchSteps, o.DispatchInterval.Milliseconds(), now, o.Client, o.Email, o.CheckoutVersion).Scan(&order.ID)
	if IsNoRows(err) {
		// The key's order exists already.
		existing, err := OrderByCheckoutID(ctx, tx, o.CheckoutID)
		return Placed{Order: existing}, err
	}
	if err != nil {
		return Placed{Order: order}, fmt.Errorf("creating the order of checkout %s: %w", o.CheckoutID, err)
	}
	order.UpdatedAt = time.UnixMilli(now).UTC()
	if err := insertLines(ctx, tx, order.ID, o.Lines, prices); err != nil {
		return Placed{Order: order}, err
	}

	shortages, err := reserveLines(ctx, tx, order.ID, o.Lines, now)
	if err != nil {
		return Placed{Order: order}, fmt.Errorf("reserving stock for order %d: %w", order.ID, err)
	}
	if shortages != nil {
		order.Status, order.CancelReason = shop.StatusCancelled, shop.ReasonOutOfStock
		return Placed{Order: order, Unavailable: shortages}, setStatus(ctx, tx, order.ID, shop.StatusPending, shop.StatusCancelled, shop.ReasonOutOfStock, now)
	}
	return Placed{Order: order}, nil
}

// clientRefusal is how PlaceOrder refuses the order's client, if it does:
// Screened while the screening refuses the client, or else Limited when
// the order's units would take the client past its limit. refuse is false
// when neither applies.
func clientRefusal(ctx context.Context, tx dbos.Querier, o NewOrder, units int) (refusal Placed, refuse bool, err error) {
	if o.Client == "" {
		return Placed{}, false, nil
	}
	if o.Screen.Streak > 0 {
		until, err := RefusalStreak(ctx, tx, o.Client, o.Screen.Streak, time.Now().Add(-o.Screen.Window), o.Screen.Window)
		if err != nil {
			return Placed{}, false, err
		}
		if !until.IsZero() {
			return Placed{Screened: true, HeldUntil: until}, true, nil
		}
	}
	if o.ClientLimit > 0 {
		held, until, err := pendingUnits(ctx, tx, o.Client)
		if err != nil {
			return Placed{}, false, err
		}
		if held+units > o.ClientLimit {
			return Placed{Limited: true, Held: held, HeldUntil: until}, true, nil
		}
	}
	return Placed{}, false, nil
}

// refused is what PlaceOrder answers when a limit refuses the checkout:
// the refusal, or the order the checkout placed already, in a run whose
// records were deleted since (retention).
func refused(ctx context.Context, tx dbos.Querier, checkoutID string, refusal Placed) (Placed, error) {
	existing, err := OrderByCheckoutID(ctx, tx, checkoutID)
	if err == nil {
		return Placed{Order: existing}, nil
	}
	if !errors.Is(err, shop.ErrNotFound) {
		return Placed{}, err
	}
	return refusal, nil
}

// productColumn reads an integer column of the lines' products, by product
// id; a product not in the catalog is an error of kind shop.ErrNotFound.
func productColumn(ctx context.Context, tx dbos.Querier, column string, lines []shop.Line) (map[int64]int64, error) {
	ids := make([]any, len(lines))
	marks := make([]string, len(lines))
	for i, l := range lines {
		ids[i], marks[i] = l.ProductID, "$"+strconv.Itoa(i+1)
	}
	type pair struct{ id, value int64 }
	rows, err := QueryAll(ctx, tx, func(row dbos.Row) (p pair, err error) { return p, row.Scan(&p.id, &p.value) },
		`SELECT product_id, `+column+` FROM products WHERE product_id IN (`+strings.Join(marks, ", ")+`)`, ids...)
	if err != nil {
		return nil, fmt.Errorf("reading the %s of products: %w", column, err)
	}
	values := make(map[int64]int64, len(rows))
	for _, p := range rows {
		values[p.id] = p.value
	}
	for _, l := range lines {
		if _, ok := values[l.ProductID]; !ok {
			return nil, shop.Errorf(shop.ErrNotFound, "no product %d", l.ProductID)
		}
	}
	return values, nil
}

// insertLines records an order's lines at the prices they were sold at,
// in one statement.
func insertLines(ctx context.Context, tx dbos.Querier, orderID int64, lines []shop.Line, prices map[int64]int64) error {
	values := make([]string, len(lines))
	args := make([]any, 0, 1+3*len(lines))
	args = append(args, orderID)
	for i, l := range lines {
		n := len(args)
		values[i] = fmt.Sprintf("($1, %d, $%d, $%d, $%d)", i+1, n+1, n+2, n+3)
		args = append(args, l.ProductID, l.Quantity, prices[l.ProductID])
	}
	if _, err := tx.Exec(ctx, `INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price_cents) VALUES `+
		strings.Join(values, ", "), args...); err != nil {
		return fmt.Errorf("recording the lines of order %d: %w", orderID, err)
	}
	return nil
}

// reserveLines takes every line from stock, or none: when a line is short,
// the lines taken before it are rolled back to a savepoint and the short
// lines are returned (nil when all were taken). One line needs no
// savepoint: a reservation that finds too little takes nothing.
func reserveLines(ctx context.Context, tx dbos.Querier, orderID int64, lines []shop.Line, nowMs int64) ([]shop.Shortage, error) {
	several := len(lines) > 1
	if several {
		if _, err := tx.Exec(ctx, `SAVEPOINT reserve_lines`); err != nil {
			return nil, err
		}
	}
	short := false
	for _, l := range lines {
		err := reserveStock(ctx, tx, l.ProductID, orderID, l.Quantity, nowMs)
		if errors.Is(err, errOutOfStock) {
			short = true
			break
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case !short && several:
		_, err := tx.Exec(ctx, `RELEASE SAVEPOINT reserve_lines`)
		return nil, err
	case !short:
		return nil, nil
	case several:
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT reserve_lines`); err != nil {
			return nil, err
		}
	}
	stock, err := productColumn(ctx, tx, "inventory", lines)
	if err != nil {
		return nil, err
	}
	shortages := []shop.Shortage{}
	for _, l := range lines {
		if available := int(stock[l.ProductID]); available < l.Quantity {
			shortages = append(shortages, shop.Shortage{ProductID: l.ProductID, Wanted: l.Quantity, Available: available})
		}
	}
	return shortages, nil
}

// PruneClientLocks deletes the lock rows (pendingUnits) of the clients
// that hold no order awaiting payment, and returns how many. A checkout of
// such a client writes its row again; one writing it now holds it locked
// until its order is in, and the delete waits for it and then finds the
// order.
func PruneClientLocks(ctx context.Context, tx dbos.Querier) (int64, error) {
	res, err := tx.Exec(ctx, `DELETE FROM client_locks WHERE NOT EXISTS (
		SELECT 1 FROM orders WHERE orders.client = client_locks.client AND orders.status = 'PENDING')`)
	if err != nil {
		return 0, fmt.Errorf("pruning the clients' lock rows: %w", err)
	}
	return res.RowsAffected()
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

// CancelUnpaid cancels an order still PENDING, for reason (its payment
// wait ended, or no payment can come), and puts its stock back. It returns
// the order as it then is: a payment applied first leaves it PAID, a
// refusal CANCELLED.
func CancelUnpaid(ctx context.Context, tx dbos.Querier, orderID int64, reason string) (shop.Order, error) {
	order, changed, err := cancelPending(ctx, tx, "order_id", orderID, reason, time.Now().UnixMilli())
	if err != nil {
		return order, fmt.Errorf("cancelling unpaid order %d: %w", orderID, err)
	}
	if changed {
		return order, nil
	}
	return GetOrder(ctx, tx, orderID)
}

// CancelCheckout cancels the order of a checkout if it is still PENDING,
// for reason, and puts its stock back, as CancelUnpaid does; false when it
// was not PENDING (paid, or cancelled already), and the order as it is.
// An unknown checkout is an error of kind shop.ErrNotFound.
func CancelCheckout(ctx context.Context, tx dbos.Querier, checkoutID, reason string) (shop.Order, bool, error) {
	order, changed, err := cancelPending(ctx, tx, "checkout_id", checkoutID, reason, time.Now().UnixMilli())
	if err != nil {
		return order, false, fmt.Errorf("cancelling the order of checkout %s: %w", checkoutID, err)
	}
	if changed {
		return order, true, nil
	}
	order, err = OrderByCheckoutID(ctx, tx, checkoutID)
	return order, false, err
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
	if IsNoRows(err) {
		return order, false, nil
	}
	if err != nil {
		return order, false, err
	}
	lines, err := OrderLines(ctx, tx, order.ID)
	if err != nil {
		return order, false, err
	}
	for _, l := range lines {
		if err := moveStock(ctx, tx, l.ProductID, &order.ID, int64(l.Quantity), "release", nowMs); err != nil {
			return order, false, fmt.Errorf("releasing stock of order %d: %w", order.ID, err)
		}
	}
	return order, true, nil
}

// GetSettled reads an order as a write that settles it returns it
// (settledColumns: without its product's name, lines or refund).
func GetSettled(ctx context.Context, q dbos.Querier, orderID int64) (shop.Order, error) {
	var o shop.Order
	err := q.QueryRow(ctx, `SELECT `+settledColumns+` FROM orders WHERE order_id = $1`, orderID).Scan(settledFields(&o)...)
	if IsNoRows(err) {
		return o, shop.Errorf(shop.ErrNotFound, "no order %d", orderID)
	}
	if err != nil {
		return o, fmt.Errorf("reading order %d: %w", orderID, err)
	}
	return o, nil
}

// settledColumns are what a write that settles an order returns of it.
const settledColumns = `order_id, checkout_id, payment_id, product_id, quantity, total_cents, status, cancel_reason,
	payment_deadline_ms, dispatch_steps, dispatch_interval_ms, COALESCE(paid_at_ms, 0), updated_at_ms, email, checkout_version`

// settledFields are where settledColumns are scanned to; the times are
// converted by the scanner types below.
func settledFields(o *shop.Order) []any {
	return []any{&o.ID, &o.CheckoutID, &o.PaymentID, &o.ProductID, &o.Quantity, &o.TotalCents, &o.Status, &o.CancelReason,
		(*msTime)(&o.PaymentDeadline), &o.DispatchSteps, (*msDuration)(&o.DispatchInterval), (*msTime)(&o.PaidAt), (*msTime)(&o.UpdatedAt), &o.Email,
		&o.CheckoutVersion}
}

// MarkDispatched moves a PAID order to DISPATCHED, its dispatch's last
// step, and returns the order's email address, for its receipt.
func MarkDispatched(ctx context.Context, tx dbos.Querier, orderID int64) (email string, err error) {
	err = tx.QueryRow(ctx, `
		UPDATE orders SET status = $1, dispatched_at_ms = $2, updated_at_ms = $2
		WHERE order_id = $3 AND status = $4
		RETURNING email`,
		shop.StatusDispatched, time.Now().UnixMilli(), orderID, shop.StatusPaid).Scan(&email)
	if IsNoRows(err) {
		return "", fmt.Errorf("dispatching order %d: it is not %s", orderID, shop.StatusPaid)
	}
	if err != nil {
		return "", fmt.Errorf("dispatching order %d: %w", orderID, err)
	}
	return email, nil
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

// orderColumns are what a read of an order returns of it. Its refund is the
// state of the payments it did not keep that most needs telling: one the
// operator must refund, then one being refunded, then one refunded.
const orderColumns = `o.order_id, o.checkout_id, o.payment_id, o.product_id, p.product, o.quantity,
	o.total_cents, o.status, o.cancel_reason, o.payment_deadline_ms, o.dispatch_steps, o.dispatch_interval_ms,
	COALESCE(o.paid_at_ms, 0), o.updated_at_ms, o.email, o.checkout_version,
	COALESCE((SELECT refund_state FROM payments r WHERE r.order_id = o.order_id AND r.refund_state <> ''
		ORDER BY CASE refund_state WHEN 'attention' THEN 0 WHEN 'due' THEN 1 ELSE 2 END LIMIT 1), '')`

const orderFrom = ` FROM orders o JOIN products p ON p.product_id = o.product_id `

func scanOrder(row dbos.Row) (shop.Order, error) {
	var o shop.Order
	err := row.Scan(&o.ID, &o.CheckoutID, &o.PaymentID, &o.ProductID, &o.ProductName, &o.Quantity,
		&o.TotalCents, &o.Status, &o.CancelReason, (*msTime)(&o.PaymentDeadline), &o.DispatchSteps,
		(*msDuration)(&o.DispatchInterval), (*msTime)(&o.PaidAt), (*msTime)(&o.UpdatedAt), &o.Email, &o.CheckoutVersion, &o.Refund)
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
	if IsNoRows(err) {
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
	orders, err := QueryAll(ctx, q, scanOrder, `SELECT `+orderColumns+orderFrom+`ORDER BY o.order_id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing orders: %w", err)
	}
	return orders, nil
}

// OrderLines returns an order's lines, in line order, with their products'
// names.
func OrderLines(ctx context.Context, q dbos.Querier, orderID int64) ([]shop.OrderLine, error) {
	lines, err := QueryAll(ctx, q, func(row dbos.Row) (l shop.OrderLine, err error) {
		return l, row.Scan(&l.ProductID, &l.ProductName, &l.Quantity, &l.UnitPriceCents)
	}, `SELECT l.product_id, p.product, l.quantity, l.unit_price_cents
		FROM order_lines l JOIN products p ON p.product_id = l.product_id
		WHERE l.order_id = $1 ORDER BY l.line_no`, orderID)
	if err != nil {
		return nil, fmt.Errorf("reading the lines of order %d: %w", orderID, err)
	}
	return lines, nil
}

// SettledOrders returns which of the orders ids (at most size) are no
// longer PENDING. The list is padded to size with an id no order has, so
// that the statement's text is the same whatever the number asked.
func SettledOrders(ctx context.Context, q dbos.Querier, ids []int64, size int) ([]int64, error) {
	if len(ids) > size {
		return nil, fmt.Errorf("looking up %d orders, more than the %d asked at once", len(ids), size)
	}
	args := make([]any, size+1)
	marks := make([]string, size)
	args[0] = shop.StatusPending
	for i := range size {
		args[i+1], marks[i] = int64(0), "$"+strconv.Itoa(i+2)
		if i < len(ids) {
			args[i+1] = ids[i]
		}
	}
	settled, err := QueryAll(ctx, q, func(row dbos.Row) (id int64, err error) { return id, row.Scan(&id) },
		`SELECT order_id FROM orders WHERE status <> $1 AND order_id IN (`+strings.Join(marks, ", ")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("looking up %d orders: %w", len(ids), err)
	}
	return settled, nil
}
