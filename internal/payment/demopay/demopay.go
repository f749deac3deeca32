// Package demopay is the shop's built-in demo payment provider, a provider
// like any other: the shop reaches it only through payment.Provider and the
// Stripe-signed webhook events it POSTs to the shop, so the shop's code that
// takes its money is the code that would take Stripe's. The customer pays
// on its page (GET /demopay/pay/{intent}), where Pay and Refuse stand in for
// a card form.
//
// Its state is in its own tables of the shop's database (migration
// 0008_demopay.sql), and paying is a durable DBOS workflow, so a crash of
// the process neither loses a payment nor its event: the workflow resumes
// at the next launch and delivers the event until the shop acknowledges it,
// with backoff, as real providers do.
package demopay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/store"
)

// Durable names: workflows in flight are found again by them after a
// restart, so they never change, whatever the Go functions are called.
const (
	WorkflowPay     = "demopay.Pay"     // settles an intent and delivers its event
	WorkflowDeliver = "demopay.Deliver" // delivers one event (a refund's)
)

// Config configures the demo provider.
type Config struct {
	// WebhookURL is where events are POSTed: the shop's webhook endpoint.
	WebhookURL string
	// SigningSecret signs the events: one of the secrets the shop's
	// payment.Verifier takes (its first, the current one).
	SigningSecret string
	// PublicURL is the shop's address as a customer's browser reaches it,
	// such as "https://shop.example"; "" makes PayURL a path on the same
	// host, "/demopay/pay/pi_…".
	PublicURL string
	// Retry paces the redelivery of an unacknowledged event; zero:
	// DefaultRetry.
	Retry Retry
	// HTTPClient delivers events; nil: one whose requests time out after
	// 10 s, so that a shop that hangs counts as a failed attempt.
	HTTPClient *http.Client
	Logger     *slog.Logger // nil: slog.Default()
}

// Retry is the backoff of a delivery: the first wait, doubled after each
// failed attempt up to Max, until the event has waited GiveUpAfter in all.
type Retry struct {
	First, Max, GiveUpAfter time.Duration
}

// DefaultRetry waits 1 s, 2 s, 4 s … then a minute between attempts, for 3
// days, as Stripe redelivers for 3 days: a shop down over a weekend still
// gets its events.
var DefaultRetry = Retry{First: time.Second, Max: time.Minute, GiveUpAfter: 72 * time.Hour}

// Provider is the demo provider: a payment.Provider, an http.Handler for
// its pages and API (Handler), and the workflows that pay and deliver
// (Register).
//
// CreateIntent and Refund each run a transaction of their own on the
// shop's database handle: call them from dbos.RunAsStep, never inside
// dbos.RunAsTransaction or store.DB.InTx, whose transaction holds, on
// SQLite, the handle's one connection that they would wait for.
type Provider struct {
	db     *store.DB
	cfg    Config
	logger *slog.Logger
	// dbosCtx is what workflows are started from, kept by Register. Never a
	// request's context: a workflow started from it would be cancelled,
	// durably, when the request ends.
	dbosCtx dbos.Context
	ds      *dbos.DataSource
}

var _ payment.Provider = (*Provider)(nil)

// New returns the demo provider on db, which must be migrated. Call
// Register before DBOS launches, and before serving Handler.
func New(db *store.DB, cfg Config) (*Provider, error) {
	if u, err := url.Parse(cfg.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("demopay: webhook URL %q is not an http(s) URL", cfg.WebhookURL)
	}
	if cfg.SigningSecret == "" {
		return nil, errors.New("demopay: no signing secret")
	}
	if cfg.Retry == (Retry{}) {
		cfg.Retry = DefaultRetry
	}
	if r := cfg.Retry; r.First <= 0 || r.Max < r.First || r.GiveUpAfter < 0 {
		return nil, fmt.Errorf("demopay: invalid retry %+v", r)
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Provider{db: db, cfg: cfg, logger: logger.With(slog.String("component", "demopay"))}, nil
}

// Register registers the provider's workflows on ctx, which has not
// launched yet (checkout.LaunchConfig.Register), and keeps ctx to start
// them: DBOS recovers only the workflows registered before it launches.
func (p *Provider) Register(ctx dbos.Context) error {
	var err error
	// A data source of its own name, for its steps' transactions: on the
	// handle DBOS shares, a write and the step's checkpoint commit as one.
	if p.db.SQLite != nil {
		p.ds, err = dbos.NewDataSource(ctx, p.db.SQLite, dbos.WithDataSourceName("demopay"))
	} else {
		p.ds, err = dbos.NewDataSource(ctx, p.db.Postgres, dbos.WithDataSourceName("demopay"))
	}
	if err != nil {
		return fmt.Errorf("demopay: creating the DBOS data source: %w", err)
	}
	dbos.RegisterWorkflow(ctx, p.pay, dbos.WithWorkflowName(WorkflowPay))
	dbos.RegisterWorkflow(ctx, p.deliverEvent, dbos.WithWorkflowName(WorkflowDeliver))
	p.dbosCtx = ctx
	return nil
}

// Intent statuses, as Stripe names them (it says requires_payment_method).
// StatusExpired is shown, not stored: an intent the shop expired
// (ExpireIntent) stays requires_payment with its expired_at_ms set.
const (
	StatusRequiresPayment = "requires_payment"
	StatusSucceeded       = "succeeded"
	StatusFailed          = "failed"
	StatusExpired         = "expired"
)

// newID makes a provider's id: the prefix Stripe gives that kind of object
// and 26 random base32 characters. Ids are random, not derived from the
// idempotency key, since the key is the client's.
func newID(prefix string) string { return prefix + rand.Text() }

var currencyCode = regexp.MustCompile(`^[a-z]{3}$`)

// refusedf returns an error that wraps payment.ErrRefused: the request
// will not succeed however often it is made.
func refusedf(format string, args ...any) error {
	return fmt.Errorf("demopay: %s: %w", fmt.Sprintf(format, args...), payment.ErrRefused)
}

// CreateIntent creates the intent of a checkout, or returns the one created
// under req.IdempotencyKey: the INSERT does nothing on a key that exists,
// and what the key holds is read back. The same key with another amount,
// currency or checkout is refused, as Stripe refuses a key reused with
// other parameters.
func (p *Provider) CreateIntent(ctx context.Context, req payment.IntentRequest) (payment.Intent, error) {
	switch {
	case req.IdempotencyKey == "":
		return payment.Intent{}, refusedf("an intent needs an idempotency key")
	case req.AmountCents <= 0:
		return payment.Intent{}, refusedf("amount %d cents is not positive", req.AmountCents)
	case !currencyCode.MatchString(req.Currency):
		return payment.Intent{}, refusedf("currency %q is not a lower-case ISO 4217 code", req.Currency)
	case req.CheckoutID == "":
		return payment.Intent{}, refusedf("an intent needs its checkout id")
	case req.ExpiresAt.IsZero():
		return payment.Intent{}, refusedf("an intent needs its checkout's deadline")
	}
	var in intent
	err := p.db.InTx(ctx, func(tx dbos.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO demopay_intents
			(intent_id, idempotency_key, amount_cents, currency, checkout_id, description, expires_at_ms, created_at_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING`,
			newID("pi_"), req.IdempotencyKey, req.AmountCents, req.Currency, req.CheckoutID, req.Description,
			req.ExpiresAt.UnixMilli(), time.Now().UnixMilli())
		if err != nil {
			return err
		}
		in, err = readIntent(ctx, tx, "idempotency_key", req.IdempotencyKey)
		return err
	})
	if err != nil {
		return payment.Intent{}, fmt.Errorf("demopay: creating the intent of checkout %s: %w", req.CheckoutID, err)
	}
	if in.AmountCents != req.AmountCents || in.Currency != req.Currency || in.CheckoutID != req.CheckoutID {
		return payment.Intent{}, refusedf("idempotency key %q was used for intent %s of %d %s for checkout %s",
			req.IdempotencyKey, in.ID, in.AmountCents, in.Currency, in.CheckoutID)
	}
	return payment.Intent{ID: in.ID, PayURL: p.PayURL(in.ID)}, nil
}

// PayURL is where the customer pays intent id.
func (p *Provider) PayURL(id string) string {
	return p.cfg.PublicURL + "/demopay/pay/" + url.PathEscape(id)
}

// Refund refunds part or all of a succeeded intent, or returns the refund
// made under req.IdempotencyKey. Demo refunds succeed at once, and each
// sends a charge.refunded event. Refused (payment.ErrRefused): an intent
// that is unknown or not paid, an amount beyond what is left of it, an
// intent whose refunds the operator set to be refused (SetRefuseRefunds),
// and a key reused for another refund.
//
// A refusal records nothing, so the same key asked again after the cause
// is gone (the operator turned the switch off) refunds. Stripe, unlike
// this, answers a key with its first answer for 24 hours; a shop retrying
// a refusal on Stripe takes a new key, which is safe because a refused
// refund refunded nothing.
func (p *Provider) Refund(ctx context.Context, req payment.RefundRequest) (payment.Refund, error) {
	switch {
	case req.IdempotencyKey == "":
		return payment.Refund{}, refusedf("a refund needs an idempotency key")
	case req.AmountCents <= 0:
		return payment.Refund{}, refusedf("refund amount %d cents is not positive", req.AmountCents)
	}
	var r refund
	err := p.db.InTx(ctx, func(tx dbos.Tx) error {
		in, err := readIntent(ctx, tx, "intent_id", req.IntentID)
		if store.IsNoRows(err) {
			return refusedf("no intent %q", req.IntentID)
		} else if err != nil {
			return err
		}
		eventID := newID("evt_")
		res, err := tx.Exec(ctx, `INSERT INTO demopay_refunds
			(refund_id, idempotency_key, intent_id, amount_cents, reason, event_id, created_at_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING`,
			newID("re_"), req.IdempotencyKey, req.IntentID, req.AmountCents, req.Reason, eventID, time.Now().UnixMilli())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			// A new refund: checked now, and rolled back with the
			// transaction if refused.
			if err := p.takeRefund(ctx, tx, in, req.AmountCents, eventID); err != nil {
				return err
			}
		}
		r, err = readRefund(ctx, tx, req.IdempotencyKey)
		return err
	})
	if errors.Is(err, payment.ErrRefused) {
		return payment.Refund{}, err
	} else if err != nil {
		return payment.Refund{}, fmt.Errorf("demopay: refunding intent %s: %w", req.IntentID, err)
	}
	if r.IntentID != req.IntentID || r.AmountCents != req.AmountCents {
		return payment.Refund{}, refusedf("idempotency key %q was used for refund %s of %d cents of intent %s",
			req.IdempotencyKey, r.ID, r.AmountCents, r.IntentID)
	}
	// Started after the commit, and again by every call that finds the
	// refund: the shop calls Refund from a step that runs again after a
	// crash, so a crash between the commit and here still delivers.
	if err := p.startDelivery(r.EventID); err != nil {
		return payment.Refund{}, err
	}
	return payment.Refund{ID: r.ID, Status: payment.RefundSucceeded}, nil
}

// ExpireIntent expires an intent that is neither paid nor refused, so that
// its page takes no payment any more, as Stripe expires a Checkout
// Session. An intent expired before is no error: expiring is idempotent by
// itself, and the key is not recorded. One paid or refused is refused
// (payment.ErrRefused).
func (p *Provider) ExpireIntent(ctx context.Context, req payment.ExpireRequest) error {
	res, err := p.db.Q().Exec(ctx, `UPDATE demopay_intents SET expired_at_ms = $2
		WHERE intent_id = $1 AND status = $3 AND expired_at_ms IS NULL`, req.IntentID, time.Now().UnixMilli(), StatusRequiresPayment)
	if err != nil {
		return fmt.Errorf("demopay: expiring intent %s: %w", req.IntentID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	in, err := readIntent(ctx, p.db.Q(), "intent_id", req.IntentID)
	switch {
	case store.IsNoRows(err):
		return refusedf("no intent %q", req.IntentID)
	case err != nil:
		return fmt.Errorf("demopay: reading intent %s: %w", req.IntentID, err)
	case in.shownStatus() == StatusExpired:
		return nil
	}
	return refusedf("intent %s is %s: it cannot be expired", in.ID, in.Status)
}

// takeRefund takes amount off intent in, if it is paid, its refunds are
// not refused, and that much of it is left, and records its event.
func (p *Provider) takeRefund(ctx context.Context, tx dbos.Tx, in intent, amount int64, eventID string) error {
	switch {
	case in.Status != StatusSucceeded:
		return refusedf("intent %s is %s, not paid: nothing to refund", in.ID, in.Status)
	case in.RefuseRefunds:
		return refusedf("refunds of intent %s are refused (the demo's switch)", in.ID)
	}
	// One conditional UPDATE checks the bound and takes the amount: on
	// PostgreSQL it waits for a concurrent refund of the intent and then
	// sees its amount.
	var refunded int64
	err := tx.QueryRow(ctx, `UPDATE demopay_intents SET refunded_cents = refunded_cents + $2
		WHERE intent_id = $1 AND refunded_cents + $2 <= amount_cents RETURNING refunded_cents`, in.ID, amount).Scan(&refunded)
	if store.IsNoRows(err) {
		return refusedf("refund of %d cents exceeds what is left of intent %s (%d of %d cents refunded)", amount, in.ID, in.RefundedCents, in.AmountCents)
	} else if err != nil {
		return err
	}
	in.RefundedCents = refunded
	return insertEvent(ctx, tx, eventID, payment.EventRefunded, in)
}

// SetRefuseRefunds sets whether refunds of intent id are refused, the
// demo's way to show what the shop does when its provider refuses one:
// tests call it, and so does the operator through
// POST /demopay/intents/{id}/refuse-refunds. An unknown intent is an
// error of kind shop.ErrNotFound.
func (p *Provider) SetRefuseRefunds(ctx context.Context, id string, refuse bool) error {
	res, err := p.db.Q().Exec(ctx, `UPDATE demopay_intents SET refuse_refunds = $2 WHERE intent_id = $1`, id, refuse)
	if err != nil {
		return fmt.Errorf("demopay: setting refuse_refunds of intent %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return notFound(id)
	}
	return nil
}
