package chaos_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/stripe/stripemock"
)

// TestKillBetweenStripesAnswerAndTheCheckpoint runs the real shop on
// Stripe (a real stripe-mock behind the test's recording proxy) and kills
// it with SIGKILL after Stripe has acted on each of its calls and before
// the shop has heard the answer, so before the step's checkpoint: the
// session's creation, its expiry at the deadline, and the refund of a
// payment that came late. Each call is made again after the restart, under
// the same idempotency key, so Stripe makes one session, one expiry and
// one refund; the order ends CANCELLED and refunded, and the books
// balance.
func TestKillBetweenStripesAnswerAndTheCheckpoint(t *testing.T) {
	t.Parallel()
	mock := stripemock.Start(t)
	const secret = "whsec_chaos0123456789"
	s := newShop(t, dbtest.NewDatabase(t, "sqlite"), "-payment-timeout", "3s", "-dispatch-interval", "10ms")
	s.env = []string{"STRIPE_SECRET_KEY=" + stripemock.TestKey, "STRIPE_WEBHOOK_SECRET=" + secret, "STRIPE_API_URL=" + mock.URL,
		"WIDGETSTORE_PUBLIC_URL=http://shop.example"}

	// The proxy kills the shop on the first request of each kind, once
	// stripe-mock has answered it and before the answer goes back.
	var pid atomic.Int64
	kills := make(chan string, 3)
	var mu sync.Mutex
	killed := map[string]bool{}
	mock.BeforeAnswer(func(r stripemock.Request) {
		kind := r.Path
		if strings.HasPrefix(kind, "/v1/checkout/sessions/") {
			kind = "expire"
		}
		mu.Lock()
		first := !killed[kind]
		killed[kind] = true
		mu.Unlock()
		if first {
			syscall.Kill(-int(pid.Load()), syscall.SIGKILL)
			kills <- kind
		}
	})
	restart := func(want string) {
		t.Helper()
		select {
		case kind := <-kills:
			if kind != want {
				t.Fatalf("killed on %s, want on %s", kind, want)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("no kill on %s within a minute:\n%s", want, s.output())
		}
		s.kill() // reaps it
		s.run()
		pid.Store(int64(s.cmd.Process.Pid))
		s.checkBooks()
	}
	s.run()
	pid.Store(int64(s.cmd.Process.Pid))
	until := time.Now().Add(2 * time.Minute)

	// 1. The checkout creates its session: killed there. The customer's
	// page sends the same key again until the shop is back, and is
	// answered the session the recovered checkout created under it.
	const key = "chaos-stripe"
	answered := make(chan cartOrder, 1)
	go func() {
		var o cartOrder
		status, body, err := s.postJSON("/api/checkouts/"+key, `{"lines": [{"product_id": 2, "quantity": 2}]}`, until)
		if err == nil && status == 200 {
			err = json.Unmarshal([]byte(body), &o)
		} else if err == nil {
			err = fmt.Errorf("%d %s", status, body)
		}
		if err != nil {
			t.Errorf("checking out: %v", err)
		}
		answered <- o
	}()
	restart("/v1/checkout/sessions")
	o := <-answered
	if !strings.HasPrefix(o.PayURL, "https://checkout.stripe.com/") {
		t.Fatalf("order %+v, want it paid on Stripe's page", o)
	}

	// 2. At the deadline the checkout expires the session: killed there.
	restart("expire")
	s.awaitCart(key, until, func(o cartOrder) bool { return o.Status == "CANCELLED" })

	// 3. A payment that won the race with the expiry comes, and is owed
	// back: its refund is killed after Stripe made it.
	pi := "pi_chaos_late"
	event := fmt.Sprintf(`{"id": "evt_chaos_late", "object": "event", "type": "checkout.session.completed", "created": %d, "data": {"object":
		{"id": "cs_chaos", "object": "checkout.session", "status": "complete", "payment_status": "paid", "amount_total": %d,
		 "currency": "usd", "payment_intent": %q, "metadata": {"checkout_id": %q}}}}`, time.Now().Unix(), o.TotalCents, pi, key)
	req, err := newSignedEvent(s.url(), event, secret)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.http.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("posting the late payment: %v %v", resp, err)
	}
	resp.Body.Close()
	restart("/v1/refunds")
	done := s.awaitCart(key, until, func(o cartOrder) bool { return o.Refund == "refunded" })

	// Every call was made twice (once cut by the kill), each time under
	// its one key: one session, one expiry, one refund at Stripe.
	for path, want := range map[string]string{"/v1/checkout/sessions": "checkout:" + key, "/v1/refunds": "refund:" + pi, "expire": "expire:" + key} {
		keys := map[string]int{}
		for _, r := range mock.Requests("/v1/") {
			if r.Path == path || path == "expire" && strings.HasSuffix(r.Path, "/expire") {
				keys[r.IdempotencyKey]++
			}
		}
		if len(keys) != 1 || keys[want] < 2 {
			t.Errorf("%s: requests by idempotency key %v, want %q alone, at least twice (before and after the kill)", path, keys, want)
		}
	}
	m := s.checkBooks()
	if done.Status != "CANCELLED" || m.Taken != o.TotalCents || m.Refunded != o.TotalCents || m.Kept != 0 {
		t.Errorf("order %+v, money %+v: want CANCELLED, %d cents taken and refunded", done, m, o.TotalCents)
	}
	s.stop()
}

// newSignedEvent is Stripe's POST of event to the shop's webhook, signed
// with secret.
func newSignedEvent(shopURL, event, secret string) (*http.Request, error) {
	req, err := http.NewRequest("POST", shopURL+"/api/payment_events", strings.NewReader(event))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(payment.SignatureHeader, payment.Sign(secret, []byte(event), time.Now()))
	return req, nil
}
