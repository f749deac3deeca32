// Package shop holds the widget store's domain: products, orders, their
// statuses and the kinds of error the rest of the program maps to answers.
// It does no I/O.
package shop

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Error kinds. Every error a handler can answer with wraps one of these, so
// the HTTP layer maps an error to a status in one table.
var (
	ErrInvalid  = errors.New("invalid request")
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrDenied   = errors.New("not authenticated")
	ErrLimited  = errors.New("too many requests")
	// ErrUnavailable: something the shop needs (the payment provider) is
	// out of reach for now; nothing was done, and the client may try
	// again after RetryAfter.
	ErrUnavailable = errors.New("unavailable")
)

// Errorf returns an error of the given kind whose message is safe to show a
// client: kind is one of the error kinds above.
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Limitedf returns an error of kind ErrLimited whose message is safe to
// show a client, and after which the client may try again.
func Limitedf(retryAfter time.Duration, format string, args ...any) error {
	return &Error{Kind: ErrLimited, Message: fmt.Sprintf(format, args...), RetryAfter: retryAfter}
}

// Error is an error meant for the client: its Message says what is wrong.
type Error struct {
	Kind    error
	Message string
	// RetryAfter, for ErrLimited and ErrUnavailable, is how long the client should wait
	// before it tries again; 0 when unknown.
	RetryAfter time.Duration
	// Detail is more for the client, beside the message: each key and
	// value goes into the answer's JSON body (an out-of-stock cart names
	// its short lines in "unavailable").
	Detail map[string]any
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Kind }

// Product is an item of the catalog. Money is integer cents throughout.
type Product struct {
	ID          int64
	Name        string
	Description string
	Inventory   int
	PriceCents  int64
}

// OrderStatus is where an order is in its life.
type OrderStatus string

const (
	StatusPending    OrderStatus = "PENDING"    // created, stock reserved, awaiting payment
	StatusPaid       OrderStatus = "PAID"       // paid, being dispatched
	StatusDispatched OrderStatus = "DISPATCHED" // final
	StatusCancelled  OrderStatus = "CANCELLED"  // final: out of stock, refused or unpaid
)

// LegacyCode is the integer the seed's API used for a status; its clients
// still read "order_status".
func (s OrderStatus) LegacyCode() int {
	switch s {
	case StatusDispatched:
		return 1
	case StatusPaid:
		return 2
	case StatusCancelled:
		return -1
	default:
		return 0
	}
}

// Final reports whether nothing more will happen to an order in status s.
func (s OrderStatus) Final() bool { return s == StatusDispatched || s == StatusCancelled }

// Why an order was cancelled.
const (
	ReasonOutOfStock     = "out of stock"
	ReasonPaymentFailed  = "payment refused"
	ReasonPaymentTimeout = "payment not received in time"
	ReasonProviderDown   = "the payment provider could not be reached"
	ReasonCustomer       = "cancelled by the customer"
)

// What became of a payment an order did not keep (payments.refund_state).
const (
	RefundDue       = "due"       // a refund workflow is refunding it
	RefundDone      = "refunded"  // the provider refunded it
	RefundAttention = "attention" // the shop could not refund it: the operator must
)

// PaymentStatus is what the payment provider reports through the webhook.
type PaymentStatus string

const (
	PaymentPaid   PaymentStatus = "paid"
	PaymentFailed PaymentStatus = "failed"
)

// ParsePaymentStatus validates the status segment of a payment webhook.
func ParsePaymentStatus(s string) (PaymentStatus, error) {
	switch PaymentStatus(s) {
	case PaymentPaid, PaymentFailed:
		return PaymentStatus(s), nil
	}
	return "", Errorf(ErrInvalid, "unknown payment status %q: want \"paid\" or \"failed\"", s)
}

// Line is one line of a cart: a product and how many of it.
type Line struct {
	ProductID int64 `json:"product_id"`
	Quantity  int   `json:"quantity"`
}

// Shortage is a line of a cart that the stock could not cover: how many
// were wanted, and how many there were when they were asked for.
type Shortage struct {
	ProductID int64  `json:"product_id"`
	Product   string `json:"product"`
	Wanted    int    `json:"wanted"`
	Available int    `json:"available"`
}

// OrderLine is a line of an order, at the price it was sold at.
type OrderLine struct {
	ProductID      int64
	ProductName    string
	Quantity       int
	UnitPriceCents int64
}

// Order is one checkout's order.
type Order struct {
	ID         int64
	CheckoutID string // the checkout workflow's id: the client's idempotency key
	PaymentID  string
	// ProductID and ProductName are the first line's product, and
	// Quantity the units of all lines: the seed's API shows an order so.
	ProductID   int64
	ProductName string
	Quantity    int
	Lines       []OrderLine // read only where an order is shown whole
	Email       string      // where its receipts go; "" for none
	// Refund is what became of a payment the order did not keep (taken
	// after its checkout gave up): RefundDue, RefundDone or
	// RefundAttention; "" when there was none.
	Refund       string
	TotalCents   int64
	Status       OrderStatus
	CancelReason string
	// PaymentDeadline is when a pending order stops taking its payment.
	PaymentDeadline time.Time
	// The dispatch: DispatchSteps steps DispatchInterval apart, counted from
	// PaidAt (zero until paid).
	DispatchSteps    int
	DispatchInterval time.Duration
	PaidAt           time.Time
	UpdatedAt        time.Time
	// CheckoutVersion is the step sequence of the checkout that placed
	// the order (the checkout's input version): what waits for its
	// payment, and what dispatches it, follow from it.
	CheckoutVersion int `json:",omitempty"`
}

// DispatchDone is when the dispatch of a paid order has taken its last step.
func (o Order) DispatchDone() time.Time {
	return o.PaidAt.Add(time.Duration(o.DispatchSteps) * o.DispatchInterval)
}

// LastUpdate is when the order last changed as of now: its last write, or
// the last dispatch step it has taken since, which is counted, not written.
func (o Order) LastUpdate(now time.Time) time.Time {
	if o.Status != StatusPaid || o.DispatchInterval <= 0 {
		return o.UpdatedAt
	}
	taken := o.DispatchSteps - o.ProgressRemaining(now)
	if step := o.PaidAt.Add(time.Duration(taken) * o.DispatchInterval); step.After(o.UpdatedAt) {
		return step
	}
	return o.UpdatedAt
}

// ProgressRemaining is how many dispatch steps the order has still to go at
// now. A paid order's progress is counted from the durably recorded moment
// it was paid, so it moves one step an interval, never repeats a step and
// never goes back, crash or not; its last step is its checkout marking it
// DISPATCHED, so until then one step remains.
func (o Order) ProgressRemaining(now time.Time) int {
	switch o.Status {
	case StatusDispatched:
		return 0
	case StatusPaid:
		if o.DispatchInterval <= 0 {
			return 1
		}
		done := int(now.Sub(o.PaidAt) / o.DispatchInterval)
		return max(1, o.DispatchSteps-max(done, 0))
	default:
		return o.DispatchSteps
	}
}

// Limits on what a client may ask for.
const (
	MaxQuantity  = 10 // units of one product in one checkout
	MaxKeyLength = 128
	MaxLines     = 20 // lines of one cart
)

// NormalizeLines validates a cart and returns its lines one per product,
// in product order: lines of the same product are added together, and the
// order is the one stock is taken in, so that two carts reserving the same
// products on PostgreSQL lock their rows in the same order and never
// deadlock.
func NormalizeLines(lines []Line) ([]Line, error) {
	if len(lines) == 0 || len(lines) > MaxLines {
		return nil, Errorf(ErrInvalid, "a cart must have 1 to %d lines", MaxLines)
	}
	merged := make([]Line, 0, len(lines))
	for _, l := range lines {
		if l.ProductID <= 0 {
			return nil, Errorf(ErrInvalid, "product_id must be a positive integer")
		}
		if i := slices.IndexFunc(merged, func(m Line) bool { return m.ProductID == l.ProductID }); i >= 0 {
			merged[i].Quantity += l.Quantity
		} else {
			merged = append(merged, l)
		}
	}
	for _, l := range merged {
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			return nil, Errorf(ErrInvalid, "quantity of product %d must be between 1 and %d", l.ProductID, MaxQuantity)
		}
	}
	slices.SortFunc(merged, func(a, b Line) int { return cmp.Compare(a.ProductID, b.ProductID) })
	return merged, nil
}

// Units is how many units the lines buy in all.
func Units(lines []Line) int {
	n := 0
	for _, l := range lines {
		n += l.Quantity
	}
	return n
}

// ValidateKey checks a client's idempotency key. It becomes a workflow id
// and travels in URLs, so it is kept to a short, plain alphabet, and "."
// and "..", which a URL's path takes for directories, are refused.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKeyLength {
		return Errorf(ErrInvalid, "idempotency key must be 1 to %d characters", MaxKeyLength)
	}
	if key == "." || key == ".." {
		return Errorf(ErrInvalid, "idempotency key may not be %q", key)
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return Errorf(ErrInvalid, "idempotency key may hold only letters, digits, '-', '_' and '.'")
		}
	}
	return nil
}

// ValidateQuantity checks how many widgets one checkout may buy.
func ValidateQuantity(n int) error {
	if n < 1 || n > MaxQuantity {
		return Errorf(ErrInvalid, "quantity must be between 1 and %d", MaxQuantity)
	}
	return nil
}

// PaymentIDPrefix and PaymentIDLength describe the payment ids the shop
// issues: the prefix, then crypto/rand.Text(), 26 characters of the base32
// alphabet (A to Z, 2 to 7).
const (
	PaymentIDPrefix = "pay_"
	PaymentIDLength = len(PaymentIDPrefix) + 26
)

// ValidatePaymentID checks that id has the form of a payment id the shop
// issues, so that anything else (NUL bytes, invalid UTF-8, SQL) is refused
// before it reaches a query.
func ValidatePaymentID(id string) error {
	if len(id) != PaymentIDLength || id[:len(PaymentIDPrefix)] != PaymentIDPrefix {
		return Errorf(ErrInvalid, "malformed payment id: want %q and 26 letters A-Z or digits 2-7", PaymentIDPrefix)
	}
	for _, c := range []byte(id[len(PaymentIDPrefix):]) {
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return Errorf(ErrInvalid, "malformed payment id: want %q and 26 letters A-Z or digits 2-7", PaymentIDPrefix)
		}
	}
	return nil
}
