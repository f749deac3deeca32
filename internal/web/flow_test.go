package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/checkout/checkouttest"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/demopay"
	"github.com/widgetstore/widgetstore/internal/payment/stripe"
	"github.com/widgetstore/widgetstore/internal/payment/stripe/stripemock"
	"github.com/widgetstore/widgetstore/internal/store"
	"github.com/widgetstore/widgetstore/internal/web"
)

// The payment flow suite: one set of flows, run on both engines against
// each provider the shop ships, the demo one and Stripe on a real
// stripe-mock. What differs is only how the customer pays and how the
// test reads what the provider was asked (flowProvider).

// flowProvider is one provider under the flow suite.
type flowProvider interface {
	// pay pays o's intent, as the customer does: in full in usd, or as
	// the money's cents and currency say (a provider taking the wrong
	// money).
	pay(t *testing.T, s *testServer, o customerOrder, m money)
	// refuseRefunds makes the provider refuse the refunds of o's payment.
	refuseRefunds(t *testing.T, s *testServer, o customerOrder)
	// refunds counts the refunds the provider made of o's payment.
	refunds(t *testing.T, s *testServer, o customerOrder) int
	// expired reports whether o's intent was expired at the provider.
	expired(t *testing.T, s *testServer, o customerOrder) bool
}

// heldExpiry is the provider the checkout calls, with its ExpireIntent
// held while hold is on: a payment then gets in between the order's
// cancel and its intent's expiry, the race that ends in a refund.
type heldExpiry struct {
	payment.Provider
	mu      sync.Mutex
	release chan struct{} // nil: not held
}

func (h *heldExpiry) ExpireIntent(ctx context.Context, req payment.ExpireRequest) error {
	h.mu.Lock()
	release := h.release
	h.mu.Unlock()
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return h.Provider.ExpireIntent(ctx, req)
}

// hold holds the expiries until the function it returns is called.
func (h *heldExpiry) hold() func() {
	release := make(chan struct{})
	h.mu.Lock()
	h.release = release
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		h.release = nil
		h.mu.Unlock()
		close(release)
	}
}

// money is what a payment takes.
type money struct {
	cents    int64 // 0: the order's total
	currency string
}

var inFull = money{currency: "usd"}

func (m money) of(o customerOrder) int64 {
	if m.cents == 0 {
		return o.TotalCents
	}
	return m.cents
}

// flowConfig: long enough a deadline to pay in, short enough to wait out.
var flowConfig = checkout.Config{PaymentTimeout: 2 * time.Second, DispatchSteps: 2, DispatchInterval: 20 * time.Millisecond,
	RefundAttempts: 3, RefundBackoff: 20 * time.Millisecond}

func TestPaymentFlows(t *testing.T) {
	t.Parallel()
	providers := map[string]func(t *testing.T, url string, held *heldExpiry) (*testServer, flowProvider){
		"demopay": func(t *testing.T, url string, held *heldExpiry) (*testServer, flowProvider) {
			wrap := func(p payment.Provider) payment.Provider { held.Provider = p; return held }
			return newTestServerPaying(t, url, checkout.LaunchConfig{Checkout: flowConfig}, web.Options{}, nil, launchDemoPay(wrap)), demoFlow{}
		},
		"stripe": func(t *testing.T, url string, held *heldExpiry) (*testServer, flowProvider) {
			mock := stripemock.Start(t)
			s := newTestServerPaying(t, url, checkout.LaunchConfig{Checkout: flowConfig}, web.Options{}, nil, launchStripe(mock.URL, held))
			return s, &stripeFlow{mock: mock}
		},
	}
	for name, start := range providers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dbtest.RunEach(t, func(t *testing.T, url string) {
				t.Parallel()
				held := &heldExpiry{}
				s, p := start(t, url, held)
				runFlows(t, s, p, held)
			})
		})
	}
}

// runFlows runs the flows, one after the other, on one shop.
func runFlows(t *testing.T, s *testServer, p flowProvider, held *heldExpiry) {
	t.Run("paid in time is dispatched", func(t *testing.T) {
		o := s.cart(t, "flow-paid", `{"lines": [{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 2}]}`)
		p.pay(t, s, o, inFull)
		done := s.awaitCheckout(t, "flow-paid", func(o customerOrder) bool { return o.Status == "DISPATCHED" })
		if done.Refund != "" || p.refunds(t, s, o) != 0 || p.expired(t, s, o) {
			t.Errorf("order %+v: want no refund, and its intent not expired", done)
		}
		if r := s.do(t, "POST", "/api/checkouts/flow-paid/cancel", ""); r.status != 409 || !strings.Contains(r.body, `"error"`) {
			t.Errorf("cancelling a dispatched order: %d %s, want a 409 JSON error", r.status, r.body)
		}
	})
	t.Run("unpaid expires its intent at the deadline", func(t *testing.T) {
		o := s.cart(t, "flow-unpaid", `{"lines": [{"product_id": 4, "quantity": 1}]}`)
		s.awaitCheckout(t, "flow-unpaid", func(o customerOrder) bool { return o.Status == "CANCELLED" })
		awaitTrue(t, "the intent expired", func() bool { return p.expired(t, s, o) })
	})
	t.Run("paid late is refunded once", func(t *testing.T) {
		release := held.hold()
		o := s.cart(t, "flow-late", `{"lines": [{"product_id": 2, "quantity": 1}]}`)
		s.awaitCheckout(t, "flow-late", func(o customerOrder) bool { return o.Status == "CANCELLED" })
		p.pay(t, s, o, inFull) // before the checkout could expire the intent
		release()
		done := s.awaitCheckout(t, "flow-late", func(o customerOrder) bool { return o.Refund == "refunded" })
		if done.Status != "CANCELLED" || p.refunds(t, s, o) != 1 {
			t.Errorf("order %+v with %d refunds, want CANCELLED and refunded once", done, p.refunds(t, s, o))
		}
	})
	for i, wrong := range []money{{currency: "eur"}, {cents: 100, currency: "usd"}} {
		t.Run(fmt.Sprintf("wrong money is refunded and flagged: %+v", wrong), func(t *testing.T) {
			key := fmt.Sprintf("flow-wrong-%d", i)
			o := s.cart(t, key, `{"lines": [{"product_id": 1, "quantity": 1}]}`)
			p.pay(t, s, o, wrong)
			done := s.awaitCheckout(t, key, func(o customerOrder) bool { return o.Refund == "refunded" })
			if done.Status == "PAID" || done.Status == "DISPATCHED" || p.refunds(t, s, o) != 1 {
				t.Errorf("order %+v with %d refunds, want it unpaid and the payment refunded once", done, p.refunds(t, s, o))
			}
			var stuck struct {
				Mismatched []struct {
					OrderID     int64 `json:"order_id"`
					AmountCents int64 `json:"amount_cents"`
					Mismatch    string
				}
			}
			r := s.do(t, "GET", "/api/console/stuck", "")
			if err := json.Unmarshal([]byte(r.body), &stuck); err != nil || len(stuck.Mismatched) != i+1 {
				t.Fatalf("the operator's list: %d %s, want %d payments", r.status, r.body, i+1)
			}
			if got := stuck.Mismatched[0]; got.OrderID != o.ID || got.AmountCents != wrong.of(o) || got.Mismatch == "" {
				t.Errorf("the operator's list begins with %+v, want order %d's payment of %d cents, saying what is wrong", got, o.ID, wrong.of(o))
			}
		})
	}
	t.Run("customer cancels", func(t *testing.T) {
		before := s.do(t, "GET", "/api/products", "").body
		release := held.hold()
		o := s.cart(t, "flow-cancel", `{"lines": [{"product_id": 2, "quantity": 3}]}`)
		for range 2 { // the second is a no-op
			r := s.do(t, "POST", "/api/checkouts/flow-cancel/cancel", "")
			var got customerOrder
			if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != 200 || got.Status != "CANCELLED" || got.Reason != "cancelled by the customer" {
				t.Fatalf("cancelling: %d %s, want 200 and the order cancelled by the customer", r.status, r.body)
			}
		}
		if after := s.do(t, "GET", "/api/products", "").body; after != before {
			t.Errorf("stock not back at once:\n%s\n%s", before, after)
		}
		p.pay(t, s, o, inFull) // the customer had the page open
		release()
		awaitTrue(t, "the intent expired or paid", func() bool { return p.expired(t, s, o) || p.refunds(t, s, o) > 0 })
		if done := s.awaitCheckout(t, "flow-cancel", func(o customerOrder) bool { return o.Refund == "refunded" }); done.Status != "CANCELLED" {
			t.Errorf("order %+v, want CANCELLED and the late payment refunded", done)
		}
		for _, bad := range []string{"/api/checkouts/no-such-key/cancel", "/api/checkouts/bad%20key/cancel"} {
			if r := s.do(t, "POST", bad, ""); r.status/100 != 4 || !strings.Contains(r.body, `"error"`) {
				t.Errorf("POST %s: %d %s, want a 4xx JSON error", bad, r.status, r.body)
			}
		}
	})
	t.Run("refund refused goes to the operator", func(t *testing.T) {
		release := held.hold()
		o := s.cart(t, "flow-refused", `{"lines": [{"product_id": 4, "quantity": 2}]}`)
		s.awaitCheckout(t, "flow-refused", func(o customerOrder) bool { return o.Status == "CANCELLED" })
		p.refuseRefunds(t, s, o)
		p.pay(t, s, o, inFull)
		release()
		s.awaitCheckout(t, "flow-refused", func(o customerOrder) bool { return o.Refund == "attention" })
		owed, err := store.PaymentsOwed(context.Background(), s.db.Q(), 10)
		if err != nil || len(owed) != 1 || owed[0].AmountCents != o.TotalCents || owed[0].RefundNote == "" {
			t.Errorf("payments owed %+v, %v; want the one, with a note", owed, err)
		}
	})
	t.Run("unknown event types are acknowledged and ignored", func(t *testing.T) {
		before := s.snapshot(t)
		event := fmt.Sprintf(`{"id": "evt_other", "object": "event", "type": "customer.created", "created": %d, "data": {"object": {"id": "cus_1", "object": "customer"}}}`, time.Now().Unix())
		r := s.do(t, "POST", "/api/payment_events", event, "Content-Type", "application/json",
			payment.SignatureHeader, payment.Sign("whsec_test", []byte(event), time.Now()))
		if r.status != 200 {
			t.Errorf("an event of another type: %d %s, want 200", r.status, r.body)
		}
		if lines := s.logs.Lines("level=DEBUG", "settles nothing", "customer.created"); len(lines) != 1 {
			t.Errorf("debug lines about it: %q, want one", lines)
		}
		if after := s.snapshot(t); after != before {
			t.Errorf("it changed something:\n%s\n%s", before, after)
		}
	})
	m := s.books(t)
	if m.TakenCents != m.KeptCents+m.RefundingCents+m.RefundedCents+m.OwedCents || m.RefundingCents != 0 || m.OwedCents == 0 || m.RefundedCents == 0 {
		t.Errorf("money %+v: want taken = kept + refunded + owed, nothing still refunding", m)
	}
}

func awaitTrue(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in 20 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// demoFlow pays on the demo provider's API, as its page does.
type demoFlow struct{}

func (demoFlow) pay(t *testing.T, s *testServer, o customerOrder, m money) {
	t.Helper()
	if m != inFull {
		// The demo takes what its intent says: one changed is a provider
		// taking the wrong money.
		if _, err := s.db.Q().Exec(context.Background(), `UPDATE demopay_intents SET currency = $1, amount_cents = $2 WHERE intent_id = $3`,
			m.currency, m.of(o), intentOf(t, o)); err != nil {
			t.Fatal(err)
		}
	}
	if r := s.do(t, "POST", o.PayURL, `{"outcome": "succeed"}`, "Content-Type", "application/json"); r.status != 200 {
		t.Fatalf("paying %s: %d %s", o.PayURL, r.status, r.body)
	}
}

func (demoFlow) refuseRefunds(t *testing.T, s *testServer, o customerOrder) {
	t.Helper()
	if err := s.demo.SetRefuseRefunds(context.Background(), intentOf(t, o), true); err != nil {
		t.Fatal(err)
	}
}

func (demoFlow) refunds(t *testing.T, s *testServer, o customerOrder) int {
	return len(s.intent(t, intentOf(t, o)).Refunds)
}

func (demoFlow) expired(t *testing.T, s *testServer, o customerOrder) bool {
	expired := s.intent(t, intentOf(t, o)).Status == demopay.StatusExpired
	if expired {
		if r := s.do(t, "POST", o.PayURL, `{"outcome": "succeed"}`, "Content-Type", "application/json"); r.status != 409 {
			t.Errorf("paying an expired intent: %d %s, want 409", r.status, r.body)
		}
	}
	return expired
}

// launchStripe launches the shop paying through Stripe at apiURL, the
// provider the checkout calls inside held.
func launchStripe(apiURL string, held *heldExpiry) launchShop {
	return func(t testing.TB, url string, launch checkout.LaunchConfig, webhookURL, _ string) (*store.DB, *checkout.Checkout, http.Handler, *demopay.Provider) {
		provider, err := stripe.New(stripe.Config{SecretKey: stripemock.TestKey, APIURL: apiURL,
			PublicURL: strings.TrimSuffix(webhookURL, "/api/payment_events"), Logger: launch.Logger})
		if err != nil {
			t.Fatal(err)
		}
		held.Provider = provider
		launch.Provider = held
		db, co := checkouttest.LaunchWith(t, url, launch)
		return db, co, nil, nil
	}
}

// stripeFlow pays as Stripe reports a payment: stripe-mock sends no
// events, so the test signs Stripe's, with the shop's test secret, for a
// PaymentIntent of its own naming.
type stripeFlow struct{ mock *stripemock.Server }

// paymentIntent is the PaymentIntent the test says paid o.
func paymentIntent(o customerOrder) string {
	return fmt.Sprintf("pi_test_%s", strings.ReplaceAll(o.Key, "-", ""))
}

func (f *stripeFlow) pay(t *testing.T, s *testServer, o customerOrder, m money) {
	t.Helper()
	// The shop reads the payment by its checkout and PaymentIntent, not
	// by the session's id.
	session, pi := "cs_test_"+o.Key, paymentIntent(o)
	events := []string{
		fmt.Sprintf(`{"id": "evt_cs_%s", "object": "event", "type": "checkout.session.completed", "created": %d, "data": {"object":
			{"id": %q, "object": "checkout.session", "status": "complete", "payment_status": "paid", "amount_total": %d,
			 "currency": %q, "payment_intent": %q, "client_reference_id": %q, "metadata": {"checkout_id": %q}}}}`,
			pi, time.Now().Unix(), session, m.of(o), m.currency, pi, o.Key, o.Key),
		// Stripe sends the PaymentIntent's own event too, and may send an
		// event twice: neither takes the money again.
		fmt.Sprintf(`{"id": "evt_pi_%s", "object": "event", "type": "payment_intent.succeeded", "created": %d, "data": {"object":
			{"id": %q, "object": "payment_intent", "status": "succeeded", "amount": %d, "currency": %q, "metadata": {"checkout_id": %q}}}}`,
			pi, time.Now().Unix(), pi, m.of(o), m.currency, o.Key),
	}
	events = append(events, events[0])
	for _, e := range events {
		r := s.do(t, "POST", "/api/payment_events", e, "Content-Type", "application/json",
			payment.SignatureHeader, payment.Sign("whsec_test", []byte(e), time.Now()))
		if r.status != 200 {
			t.Fatalf("posting %s: %d %s", e, r.status, r.body)
		}
	}
}

func (f *stripeFlow) refuseRefunds(*testing.T, *testServer, customerOrder) {
	f.mock.Refuse("/v1/refunds")
}

func (f *stripeFlow) refunds(t *testing.T, _ *testServer, o customerOrder) int {
	n := 0
	for _, r := range f.mock.Requests("/v1/refunds") {
		if r.IdempotencyKey == "refund:"+paymentIntent(o) && r.Status == 200 {
			n++
		}
	}
	return n
}

func (f *stripeFlow) expired(t *testing.T, _ *testServer, o customerOrder) bool {
	for _, r := range f.mock.Requests("/v1/checkout/sessions/") {
		if strings.HasSuffix(r.Path, "/expire") && r.IdempotencyKey == "expire:"+o.Key && r.Status == 200 {
			return true
		}
	}
	return false
}
