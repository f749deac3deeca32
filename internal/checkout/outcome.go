package checkout

import (
	"slices"
	"time"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/shop"
)

// An outcome is how placing a checkout's order came out: placed,
// outOfStock, limited, screened or failed. The checkout hands it to the
// request waiting for it (placementWaiters), or the request reads it from
// the checkout's records (recordedOutcome), and answers the customer by
// its kind.
type outcome interface {
	result() Result // the checkout's result when it ends there
}

// placed: the order is placed and awaits its payment; or it is the key's
// order, settled already, placed by an earlier checkout of the key whose
// records are gone (retention).
type placed struct {
	order  orderOutput
	intent payment.Intent // where it is paid, when through the provider
}

// outOfStock: the order is cancelled, the stock short for these lines.
type outOfStock struct {
	order       orderOutput
	unavailable []shop.Shortage
}

// limited: nothing was placed, since the client held held units awaiting
// payment and may hold limit; the first of them reaches its payment
// deadline at until.
type limited struct {
	held, limit int
	until       time.Time
}

// screened: nothing was placed, the screening refused the client until
// until (see screening).
type screened struct{ until time.Time }

// failed: the order could not be placed, or (reason
// shop.ReasonProviderDown) it was cancelled for want of a payment intent.
type failed struct {
	order  orderOutput // zero when none was placed
	reason string
}

func (p placed) result() Result     { return orderResult(p.order.Order) }
func (o outOfStock) result() Result { return orderResult(o.order.Order) }
func (limited) result() Result      { return Result{} }
func (screened) result() Result     { return Result{} }
func (f failed) result() Result     { return orderResult(f.order.Order) }

func orderResult(o shop.Order) Result { return Result{OrderID: o.ID, Status: o.Status} }

// placement is an outcome as the checkout hands it off, with what was
// asked for, so that a key reused for another purchase is told apart
// without reading the order again. Its flags are the format of the event
// that the checkouts before version5 set (EventPlaced), which the
// instances of widgetstore-4 read during a rolling upgrade: publication
// and outcome are the only readers of them.
type placement struct {
	PaymentID string // "" when the order could not be placed
	// What was asked for: the seed's one line, or the cart's Lines.
	ProductID   int64
	Quantity    int
	Lines       []shop.Line `json:",omitempty"`
	ViaProvider bool        `json:",omitempty"`
	OutOfStock  bool
	Unavailable []shop.Shortage `json:",omitempty"`
	Failed      string          // why the order could not be written, for the log
	Limited     bool            `json:",omitempty"`
	Held, Limit int             `json:",omitempty"`
	HeldUntil   time.Time       `json:",omitzero"`
	// The order placed, and where its customer pays it when it is paid
	// through the provider.
	OrderID         int64     `json:",omitempty"`
	TotalCents      int64     `json:",omitempty"`
	PaymentDeadline time.Time `json:",omitzero"`
	IntentID        string    `json:",omitempty"`
	PayURL          string    `json:",omitempty"`
	Screened        bool      `json:",omitempty"`
}

// publication is the placement of in's checkout that came out as o: what
// it hands off, and what the checkouts before version5 set as their event.
func publication(in input, o outcome) placement {
	p := placement{ProductID: in.ProductID, Quantity: in.Quantity, Lines: in.Lines, ViaProvider: in.ViaProvider}
	switch o := o.(type) {
	case placed:
		p.OrderID, p.PaymentID, p.TotalCents, p.PaymentDeadline = o.order.ID, o.order.PaymentID, o.order.TotalCents, o.order.PaymentDeadline
		p.IntentID, p.PayURL = o.intent.ID, o.intent.PayURL
	case outOfStock:
		p.OrderID, p.TotalCents, p.PaymentDeadline = o.order.ID, o.order.TotalCents, o.order.PaymentDeadline
		p.OutOfStock, p.Unavailable = true, o.unavailable
	case limited:
		p.Limited, p.Held, p.Limit, p.HeldUntil = true, o.held, o.limit, o.until
	case screened:
		// Limited and HeldUntil as well: a widgetstore-2 instance asked
		// for this key during a rolling upgrade knows only those, and
		// answers 429 with the right Retry-After.
		p.Screened, p.Limited, p.HeldUntil = true, true, o.until
	case failed:
		p.OrderID, p.TotalCents, p.PaymentDeadline = o.order.ID, o.order.TotalCents, o.order.PaymentDeadline
		p.Failed = o.reason
	}
	return p
}

// asked says whether the placement's checkout was asked for what in asks.
func (p placement) asked(in input) bool {
	was := input{ProductID: p.ProductID, Quantity: p.Quantity, Lines: p.Lines}
	return slices.Equal(was.lines(), in.lines()) && p.ViaProvider == in.ViaProvider
}

// outcome is the outcome the placement publishes.
func (p placement) outcome() outcome {
	order := orderOutput{Order: shop.Order{ID: p.OrderID, PaymentID: p.PaymentID, TotalCents: p.TotalCents, PaymentDeadline: p.PaymentDeadline}}
	switch {
	case p.Failed != "":
		return failed{order: order, reason: p.Failed}
	case p.Screened:
		return screened{until: p.HeldUntil}
	case p.Limited:
		return limited{held: p.Held, limit: p.Limit, until: p.HeldUntil}
	case p.OutOfStock:
		short := p.Unavailable
		if len(short) == 0 { // published by a build that did not list them
			was := input{ProductID: p.ProductID, Quantity: p.Quantity, Lines: p.Lines}
			for _, l := range was.lines() {
				short = append(short, shop.Shortage{ProductID: l.ProductID, Wanted: l.Quantity, Available: -1})
			}
		}
		return outOfStock{order: order, unavailable: short}
	}
	return placed{order: order, intent: payment.Intent{ID: p.IntentID, PayURL: p.PayURL}}
}
