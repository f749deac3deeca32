package stripe_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/stripe"
	"github.com/widgetstore/widgetstore/internal/payment/stripe/stripemock"
)

func newProvider(t *testing.T, apiURL string) *stripe.Provider {
	t.Helper()
	p, err := stripe.New(stripe.Config{SecretKey: stripemock.TestKey, APIURL: apiURL, PublicURL: "http://shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCallsAcceptedByStripeMock: every call the provider makes is one
// stripe-mock, which validates each against Stripe's OpenAPI spec,
// accepts, and each carries the idempotency key it was given.
func TestCallsAcceptedByStripeMock(t *testing.T) {
	t.Parallel()
	mock := stripemock.Start(t)
	p := newProvider(t, mock.URL)
	ctx := context.Background()
	intent, err := p.CreateIntent(ctx, payment.IntentRequest{IdempotencyKey: "checkout:k1", AmountCents: 1234, Currency: "usd",
		CheckoutID: "k1", Description: "Widget store order 1", ExpiresAt: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(intent.ID, "cs_") || !strings.HasPrefix(intent.PayURL, "https://") {
		t.Errorf("intent %+v, want a checkout session cs_… paid at an https URL", intent)
	}
	r, err := p.Refund(ctx, payment.RefundRequest{IdempotencyKey: "refund:pi_1", IntentID: "pi_1", AmountCents: 1234, Reason: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.ID, "re_") || r.Status != payment.RefundSucceeded {
		t.Errorf("refund %+v, want re_…, succeeded", r)
	}
	if err := p.ExpireIntent(ctx, payment.ExpireRequest{IdempotencyKey: "expire:k1", IntentID: intent.ID}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/v1/checkout/sessions": "checkout:k1", "/v1/refunds": "refund:pi_1", "/v1/checkout/sessions/" + intent.ID + "/expire": "expire:k1"}
	for path, key := range want {
		var got []stripemock.Request
		for _, req := range mock.Requests(path) {
			if req.Path == path {
				got = append(got, req)
			}
		}
		if len(got) != 1 || got[0].IdempotencyKey != key || got[0].Status != 200 {
			t.Errorf("POST %s: %+v, want one, answered 200, under key %q", path, got, key)
		}
	}
}

// TestRefusalsAndOutages: a request Stripe refuses wraps
// payment.ErrRefused; an API out of reach does not (the shop retries it).
func TestRefusalsAndOutages(t *testing.T) {
	t.Parallel()
	mock := stripemock.Start(t)
	ctx := context.Background()
	mock.Refuse("/v1/refunds")
	_, err := newProvider(t, mock.URL).Refund(ctx, payment.RefundRequest{IdempotencyKey: "refund:pi_2", IntentID: "pi_2", AmountCents: 100})
	if !errors.Is(err, payment.ErrRefused) {
		t.Errorf("a refused refund: %v, want ErrRefused", err)
	}
	// An expiry refused: the session is read, and is not expired (paid,
	// say), so the refusal stands.
	mock.Refuse("/v1/checkout/sessions/cs_paid/expire")
	err = newProvider(t, mock.URL).ExpireIntent(ctx, payment.ExpireRequest{IdempotencyKey: "expire:k2", IntentID: "cs_paid"})
	if !errors.Is(err, payment.ErrRefused) {
		t.Errorf("a refused expiry: %v, want ErrRefused", err)
	}
	if reads := mock.Requests("/v1/checkout/sessions/cs_paid"); len(reads) != 2 || reads[1].Method != "GET" || reads[1].Status != 200 {
		t.Errorf("requests about the session: %+v, want the refused expiry, then a read stripe-mock answered", reads)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	_, err = newProvider(t, down).CreateIntent(ctx, payment.IntentRequest{IdempotencyKey: "checkout:k3", AmountCents: 100,
		Currency: "usd", CheckoutID: "k3", Description: "d", ExpiresAt: time.Now()})
	if err == nil || errors.Is(err, payment.ErrRefused) || !errors.Is(err, stripe.ErrUnavailable) {
		t.Errorf("the API out of reach: %v, want ErrUnavailable, not ErrRefused", err)
	}
}

// TestMalformedKeyRefused: a key that is not a secret key stops New with
// a message that says what it is, without showing it.
func TestMalformedKeyRefused(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"", "pk_test_abcdefgh1234", "whsec_abcdefgh1234", " sk_test_abcdefgh1234", "sk_test_abc", "hunter2hunter2"} {
		_, err := stripe.New(stripe.Config{SecretKey: key, PublicURL: "http://shop.example"})
		if err == nil {
			t.Errorf("key %q: no error", key)
			continue
		}
		if len(key) > 8 && strings.Contains(err.Error(), strings.TrimSpace(key)) {
			t.Errorf("key %q: the error shows it: %v", key, err)
		}
	}
	if _, err := stripe.New(stripe.Config{SecretKey: stripemock.TestKey, PublicURL: "/relative"}); err == nil {
		t.Error("a relative public URL: no error")
	}
	if _, err := stripe.New(stripe.Config{SecretKey: "rk_live_abcdefgh1234", PublicURL: "https://shop.example"}); err != nil {
		t.Errorf("a restricted live key: %v", err)
	}
}
