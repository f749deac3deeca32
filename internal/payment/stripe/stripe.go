// Package stripe is a payment.Provider on Stripe's API, through
// stripe-go's client: a checkout's intent is a Stripe Checkout Session,
// paid on Stripe's hosted page, expired by the shop when it stops waiting,
// and refunded through its PaymentIntent. docs/payments-stripe.md says why
// Checkout Sessions and how to run it.
//
// Every call that creates something carries an idempotency key the shop
// derives from the checkout or the payment, so that a step that crashed
// after Stripe answered, and runs again, finds what the first run made:
// Stripe answers a key it has seen with its first answer for 24 hours.
package stripe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	stripeapi "github.com/stripe/stripe-go/v82"

	"github.com/widgetstore/widgetstore/internal/payment"
)

// Config configures the provider.
type Config struct {
	// SecretKey is the account's API key: a secret key "sk_test_…" or
	// "sk_live_…", or a restricted key "rk_…" allowed to write Checkout
	// Sessions and Refunds.
	SecretKey string
	// APIURL is the API's base, such as stripe-mock's
	// "http://127.0.0.1:12111"; "" for Stripe's.
	APIURL string
	// PublicURL is the shop's address as a customer's browser reaches it,
	// such as "https://shop.example": Stripe's page sends the customer back
	// to the order there.
	PublicURL string
	// HTTPClient makes the API calls; nil: one whose requests time out
	// after 20 s.
	HTTPClient *http.Client
	Logger     *slog.Logger // nil: slog.Default()
}

// Provider is the Stripe provider.
type Provider struct {
	client    *stripeapi.Client
	publicURL string
}

var _ payment.Provider = (*Provider)(nil)

// keyPattern is what a Stripe API key looks like: a kind, a mode, and the
// key itself. A publishable key ("pk_…") cannot create anything, and a
// webhook secret ("whsec_…") is no API key: both are refused by New, so a
// key pasted into the wrong variable stops the shop at its start rather
// than at its first customer.
var keyPattern = regexp.MustCompile(`^(sk|rk)_(test|live)_[0-9A-Za-z]{8,}$`)

// sessionMinLife is the least a Checkout Session may live: Stripe refuses
// an expires_at less than 30 minutes after the session's creation.
const sessionMinLife = 30 * time.Minute

// New returns the provider for cfg; a malformed key or URL is an error
// that says what is wrong with it (never the key itself).
func New(cfg Config) (*Provider, error) {
	if err := CheckKey(cfg.SecretKey); err != nil {
		return nil, err
	}
	public, err := url.Parse(cfg.PublicURL)
	if err != nil || (public.Scheme != "http" && public.Scheme != "https") || public.Host == "" {
		return nil, fmt.Errorf("stripe: the shop's public URL %q is not an absolute http(s) URL: Stripe's page sends the customer back there", cfg.PublicURL)
	}
	backend := &stripeapi.BackendConfig{
		HTTPClient: cfg.HTTPClient,
		// The shop's steps retry, under the same idempotency key; stripe-go
		// retrying too would only make a customer wait longer for the 503.
		MaxNetworkRetries: stripeapi.Int64(1),
	}
	if backend.HTTPClient == nil {
		backend.HTTPClient = &http.Client{Timeout: 20 * time.Second}
	}
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("stripe: the API URL %q is not an http(s) URL", cfg.APIURL)
		}
		backend.URL = stripeapi.String(strings.TrimSuffix(cfg.APIURL, "/"))
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	backend.LeveledLogger = leveledLogger{logger.With(slog.String("component", "stripe"))}
	return &Provider{
		client:    stripeapi.NewClient(cfg.SecretKey, stripeapi.WithBackends(stripeapi.NewBackendsWithConfig(backend))),
		publicURL: strings.TrimSuffix(cfg.PublicURL, "/"),
	}, nil
}

// CheckKey says what is wrong with a secret key that does not look like
// one, without showing it; nil for a key of the right form.
func CheckKey(key string) error {
	if !keyPattern.MatchString(key) {
		return fmt.Errorf("stripe: the secret key is not a Stripe secret or restricted API key (sk_test_…, sk_live_…, rk_test_… or rk_live_…): %s", describeKey(key))
	}
	return nil
}

// CheckWebhookSecret says what is wrong with an endpoint's signing secret
// that does not look like one ("whsec_…"), without showing it.
func CheckWebhookSecret(secret string) error {
	if !strings.HasPrefix(secret, "whsec_") || len(secret) < len("whsec_")+8 || strings.TrimSpace(secret) != secret {
		return fmt.Errorf("stripe: the webhook signing secret is not an endpoint's secret (whsec_…, from the Dashboard or stripe listen): %s", describeKey(secret))
	}
	return nil
}

// describeKey says what a malformed key looks like without showing it.
func describeKey(key string) string {
	switch {
	case key == "":
		return "it is empty"
	case strings.HasPrefix(key, "pk_"):
		return "it is a publishable key, which cannot create payments"
	case strings.HasPrefix(key, "whsec_"):
		return "it is a webhook signing secret: set it as STRIPE_WEBHOOK_SECRET"
	case strings.TrimSpace(key) != key:
		return "it has spaces around it"
	}
	return fmt.Sprintf("%d characters that do not have that form", len(key))
}

// CreateIntent creates the checkout's Checkout Session, or returns the one
// created under req.IdempotencyKey. The session carries the checkout's id
// in its metadata and in its PaymentIntent's, so that every event about
// the payment names it. Its expires_at is 30 minutes past the shop's
// deadline, Stripe's least, computed from the deadline alone: a step run
// again sends the very same request, as Stripe requires of a key reused.
// The shop expires the session itself at its deadline (ExpireIntent).
func (p *Provider) CreateIntent(ctx context.Context, req payment.IntentRequest) (payment.Intent, error) {
	if req.IdempotencyKey == "" || req.CheckoutID == "" || req.AmountCents <= 0 || req.ExpiresAt.IsZero() {
		return payment.Intent{}, fmt.Errorf("stripe: an intent needs a key, a checkout, a positive amount and a deadline: %w", payment.ErrRefused)
	}
	metadata := map[string]string{"checkout_id": req.CheckoutID}
	back := p.publicURL + "/?checkout=" + url.QueryEscape(req.CheckoutID)
	params := &stripeapi.CheckoutSessionCreateParams{
		Mode:              stripeapi.String(string(stripeapi.CheckoutSessionModePayment)),
		ClientReferenceID: stripeapi.String(req.CheckoutID),
		SuccessURL:        stripeapi.String(back),
		CancelURL:         stripeapi.String(back),
		ExpiresAt:         stripeapi.Int64(req.ExpiresAt.Add(sessionMinLife).Unix()),
		LineItems: []*stripeapi.CheckoutSessionCreateLineItemParams{{
			Quantity: stripeapi.Int64(1),
			PriceData: &stripeapi.CheckoutSessionCreateLineItemPriceDataParams{
				Currency:    stripeapi.String(req.Currency),
				UnitAmount:  stripeapi.Int64(req.AmountCents),
				ProductData: &stripeapi.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripeapi.String(req.Description)},
			},
		}},
		Metadata:          metadata,
		PaymentIntentData: &stripeapi.CheckoutSessionCreatePaymentIntentDataParams{Metadata: metadata, Description: stripeapi.String(req.Description)},
	}
	params.SetIdempotencyKey(req.IdempotencyKey)
	session, err := p.client.V1CheckoutSessions.Create(ctx, params)
	if err != nil {
		return payment.Intent{}, p.failed(fmt.Sprintf("creating the checkout session of checkout %s", req.CheckoutID), err)
	}
	if session.URL == "" {
		return payment.Intent{}, fmt.Errorf("stripe: checkout session %s of checkout %s has no URL to pay at", session.ID, req.CheckoutID)
	}
	return payment.Intent{ID: session.ID, PayURL: session.URL}, nil
}

// Refund refunds (part of) a PaymentIntent, or returns the refund made
// under req.IdempotencyKey. The shop's reason goes into the refund's
// metadata: Stripe's own reason takes only its three words.
func (p *Provider) Refund(ctx context.Context, req payment.RefundRequest) (payment.Refund, error) {
	if req.IdempotencyKey == "" || req.IntentID == "" || req.AmountCents <= 0 {
		return payment.Refund{}, fmt.Errorf("stripe: a refund needs a key, a payment intent and a positive amount: %w", payment.ErrRefused)
	}
	params := &stripeapi.RefundCreateParams{
		PaymentIntent: stripeapi.String(req.IntentID),
		Amount:        stripeapi.Int64(req.AmountCents),
		Metadata:      map[string]string{"reason": req.Reason},
	}
	params.SetIdempotencyKey(req.IdempotencyKey)
	r, err := p.client.V1Refunds.Create(ctx, params)
	if err != nil {
		return payment.Refund{}, p.failed("refunding payment intent "+req.IntentID, err)
	}
	return payment.Refund{ID: r.ID, Status: refundStatus(r.Status)}, nil
}

// refundStatus maps Stripe's refund statuses onto the shop's three.
func refundStatus(s stripeapi.RefundStatus) string {
	switch s {
	case stripeapi.RefundStatusSucceeded:
		return payment.RefundSucceeded
	case stripeapi.RefundStatusFailed, stripeapi.RefundStatusCanceled:
		return payment.RefundFailed
	}
	return payment.RefundPending // pending, requires_action
}

// ExpireIntent expires a Checkout Session that is still open, so that its
// page takes no payment any more. Stripe answers a session that is not
// open (paid, or expired already) with an error, which is refused here
// (payment.ErrRefused) unless the session is expired.
func (p *Provider) ExpireIntent(ctx context.Context, req payment.ExpireRequest) error {
	params := &stripeapi.CheckoutSessionExpireParams{}
	params.SetIdempotencyKey(req.IdempotencyKey)
	_, err := p.client.V1CheckoutSessions.Expire(ctx, req.IntentID, params)
	if err == nil {
		return nil
	}
	err = p.failed("expiring checkout session "+req.IntentID, err)
	if !errors.Is(err, payment.ErrRefused) {
		return err
	}
	session, rerr := p.client.V1CheckoutSessions.Retrieve(ctx, req.IntentID, nil)
	if rerr == nil && session.Status == stripeapi.CheckoutSessionStatusExpired {
		return nil
	}
	return err
}

// failed is the provider's error for a failed call: refused
// (payment.ErrRefused) when Stripe answered that the request itself is
// wrong, which asking again will not change; transient otherwise (Stripe
// out of reach, a timeout, a 5xx, a rate limit, the same key in flight).
func (p *Provider) failed(doing string, err error) error {
	var apiErr *stripeapi.Error
	if errors.As(err, &apiErr) {
		status := apiErr.HTTPStatusCode
		if status >= 400 && status < 500 && status != http.StatusConflict && status != http.StatusTooManyRequests {
			return fmt.Errorf("stripe: %s: %s (%s %s, request %s): %w", doing, apiErr.Msg, apiErr.Type, apiErr.Code, apiErr.RequestID, payment.ErrRefused)
		}
		return fmt.Errorf("stripe: %s: %s (HTTP %d, request %s): %w", doing, apiErr.Msg, status, apiErr.RequestID, ErrUnavailable)
	}
	return fmt.Errorf("stripe: %s: %w: %w", doing, ErrUnavailable, err)
}

// ErrUnavailable is wrapped by the errors of calls that did not reach
// Stripe or that Stripe could not answer for now: the same call, under
// the same key, may succeed in a moment.
var ErrUnavailable = errors.New("the Stripe API is unavailable")

// leveledLogger hands stripe-go's log lines to the shop's logger, at
// debug level: every failure it logs comes back as the call's error too,
// which the shop logs with its context.
type leveledLogger struct{ logger *slog.Logger }

func (l leveledLogger) Debugf(format string, v ...any) { l.logger.Debug(fmt.Sprintf(format, v...)) }
func (l leveledLogger) Infof(format string, v ...any)  { l.logger.Debug(fmt.Sprintf(format, v...)) }
func (l leveledLogger) Warnf(format string, v ...any)  { l.logger.Debug(fmt.Sprintf(format, v...)) }
func (l leveledLogger) Errorf(format string, v ...any) { l.logger.Debug(fmt.Sprintf(format, v...)) }
