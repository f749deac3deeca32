package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/stripe"
	"github.com/widgetstore/widgetstore/internal/store"
)

// stripeConfig selects Stripe as the payment provider, in place of the
// demo one (docs/payments-stripe.md). Its flags' twins are Stripe's own
// names; pass the secrets in the environment, since ps shows every
// process's flags.
type stripeConfig struct {
	secretKey      string   // STRIPE_SECRET_KEY; "": the demo provider
	webhookSecrets []string // STRIPE_WEBHOOK_SECRET, comma-separated: any of them verifies an event
	apiURL         string   // STRIPE_API_URL; "": Stripe's
}

func (c *stripeConfig) settings() []setting {
	return []setting{
		{flag: "stripe-secret-key", env: []string{"STRIPE_SECRET_KEY"}, value: value(&c.secretKey, ""),
			usage: "pay carts through Stripe with this secret API key (sk_test_…, sk_live_… or rk_…), instead of the demo provider; set it in the environment"},
		{flag: "stripe-webhook-secret", env: []string{"STRIPE_WEBHOOK_SECRET"}, value: setFunc(c.setWebhookSecrets),
			usage: "the signing secret (whsec_…) of the Stripe endpoint that sends /api/payment_events, comma-separated to rotate; set it in the environment"},
		{flag: "stripe-api-url", env: []string{"STRIPE_API_URL"}, value: value(&c.apiURL, ""),
			usage: "the Stripe API's base URL, such as stripe-mock's http://127.0.0.1:12111 (default: Stripe's)"},
	}
}

// setWebhookSecrets reads STRIPE_WEBHOOK_SECRET's comma-separated secrets;
// check says what is wrong with one.
func (c *stripeConfig) setWebhookSecrets(secrets string) error {
	c.webhookSecrets = nil
	for secret := range strings.SplitSeq(secrets, ",") {
		c.webhookSecrets = append(c.webhookSecrets, strings.TrimSpace(secret))
	}
	return nil
}

// check refuses a Stripe configuration that cannot work, before the shop
// starts: a malformed key or secret, one without the other, no public URL
// for Stripe's page to send the customer back to.
func (c stripeConfig) check(publicURL string) error {
	if c.secretKey == "" {
		if c.webhookSecrets != nil || c.apiURL != "" {
			return errors.New("STRIPE_WEBHOOK_SECRET or STRIPE_API_URL without STRIPE_SECRET_KEY: set the key too, or neither for the demo provider")
		}
		return nil
	}
	if err := stripe.CheckKey(c.secretKey); err != nil {
		return fmt.Errorf("STRIPE_SECRET_KEY: %w", err)
	}
	if c.webhookSecrets == nil {
		return errors.New("STRIPE_SECRET_KEY without STRIPE_WEBHOOK_SECRET: the shop would take no Stripe event, and no payment")
	}
	for _, secret := range c.webhookSecrets {
		if err := stripe.CheckWebhookSecret(secret); err != nil {
			return fmt.Errorf("STRIPE_WEBHOOK_SECRET: %w", err)
		}
	}
	if publicURL == "" {
		return errors.New("STRIPE_SECRET_KEY without -public-url (WIDGETSTORE_PUBLIC_URL): Stripe's page sends the customer back to the shop there")
	}
	return nil
}

// paymentProvider is the provider carts are paid through, Stripe when it
// is configured and the demo one otherwise: its part of the checkout's
// launch (Provider, and Register for the demo's workflows), the verifier of
// its events, and the pages it serves (the demo's; nil for Stripe's, which
// are Stripe's own).
func paymentProvider(db *store.DB, cfg config, addr net.Addr, logger *slog.Logger) (checkout.LaunchConfig, *payment.Verifier, http.Handler, error) {
	if cfg.stripe.secretKey == "" {
		demo, verifier, err := demoProvider(db, cfg, addr, logger)
		if err != nil {
			return checkout.LaunchConfig{}, nil, nil, err
		}
		return checkout.LaunchConfig{Provider: demo, Register: demo.Register}, verifier, demo.Handler(), nil
	}
	provider, err := stripe.New(stripe.Config{SecretKey: cfg.stripe.secretKey, APIURL: cfg.stripe.apiURL, PublicURL: cfg.publicURL, Logger: logger})
	if err != nil {
		return checkout.LaunchConfig{}, nil, nil, err
	}
	verifier, err := payment.NewVerifier(cfg.stripe.webhookSecrets, payment.DefaultTolerance)
	if err != nil {
		return checkout.LaunchConfig{}, nil, nil, err
	}
	logger.Info("carts are paid through Stripe", "api", cmp.Or(cfg.stripe.apiURL, "Stripe's"), "live", strings.Contains(cfg.stripe.secretKey, "_live_"))
	return checkout.LaunchConfig{Provider: provider}, verifier, nil, nil
}
