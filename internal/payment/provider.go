// Package payment is the shop's side of a payment provider, in Stripe's
// shape: payment intents created under idempotency keys, refunds, and
// signed webhook events.
package payment

import (
	"context"
	"errors"
	"time"
)

// Provider is a payment provider as the checkout calls it, from DBOS
// steps: a crash re-runs a step, so each call is idempotent on its key.
type Provider interface {
	// CreateIntent creates the payment intent for a checkout, or returns
	// the one already created under req.IdempotencyKey.
	CreateIntent(ctx context.Context, req IntentRequest) (Intent, error)
	// Refund refunds (part of) a succeeded intent, or returns the refund
	// already made under req.IdempotencyKey.
	Refund(ctx context.Context, req RefundRequest) (Refund, error)
}

type IntentRequest struct {
	IdempotencyKey string
	AmountCents    int64
	Currency       string
	CheckoutID     string
	Description    string
	ExpiresAt      time.Time
}

type Intent struct {
	ID     string
	PayURL string // where the customer pays
}

type RefundRequest struct {
	IdempotencyKey, IntentID string
	AmountCents              int64
	Reason                   string
}

type Refund struct {
	ID     string
	Status string // "succeeded", "pending", "failed"
}

// ErrRefused wraps a provider's refusal that retrying will not change.
var ErrRefused = errors.New("refused by the payment provider")

// Event is a provider's webhook event.
type Event struct {
	ID          string
	Type        string
	Created     time.Time
	IntentID    string
	AmountCents int64
	Currency    string
	CheckoutID  string
}

// Event types the shop acts on.
const (
	EventPaymentSucceeded = "payment_intent.succeeded"
	EventPaymentFailed    = "payment_intent.payment_failed"
)

// SignatureHeader carries a webhook event's signature, in Stripe's form.
const SignatureHeader = "Stripe-Signature"
