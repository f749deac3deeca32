package demopay

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/stripe/stripe-go/v82"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/shop"
)

// intent is a row of demopay_intents.
type intent struct {
	ID            string
	AmountCents   int64
	Currency      string
	CheckoutID    string
	Description   string
	Status        string
	RefundedCents int64
	RefuseRefunds bool
	ExpiresAt     time.Time
	Created       time.Time
	Expired       bool // the shop expired it before it was paid or refused (ExpireIntent)
}

const intentColumns = `intent_id, amount_cents, currency, checkout_id, description, status,
	refunded_cents, refuse_refunds, expires_at_ms, created_at_ms, expired_at_ms IS NOT NULL`

// readIntent reads the intent whose column (intent_id or idempotency_key)
// is value.
func readIntent(ctx context.Context, q dbos.Querier, column, value string) (intent, error) {
	var in intent
	var expires, created int64
	err := q.QueryRow(ctx, `SELECT `+intentColumns+` FROM demopay_intents WHERE `+column+` = $1`, value).Scan(
		&in.ID, &in.AmountCents, &in.Currency, &in.CheckoutID, &in.Description, &in.Status,
		&in.RefundedCents, &in.RefuseRefunds, &expires, &created, &in.Expired)
	in.ExpiresAt, in.Created = time.UnixMilli(expires), time.UnixMilli(created)
	return in, err
}

// shownStatus is the intent's status as its page and API show it, with
// StatusExpired for one the shop expired.
func (in intent) shownStatus() string {
	if in.Expired && in.Status == StatusRequiresPayment {
		return StatusExpired
	}
	return in.Status
}

// refund is a row of demopay_refunds.
type refund struct {
	ID          string    `json:"id"`
	IntentID    string    `json:"-"`
	AmountCents int64     `json:"amount_cents"`
	Reason      string    `json:"reason"`
	EventID     string    `json:"event_id"`
	Created     time.Time `json:"created"`
}

const refundColumns = `refund_id, intent_id, amount_cents, reason, event_id, created_at_ms`

func scanRefund(row dbos.Row) (refund, error) {
	var r refund
	var created int64
	err := row.Scan(&r.ID, &r.IntentID, &r.AmountCents, &r.Reason, &r.EventID, &created)
	r.Created = time.UnixMilli(created)
	return r, err
}

func readRefund(ctx context.Context, q dbos.Querier, key string) (refund, error) {
	return scanRefund(q.QueryRow(ctx, `SELECT `+refundColumns+` FROM demopay_refunds WHERE idempotency_key = $1`, key))
}

// event is a row of demopay_events, as GET /demopay/intents/{id} shows it.
type event struct {
	ID        string     `json:"id"`
	Type      string     `json:"type"`
	Created   time.Time  `json:"created"`
	Attempts  int        `json:"attempts"`
	LastError string     `json:"last_error,omitempty"`
	Delivered *time.Time `json:"delivered,omitempty"`
}

func scanEvent(row dbos.Row) (event, error) {
	var e event
	var created int64
	var delivered *int64
	err := row.Scan(&e.ID, &e.Type, &created, &e.Attempts, &e.LastError, &delivered)
	e.Created = time.UnixMilli(created)
	if delivered != nil {
		t := time.UnixMilli(*delivered)
		e.Delivered = &t
	}
	return e, err
}

// insertEvent records event id of type typ about intent in, as it is now,
// with the JSON that every delivery of it sends, in Stripe's format. An
// event is made once, in the transaction that changes what it tells, so
// its id and body never change: the shop dedupes redeliveries by its id.
func insertEvent(ctx context.Context, tx dbos.Querier, id, typ string, in intent) error {
	metadata := map[string]string{"checkout_id": in.CheckoutID}
	var object any
	if typ == payment.EventRefunded {
		// Stripe tells of a refund with the intent's charge, which the
		// demo does not otherwise have: its id is derived from the intent.
		object = wireCharge{ID: "ch_" + strings.TrimPrefix(in.ID, "pi_"), Object: "charge", Amount: in.AmountCents,
			AmountRefunded: in.RefundedCents, Currency: in.Currency, PaymentIntent: in.ID,
			Refunded: in.RefundedCents == in.AmountCents, Metadata: metadata}
	} else {
		received := int64(0)
		if in.Status == StatusSucceeded {
			received = in.AmountCents
		}
		object = wireIntent{ID: in.ID, Object: "payment_intent", Amount: in.AmountCents, AmountReceived: received,
			Currency: in.Currency, Status: in.Status, Description: in.Description, Metadata: metadata}
	}
	now := time.Now()
	payload, err := json.Marshal(wireEvent{ID: id, Object: "event", Type: typ, Created: now.Unix(),
		APIVersion: stripe.APIVersion, Data: wireData{Object: object}})
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO demopay_events (event_id, intent_id, type, payload, created_at_ms)
		VALUES ($1, $2, $3, $4, $5)`, id, in.ID, typ, string(payload), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("recording event %s: %w", id, err)
	}
	return nil
}

// Stripe's JSON, as much of it as the demo's events carry.
type (
	wireEvent struct {
		ID              string   `json:"id"`
		Object          string   `json:"object"`
		Type            string   `json:"type"`
		Created         int64    `json:"created"`
		APIVersion      string   `json:"api_version"`
		Livemode        bool     `json:"livemode"`
		PendingWebhooks int      `json:"pending_webhooks"`
		Data            wireData `json:"data"`
	}
	wireData struct {
		Object any `json:"object"`
	}
	wireIntent struct {
		ID             string            `json:"id"`
		Object         string            `json:"object"`
		Amount         int64             `json:"amount"`
		AmountReceived int64             `json:"amount_received"`
		Currency       string            `json:"currency"`
		Status         string            `json:"status"`
		Description    string            `json:"description"`
		Metadata       map[string]string `json:"metadata"`
	}
	wireCharge struct {
		ID             string            `json:"id"`
		Object         string            `json:"object"`
		Amount         int64             `json:"amount"`
		AmountRefunded int64             `json:"amount_refunded"`
		Currency       string            `json:"currency"`
		PaymentIntent  string            `json:"payment_intent"`
		Refunded       bool              `json:"refunded"`
		Metadata       map[string]string `json:"metadata"`
	}
)

func notFound(id string) error { return shop.Errorf(shop.ErrNotFound, "no payment intent %q", id) }
