// Package payment is the shop's side of a payment provider, in Stripe's
// shape: a Provider that creates payment intents, expires them and refunds
// them, each call idempotent on a key the caller derives from its
// checkout, and a Verifier for the provider's signed webhook events. The
// demo provider (package demopay) and Stripe (package stripe) are its two.
//
// The shop calls a Provider from DBOS steps, and a step that crashed is run
// again: a second call under the same idempotency key must find what the
// first one did, never do it twice. That is how Stripe's Idempotency-Key
// works too, so a Stripe client and the demo provider (package demopay) fit
// the same interface.
//
// Webhook events are Stripe's: a JSON event signed in the Stripe-Signature
// header, "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>">".
// Stripe's scheme rather than Standard Webhooks' because a well-kept
// library verifies it: stripe-go's webhook package, released by Stripe with
// its API and served by this project's module proxy, while no Go module of
// Standard Webhooks (nor of Svix, whose scheme it is) is served here, so we
// would write and maintain the verification ourselves. The two schemes are
// equally strong (an HMAC-SHA256 over a timestamp and the body, several
// signatures in one header for rotation); with Stripe's, the shop could take
// a real Stripe account's events by configuring its endpoint secret,
// nothing else.
package payment

import (
	"context"
	"errors"
	"time"
)

// ErrRefused is wrapped by every error of a Provider that retrying the same
// request will not change: an invalid request, an idempotency key reused
// for another request, an intent that cannot be refunded (not paid, or the
// amount is more than what is left of it). Any other error is transient (the
// provider out of reach, a timeout, a 5xx), and the call may be retried
// under the same key. The shop puts a refused refund before the operator
// rather than retrying it for ever.
var ErrRefused = errors.New("refused by the payment provider")

// Provider is a payment provider as the shop's checkout calls it.
type Provider interface {
	// CreateIntent creates the payment intent for a checkout, or returns
	// the one already created under req.IdempotencyKey.
	CreateIntent(ctx context.Context, req IntentRequest) (Intent, error)
	// Refund refunds (part of) a succeeded intent, or returns the refund
	// already made under req.IdempotencyKey.
	Refund(ctx context.Context, req RefundRequest) (Refund, error)
	// ExpireIntent makes an intent that is not paid unpayable: the shop
	// stopped waiting for it (its deadline passed, the payment failed, the
	// customer cancelled). Expiring an intent expired before is no error.
	// An intent paid already cannot be expired: that is refused
	// (ErrRefused), and its payment, which the shop does not keep, is
	// refunded when its event comes.
	ExpireIntent(ctx context.Context, req ExpireRequest) error
}

// ExpireRequest asks for an intent to be expired.
type ExpireRequest struct {
	IdempotencyKey string // derive it from the checkout
	IntentID       string
}

// IntentRequest asks for a payment intent.
type IntentRequest struct {
	// IdempotencyKey names the intent: derive it from the checkout, so
	// that a step run again finds the intent its first run created.
	IdempotencyKey string
	AmountCents    int64
	Currency       string // ISO 4217, lower case as Stripe writes it: "usd"
	// CheckoutID goes into the intent's metadata, and so comes back in
	// every event about it (Event.CheckoutID).
	CheckoutID  string
	Description string // what the customer sees on the provider's page
	// ExpiresAt is the shop's payment deadline, shown to the customer.
	// A provider does not enforce it by itself: the shop expires the
	// intent when it stops waiting (ExpireIntent), and refunds a payment
	// that got in before that.
	ExpiresAt time.Time
}

// Intent is a created payment intent.
type Intent struct {
	ID     string // "pi_…" or, with Stripe, the Checkout Session's "cs_…"
	PayURL string // where the customer pays
}

// RefundRequest asks for a refund of (part of) a succeeded intent.
type RefundRequest struct {
	IdempotencyKey string // names the refund: derive it from what is refunded
	// IntentID is the payment's reference, as its event gave it
	// (Event.IntentID): a PaymentIntent's "pi_…".
	IntentID    string
	AmountCents int64
	Reason      string
}

// Refund is a refund the provider made or is making.
type Refund struct {
	ID     string // "re_…"
	Status string // RefundSucceeded, RefundPending or RefundFailed
}

// Refund statuses, as Stripe names them. A pending refund may still fail
// later; the provider then sends an event.
const (
	RefundSucceeded = "succeeded"
	RefundPending   = "pending"
	RefundFailed    = "failed"
)
