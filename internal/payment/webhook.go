package payment

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// SignatureHeader is the HTTP header that carries an event's signature.
const SignatureHeader = "Stripe-Signature"

// DefaultTolerance is how far an event's signature time may be from now,
// either way, as Stripe's libraries default to: enough for clocks a little
// apart and a slow delivery, too little for a captured request to be
// replayed much later. Replays within it are the shop's to drop, by event
// id.
const DefaultTolerance = 5 * time.Minute

// Event types the shop reads. A provider sends others too; Verify returns
// them with only ID, Type and Created set, and the shop acknowledges them.
const (
	EventSucceeded = "payment_intent.succeeded"
	EventFailed    = "payment_intent.payment_failed"
	// EventRefunded is about the intent's charge: its AmountCents is the
	// charge's amount_refunded, all refunded so far, not one refund's.
	EventRefunded = "charge.refunded"
	// A Checkout Session's (package stripe's intents): completed, which
	// is paid when its PaymentStatus says so (a card), or paid or failed
	// later (a bank debit). Each carries the session's PaymentIntent,
	// whose own payment_intent.succeeded comes as well and finds the
	// payment recorded.
	EventSessionCompleted      = "checkout.session.completed"
	EventSessionAsyncSucceeded = "checkout.session.async_payment_succeeded"
	EventSessionAsyncFailed    = "checkout.session.async_payment_failed"
	sessionPaid                = "paid"
)

// Event is what the shop reads of a verified webhook event.
type Event struct {
	ID      string    // "evt_…": the same for every delivery of one event
	Type    string    // one of the Event… constants, or another Stripe type
	Created time.Time // when the provider made the event, not when it sent it
	// IntentID, AmountCents, Currency and CheckoutID are the payment
	// intent's (metadata.checkout_id for CheckoutID) for the types above.
	IntentID    string
	AmountCents int64
	Currency    string
	CheckoutID  string
	// PaymentStatus is a Checkout Session's payment_status: "paid",
	// "unpaid" (a bank debit still on its way) or "no_payment_required".
	PaymentStatus string
}

// Outcome is what the event says of its payment: shop.PaymentPaid,
// shop.PaymentFailed, or "" when it settles nothing (a refund's event, a
// session completed but not paid yet, a type the shop does not read).
func (e Event) Outcome() shop.PaymentStatus {
	switch e.Type {
	case EventSucceeded, EventSessionAsyncSucceeded:
		return shop.PaymentPaid
	case EventSessionCompleted:
		if e.PaymentStatus == sessionPaid {
			return shop.PaymentPaid
		}
	case EventFailed, EventSessionAsyncFailed:
		return shop.PaymentFailed
	}
	return ""
}

// Why Verify refused an event. Each error Verify returns wraps one of these
// and also a shop error, so that the web layer answers with its status:
// shop.ErrDenied (401) when the request cannot be trusted to come from the
// provider, shop.ErrInvalid (400) when it is signed but cannot be read.
var (
	ErrNotSigned       = errors.New("no " + SignatureHeader + " header")
	ErrMalformedHeader = errors.New("malformed " + SignatureHeader + " header")
	ErrBadSignature    = errors.New("no valid signature")
	ErrOutOfTolerance  = errors.New("signature time out of tolerance")
	ErrMalformedEvent  = errors.New("malformed event")
)

// verifyError is an error of Verify: its reason (one of the errors above)
// and the shop error that the client is answered with.
type verifyError struct {
	reason error
	shop   error
}

func (e *verifyError) Error() string   { return e.shop.Error() }
func (e *verifyError) Unwrap() []error { return []error{e.reason, e.shop} }

func refused(kind, reason error, format string, args ...any) error {
	return &verifyError{reason, shop.Errorf(kind, "webhook: %s: %s", reason, fmt.Sprintf(format, args...))}
}

// Verifier checks the signature of webhook events.
type Verifier struct {
	secrets   []string
	tolerance time.Duration
}

// NewVerifier returns a Verifier that takes an event signed with any of
// secrets, at most tolerance away from now (0: DefaultTolerance). Several
// secrets let one be rotated without downtime: configure the new one
// beside the old, switch the provider to it, then drop the old one.
func NewVerifier(secrets []string, tolerance time.Duration) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("webhook verifier: no signing secret")
	}
	for i, s := range secrets {
		if s == "" {
			return nil, fmt.Errorf("webhook verifier: signing secret %d is empty", i+1)
		}
	}
	if tolerance < 0 {
		return nil, fmt.Errorf("webhook verifier: negative tolerance %s", tolerance)
	}
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	return &Verifier{secrets: append([]string(nil), secrets...), tolerance: tolerance}, nil
}

// Verify checks payload, a webhook request's body, against header, its
// Stripe-Signature header, and returns the event it carries. It does not
// know which events were seen before: dropping a replay is the caller's
// job, by Event.ID, in the transaction that applies the event.
func (v *Verifier) Verify(payload []byte, header string) (Event, error) {
	if header == "" {
		return Event{}, refused(shop.ErrDenied, ErrNotSigned, "the request is not signed")
	}
	// stripe-go checks only that the time is not too old, and reads a
	// header without t= as the epoch; a time too far ahead, which a
	// provider's clock would not make, is refused here as well.
	signedAt, err := signatureTime(header)
	if err != nil {
		return Event{}, refused(shop.ErrDenied, ErrMalformedHeader, "%s", err)
	}
	if ahead := time.Until(signedAt); ahead > v.tolerance {
		return Event{}, refused(shop.ErrDenied, ErrOutOfTolerance, "signed %s in the future, more than the tolerance of %s", ahead.Round(time.Second), v.tolerance)
	}
	for _, secret := range v.secrets {
		// The API version is not checked: the shop reads only fields that
		// every version since 2014 has, and a Stripe endpoint may well be
		// pinned to a version older than this library's.
		e, err := webhook.ConstructEventWithOptions(payload, header, secret,
			webhook.ConstructEventOptions{Tolerance: v.tolerance, IgnoreAPIVersionMismatch: true})
		switch {
		case errors.Is(err, webhook.ErrNoValidSignature):
			continue // perhaps another secret's
		case errors.Is(err, webhook.ErrTooOld):
			return Event{}, refused(shop.ErrDenied, ErrOutOfTolerance, "signed %s ago, more than the tolerance of %s", time.Since(signedAt).Round(time.Second), v.tolerance)
		case errors.Is(err, webhook.ErrInvalidHeader), errors.Is(err, webhook.ErrNotSigned):
			return Event{}, refused(shop.ErrDenied, ErrMalformedHeader, "%s", err)
		case err != nil:
			// The signature is good: what is wrong is the JSON.
			return Event{}, refused(shop.ErrInvalid, ErrMalformedEvent, "%s", err)
		}
		return readEvent(e)
	}
	return Event{}, refused(shop.ErrDenied, ErrBadSignature, "no v1 signature matches the payload with any of the %d signing secrets", len(v.secrets))
}

// signatureTime reads the t= of a Stripe-Signature header.
func signatureTime(header string) (time.Time, error) {
	for pair := range strings.SplitSeq(header, ",") {
		if t, ok := strings.CutPrefix(pair, "t="); ok {
			unix, err := strconv.ParseInt(t, 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("t=%q is not a time in Unix seconds", t)
			}
			return time.Unix(unix, 0), nil
		}
	}
	return time.Time{}, errors.New("no t= timestamp")
}

// readEvent reads the shop's Event out of a verified Stripe event.
func readEvent(e stripe.Event) (Event, error) {
	if e.ID == "" || e.Type == "" || e.Data == nil {
		return Event{}, refused(shop.ErrInvalid, ErrMalformedEvent, "an event needs an id, a type and data")
	}
	event := Event{ID: e.ID, Type: string(e.Type), Created: time.Unix(e.Created, 0)}
	switch event.Type {
	case EventSucceeded, EventFailed:
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(e.Data.Raw, &pi); err != nil || pi.ID == "" {
			return Event{}, refused(shop.ErrInvalid, ErrMalformedEvent, "event %s of type %s does not carry a payment intent", e.ID, e.Type)
		}
		event.IntentID, event.AmountCents, event.Currency = pi.ID, pi.Amount, string(pi.Currency)
		event.CheckoutID = pi.Metadata["checkout_id"]
	case EventRefunded:
		var charge stripe.Charge
		if err := json.Unmarshal(e.Data.Raw, &charge); err != nil || charge.PaymentIntent == nil || charge.PaymentIntent.ID == "" {
			return Event{}, refused(shop.ErrInvalid, ErrMalformedEvent, "event %s of type %s does not carry a charge of a payment intent", e.ID, e.Type)
		}
		event.IntentID, event.AmountCents, event.Currency = charge.PaymentIntent.ID, charge.AmountRefunded, string(charge.Currency)
		event.CheckoutID = charge.Metadata["checkout_id"]
	case EventSessionCompleted, EventSessionAsyncSucceeded, EventSessionAsyncFailed:
		var session stripe.CheckoutSession
		if err := json.Unmarshal(e.Data.Raw, &session); err != nil || session.ID == "" {
			return Event{}, refused(shop.ErrInvalid, ErrMalformedEvent, "event %s of type %s does not carry a checkout session", e.ID, e.Type)
		}
		if session.PaymentIntent != nil {
			event.IntentID = session.PaymentIntent.ID
		}
		event.AmountCents, event.Currency = session.AmountTotal, string(session.Currency)
		event.CheckoutID, event.PaymentStatus = session.Metadata["checkout_id"], string(session.PaymentStatus)
	}
	return event, nil
}

// Sign returns the Stripe-Signature header for payload signed with secret
// at time t, as a provider sends it: a provider signs each delivery anew,
// so a redelivery hours after the event still falls within the tolerance.
func Sign(secret string, payload []byte, t time.Time) string {
	return fmt.Sprintf("t=%d,v1=%s", t.Unix(), hex.EncodeToString(webhook.ComputeSignature(t, payload, secret)))
}
