package web

import (
	"io"
	"net/http"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/shop"
)

// The cart API: a checkout of several lines under one idempotency key,
// paid through the payment provider, and the order found again by its key
// or its payment id. The key is the customer's secret: whoever holds it
// may see the order, and no one else is shown it.

type lineJSON struct {
	ProductID      int64  `json:"product_id"`
	Product        string `json:"product"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// customerOrderJSON is an order as its customer sees it.
type customerOrderJSON struct {
	CheckoutKey       string           `json:"checkout_key"`
	OrderID           int64            `json:"order_id"`
	Status            shop.OrderStatus `json:"status"`
	CancelReason      string           `json:"cancel_reason,omitempty"`
	Refund            string           `json:"refund,omitempty"` // "due", "refunded" or "attention": a payment the order did not keep
	Lines             []lineJSON       `json:"lines"`
	TotalCents        int64            `json:"total_cents"`
	PaymentID         string           `json:"payment_id"`
	PayURL            string           `json:"pay_url,omitempty"`
	PaymentDeadline   time.Time        `json:"payment_deadline"`
	DispatchSteps     int              `json:"dispatch_steps"`
	ProgressRemaining int              `json:"progress_remaining"`
	UpdatedAt         time.Time        `json:"last_update_time"`
}

func toCustomerOrderJSON(f checkout.Found) customerOrderJSON {
	now := time.Now()
	lines := make([]lineJSON, len(f.Lines))
	for i, l := range f.Lines {
		lines[i] = lineJSON{ProductID: l.ProductID, Product: l.ProductName, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents}
	}
	return customerOrderJSON{CheckoutKey: f.CheckoutID, OrderID: f.ID, Status: f.Status, CancelReason: f.CancelReason,
		Refund: f.Refund, Lines: lines, TotalCents: f.TotalCents, PaymentID: f.PaymentID, PayURL: f.PayURL,
		PaymentDeadline: f.PaymentDeadline, DispatchSteps: f.DispatchSteps, ProgressRemaining: f.ProgressRemaining(now),
		UpdatedAt: f.LastUpdate(now)}
}

// handleCartCheckout handles "POST /api/checkouts/{key}" with
// {"lines": [{"product_id", "quantity"}...], "email"}: the checkout of a
// cart, all lines or none, paid through the payment provider. The same key
// answers the same order. Out of stock, it answers 409 with the lines that
// could not be had in "unavailable".
func handleCartCheckout(co *checkout.Checkout, guard *checkoutGuard) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Lines []shop.Line `json:"lines"`
			Email string      `json:"email"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, r, err)
			return
		}
		key := r.PathValue("key")
		lines, err := shop.NormalizeLines(body.Lines)
		if err == nil {
			err = shop.ValidateKey(key)
		}
		if err == nil {
			err = validateEmail(body.Email)
		}
		if err != nil { // malformed requests are answered before they count
			writeError(w, r, err)
			return
		}
		client, err := guard.admit(r, key)
		if err != nil {
			writeError(w, r, err)
			return
		}
		noteWorkflow(r, key)
		placed, err := co.Place(r.Context(), key, checkout.Request{Lines: lines, Email: body.Email, ViaProvider: true, Client: client})
		if err != nil {
			writeError(w, r, err)
			return
		}
		found, err := co.FindPlaced(r.Context(), key, placed)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, toCustomerOrderJSON(found))
	})
}

// handleFindCheckout handles "GET /api/checkouts/{key}": the order of a
// checkout, whole.
func handleFindCheckout(co *checkout.Checkout) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		found, err := co.FindByKey(r.Context(), r.PathValue("key"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, toCustomerOrderJSON(found))
	})
}

// handleCancelCheckout handles "POST /api/checkouts/{key}/cancel": the
// customer who holds the key cancels their order while it awaits payment,
// and is answered the order, cancelled, its stock back on sale. Cancelling
// again answers the same; an order paid answers 409.
func handleCancelCheckout(co *checkout.Checkout) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		found, err := co.CancelByKey(r.Context(), r.PathValue("key"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, toCustomerOrderJSON(found))
	})
}

// handleFindPayment handles "GET /api/payments/{payment_id}": the order a
// payment id was issued for, whole.
func handleFindPayment(co *checkout.Checkout) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		found, err := co.FindByPaymentID(r.Context(), r.PathValue("payment_id"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, toCustomerOrderJSON(found))
	})
}

// EventVerifier checks a payment provider's webhook event: its signature
// (the header's value) over the payload, and its age. payment.Verifier is
// one.
type EventVerifier interface {
	Verify(payload []byte, signature string) (payment.Event, error)
}

// handlePaymentEvents handles "POST /api/payment_events": the payment
// provider's signed webhook events, in Stripe's form. An event is
// answered 200 once applied, or when it was applied before; a forged,
// expired or malformed one is refused and changes nothing, so the
// provider's redelivery of a genuine event is what a crash of the shop
// needs.
func handlePaymentEvents(co *checkout.Checkout, verifier EventVerifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if verifier == nil {
			writeError(w, r, shop.Errorf(shop.ErrNotFound, "the shop takes no payment provider's events"))
			return
		}
		payload, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
		if err != nil {
			writeError(w, r, shop.Errorf(shop.ErrInvalid, "reading the event: %s", err.Error()))
			return
		}
		event, err := verifier.Verify(payload, r.Header.Get(payment.SignatureHeader))
		if err != nil {
			writeError(w, r, err)
			return
		}
		noteWorkflow(r, event.CheckoutID)
		s, err := co.HandleEvent(r.Context(), event)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, map[string]any{"received": event.ID, "replayed": s.Replayed, "refund_due": s.RefundDue})
	})
}

// validateEmail checks a checkout's optional email address for receipts.
func validateEmail(email string) error {
	if email == "" {
		return nil
	}
	_, err := receipt.ValidateAddress(email)
	return err
}
