package demopay_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/demopay"
	"github.com/widgetstore/widgetstore/internal/store"
)

const secret = "whsec_test"

// fastRetry keeps the tests' backoffs short.
var fastRetry = demopay.Retry{First: 20 * time.Millisecond, Max: 100 * time.Millisecond, GiveUpAfter: time.Hour}

// app is the demo provider launched on a database with the shop's
// workflows, as the server launches it.
type app struct {
	db       *store.DB
	checkout *checkout.Checkout
	provider *demopay.Provider
	stopped  bool
}

// launch opens and migrates the database at url and launches DBOS on it
// with the provider registered (checkout.LaunchConfig.Register).
func launch(t *testing.T, url string, cfg demopay.Config) *app {
	t.Helper()
	ctx := context.Background()
	logger := dbtest.Logger(t)
	db, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx, logger); err != nil {
		t.Fatal(err)
	}
	cfg.Logger = logger
	p, err := demopay.New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	co, err := checkout.Launch(ctx, db, checkout.LaunchConfig{Checkout: checkout.DefaultConfig, ExecutorID: "test",
		Logger: logger, Register: p.Register})
	if err != nil {
		t.Fatal(err)
	}
	a := &app{db: db, checkout: co, provider: p}
	t.Cleanup(func() { a.stop(t) })
	return a
}

// stop shuts DBOS down, leaving workflows in flight pending for the next
// launch on the database.
func (a *app) stop(t *testing.T) {
	if a.stopped {
		return
	}
	a.stopped = true
	if err := a.checkout.Shutdown(10 * time.Second); err != nil {
		t.Error(err)
	}
}

// receiver is the shop's webhook as far as the provider can tell: a real
// HTTP server that fails its first requests, or all while failing is set,
// and keeps the events that verify.
type receiver struct {
	server   *httptest.Server
	verifier *payment.Verifier

	mu        sync.Mutex
	failFirst int
	failing   bool
	requests  int
	events    []payment.Event
	refusals  []error
}

func newReceiver(t *testing.T, failFirst int) *receiver {
	t.Helper()
	v, err := payment.NewVerifier([]string{secret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{verifier: v, failFirst: failFirst}
	r.server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.server.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.failing || r.requests <= r.failFirst {
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	e, err := r.verifier.Verify(body, req.Header.Get(payment.SignatureHeader))
	if err != nil {
		r.refusals = append(r.refusals, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.events = append(r.events, e)
}

func (r *receiver) setFailing(failing bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failing = failing
}

// state returns the requests so far and the events that verified.
func (r *receiver) state() (int, []payment.Event, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, slices.Clone(r.events), slices.Clone(r.refusals)
}

func (r *receiver) config() demopay.Config {
	return demopay.Config{WebhookURL: r.server.URL + "/webhook", SigningSecret: secret, Retry: fastRetry}
}

// waitFor polls cond until it holds, for a generous while: the machine
// may be loaded.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func intentRequest(key string, cents int64) payment.IntentRequest {
	return payment.IntentRequest{IdempotencyKey: key, AmountCents: cents, Currency: "usd", CheckoutID: "co-" + key,
		Description: "2 widgets", ExpiresAt: time.Now().Add(time.Minute)}
}

func intentView(t *testing.T, p *demopay.Provider, id string) demopay.IntentView {
	t.Helper()
	rec := httptest.NewRecorder()
	p.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/demopay/intents/"+id, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /demopay/intents/%s: %d %s", id, rec.Code, rec.Body)
	}
	var v demopay.IntentView
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The same key finds the same intent, also after DBOS was relaunched, and
// a key reused for another intent, or a request that can never be
// granted, is refused.
func TestCreateIntentIdempotent(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		r := newReceiver(t, 0)
		a := launch(t, url, r.config())
		first, err := a.provider.CreateIntent(ctx, intentRequest("k1", 4998))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(first.ID, "pi_") || first.PayURL != "/demopay/pay/"+first.ID {
			t.Errorf("intent %+v: want a pi_ id and its page", first)
		}
		again, err := a.provider.CreateIntent(ctx, intentRequest("k1", 4998))
		if err != nil || again != first {
			t.Errorf("same key again: %+v, %v; want %+v", again, err, first)
		}
		other, err := a.provider.CreateIntent(ctx, intentRequest("k2", 4998))
		if err != nil || other.ID == first.ID {
			t.Errorf("another key: %+v, %v; want another intent than %s", other, err, first.ID)
		}

		a.stop(t)
		b := launch(t, url, r.config())
		afterRelaunch, err := b.provider.CreateIntent(ctx, intentRequest("k1", 4998))
		if err != nil || afterRelaunch != first {
			t.Errorf("same key after a relaunch: %+v, %v; want %+v", afterRelaunch, err, first)
		}

		refusedRequests := map[string]payment.IntentRequest{
			"key reused for another amount": intentRequest("k1", 5000),
			"no key":                        intentRequest("", 4998),
			"no amount":                     intentRequest("k3", 0),
			"upper-case currency":           func() payment.IntentRequest { r := intentRequest("k4", 1); r.Currency = "USD"; return r }(),
			"no deadline":                   func() payment.IntentRequest { r := intentRequest("k5", 1); r.ExpiresAt = time.Time{}; return r }(),
		}
		for name, req := range refusedRequests {
			if _, err := b.provider.CreateIntent(ctx, req); !errors.Is(err, payment.ErrRefused) {
				t.Errorf("%s: got %v, want an error wrapping payment.ErrRefused", name, err)
			}
		}
		if v := intentView(t, b.provider, first.ID); v.AmountCents != 4998 || v.Status != demopay.StatusRequiresPayment || v.CheckoutID != "co-k1" {
			t.Errorf("intent after the refusals: %+v", v)
		}
	})
}

// A payment's event reaches a webhook that fails its first requests: the
// provider retries with backoff until a 2xx, and what arrives verifies.
// Paying the intent again, either way, starts no second delivery.
func TestPayDeliversUntilAcknowledged(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		r := newReceiver(t, 3)
		a := launch(t, url, r.config())
		in, err := a.provider.CreateIntent(ctx, intentRequest("k1", 4998))
		if err != nil {
			t.Fatal(err)
		}
		status, err := a.provider.Pay(ctx, in.ID, demopay.OutcomeSucceed)
		if err != nil || status != demopay.StatusSucceeded {
			t.Fatalf("Pay: %q, %v", status, err)
		}
		waitFor(t, "the event is delivered", func() bool { _, events, _ := r.state(); return len(events) > 0 })
		requests, events, refusals := r.state()
		if requests != 4 || len(refusals) != 0 {
			t.Errorf("%d requests, refusals %v: want 3 failed and 1 accepted", requests, refusals)
		}
		e := events[0]
		if e.Type != payment.EventSucceeded || e.IntentID != in.ID || e.AmountCents != 4998 || e.Currency != "usd" ||
			e.CheckoutID != "co-k1" || !strings.HasPrefix(e.ID, "evt_") {
			t.Errorf("delivered event %+v", e)
		}
		// The provider records the attempt after the shop's answer.
		var v demopay.IntentView
		waitFor(t, "the delivery is recorded", func() bool {
			v = intentView(t, a.provider, in.ID)
			return len(v.Events) == 1 && v.Events[0].Delivered != nil
		})
		if v.Events[0].ID != e.ID || v.Events[0].Attempts != 4 || v.Events[0].LastError != "" {
			t.Errorf("the provider's record of its event: %+v", v.Events)
		}

		// Paid again, or refused after it was paid: the first outcome
		// stands, and no second event is made.
		for _, outcome := range []string{demopay.OutcomeSucceed, demopay.OutcomeFail} {
			if status, err := a.provider.Pay(ctx, in.ID, outcome); err != nil || status != demopay.StatusSucceeded {
				t.Errorf("Pay(%s) again: %q, %v; want it still succeeded", outcome, status, err)
			}
		}
		// The JSON API says so with 409 for the other outcome.
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/demopay/pay/"+in.ID, strings.NewReader(`{"outcome":"fail"}`))
		req.Header.Set("Content-Type", "application/json")
		a.provider.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusConflict {
			t.Errorf("POST fail after paid: %d %s, want 409", rec.Code, rec.Body)
		}
		// Let a second delivery, if one had been started, be made.
		time.Sleep(10 * fastRetry.Max)
		if requests, events, _ := r.state(); requests != 4 || len(events) != 1 {
			t.Errorf("after paying again: %d requests, events %+v; want the first delivery only", requests, events)
		}
		if v := intentView(t, a.provider, in.ID); len(v.Events) != 1 {
			t.Errorf("events after paying again: %+v", v.Events)
		}
	})
}

// A refused payment sends payment_intent.payment_failed.
func TestRefuseSendsFailed(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		r := newReceiver(t, 0)
		a := launch(t, url, r.config())
		in, err := a.provider.CreateIntent(ctx, intentRequest("k1", 100))
		if err != nil {
			t.Fatal(err)
		}
		if status, err := a.provider.Pay(ctx, in.ID, demopay.OutcomeFail); err != nil || status != demopay.StatusFailed {
			t.Fatalf("Pay(fail): %q, %v", status, err)
		}
		waitFor(t, "the event is delivered", func() bool { _, events, _ := r.state(); return len(events) > 0 })
		if _, events, _ := r.state(); events[0].Type != payment.EventFailed || events[0].IntentID != in.ID {
			t.Errorf("delivered %+v, want %s of %s", events[0], payment.EventFailed, in.ID)
		}
		if _, err := a.provider.Refund(ctx, payment.RefundRequest{IdempotencyKey: "r1", IntentID: in.ID, AmountCents: 100}); !errors.Is(err, payment.ErrRefused) {
			t.Errorf("refund of a refused payment: %v, want refused", err)
		}
	})
}

// Refunds are idempotent on their key, never sum to more than the intent,
// are refused while the operator's switch says so, and each sends
// charge.refunded with what was refunded so far.
func TestRefund(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		r := newReceiver(t, 0)
		a := launch(t, url, r.config())
		in, err := a.provider.CreateIntent(ctx, intentRequest("k1", 5000))
		if err != nil {
			t.Fatal(err)
		}
		refund := func(key string, cents int64) (payment.Refund, error) {
			return a.provider.Refund(ctx, payment.RefundRequest{IdempotencyKey: key, IntentID: in.ID, AmountCents: cents, Reason: "late payment"})
		}
		if _, err := refund("r0", 1000); !errors.Is(err, payment.ErrRefused) {
			t.Errorf("refund before payment: %v, want refused", err)
		}
		if _, err := a.provider.Pay(ctx, in.ID, demopay.OutcomeSucceed); err != nil {
			t.Fatal(err)
		}

		first, err := refund("r1", 1000)
		if err != nil || !strings.HasPrefix(first.ID, "re_") || first.Status != payment.RefundSucceeded {
			t.Fatalf("refund r1: %+v, %v", first, err)
		}
		if again, err := refund("r1", 1000); err != nil || again != first {
			t.Errorf("r1 again: %+v, %v; want %+v", again, err, first)
		}
		if _, err := refund("r1", 2000); !errors.Is(err, payment.ErrRefused) {
			t.Errorf("r1 reused for another amount: %v, want refused", err)
		}
		if _, err := refund("r2", 4001); !errors.Is(err, payment.ErrRefused) {
			t.Errorf("refund beyond what is left: %v, want refused", err)
		}

		// The switch, through the HTTP API as the operator sets it.
		setRefuse := func(refuse string) {
			rec := httptest.NewRecorder()
			a.provider.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost,
				"/demopay/intents/"+in.ID+"/refuse-refunds", strings.NewReader(`{"refuse":`+refuse+`}`)))
			if rec.Code != http.StatusOK {
				t.Fatalf("refuse-refunds %s: %d %s", refuse, rec.Code, rec.Body)
			}
		}
		setRefuse("true")
		if _, err := refund("r2", 4000); !errors.Is(err, payment.ErrRefused) {
			t.Errorf("refund while refused: %v, want refused", err)
		}
		// A refusal recorded nothing: the same key refunds once allowed.
		setRefuse("false")
		rest, err := refund("r2", 4000)
		if err != nil || rest.ID == first.ID {
			t.Fatalf("refund r2 once allowed: %+v, %v", rest, err)
		}
		if _, err := refund("r3", 1); !errors.Is(err, payment.ErrRefused) {
			t.Errorf("refund of a fully refunded intent: %v, want refused", err)
		}
		if _, err := a.provider.Refund(ctx, payment.RefundRequest{IdempotencyKey: "r4", IntentID: "pi_nope", AmountCents: 1}); !errors.Is(err, payment.ErrRefused) {
			t.Errorf("refund of an unknown intent: %v, want refused", err)
		}

		v := intentView(t, a.provider, in.ID)
		if v.RefundedCents != 5000 || len(v.Refunds) != 2 {
			t.Errorf("intent after the refunds: refunded %d, refunds %+v; want 5000 in 2", v.RefundedCents, v.Refunds)
		}
		// The payment's event and one per refund, with the running total.
		waitFor(t, "three events are delivered", func() bool { _, events, _ := r.state(); return len(events) >= 3 })
		_, events, _ := r.state()
		var refunded []int64
		for _, e := range events {
			if e.Type == payment.EventRefunded && e.IntentID == in.ID && e.CheckoutID == "co-k1" {
				refunded = append(refunded, e.AmountCents)
			}
		}
		slices.Sort(refunded)
		if !slices.Equal(refunded, []int64{1000, 5000}) || len(events) != 3 {
			t.Errorf("events %+v: want the payment's and charge.refunded with 1000 then 5000 refunded", events)
		}
	})
}

// Concurrent refunds of one intent never take more than it: the bound is
// checked by one conditional UPDATE, which PostgreSQL serializes on the
// intent's row.
func TestConcurrentRefundsStayWithinTheAmount(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		r := newReceiver(t, 0)
		a := launch(t, url, r.config())
		in, err := a.provider.CreateIntent(ctx, intentRequest("k1", 1000))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.provider.Pay(ctx, in.ID, demopay.OutcomeSucceed); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var granted, refused int
		for i := range 8 {
			wg.Go(func() {
				_, err := a.provider.Refund(ctx, payment.RefundRequest{IdempotencyKey: "r" + string(rune('a'+i)), IntentID: in.ID, AmountCents: 300})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					granted++
				case errors.Is(err, payment.ErrRefused):
					refused++
				default:
					t.Errorf("refund: %v", err)
				}
			})
		}
		wg.Wait()
		if granted != 3 || refused != 5 {
			t.Errorf("%d granted, %d refused; want 3 of 300 cents granted out of 1000", granted, refused)
		}
		if v := intentView(t, a.provider, in.ID); v.RefundedCents != 900 || len(v.Refunds) != 3 {
			t.Errorf("refunded %d in %d refunds, want 900 in 3", v.RefundedCents, len(v.Refunds))
		}
	})
}

// DBOS shut down while a delivery waits to retry: the next launch on the
// database resumes the workflow and delivers the same event.
func TestRedeliveryAfterRelaunch(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		r := newReceiver(t, 0)
		r.setFailing(true)
		cfg := r.config()
		// A backoff long enough for the shutdown to come in the middle.
		cfg.Retry = demopay.Retry{First: 1500 * time.Millisecond, Max: 1500 * time.Millisecond, GiveUpAfter: time.Hour}
		a := launch(t, url, cfg)
		in, err := a.provider.CreateIntent(ctx, intentRequest("k1", 4998))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.provider.Pay(ctx, in.ID, demopay.OutcomeSucceed); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a first attempt fails", func() bool { requests, _, _ := r.state(); return requests >= 1 })
		a.stop(t)

		// Relaunched while the shop still fails: the delivery goes on
		// failing, then succeeds once the shop answers.
		b := launch(t, url, cfg)
		recorded := intentView(t, b.provider, in.ID).Events
		if len(recorded) != 1 || recorded[0].Delivered != nil {
			t.Fatalf("after the relaunch: events %+v, want one undelivered", recorded)
		}
		waitFor(t, "an attempt after the relaunch", func() bool { requests, _, _ := r.state(); return requests >= 2 })
		r.setFailing(false)
		waitFor(t, "the event is delivered after the relaunch", func() bool { _, events, _ := r.state(); return len(events) > 0 })
		_, events, _ := r.state()
		if len(events) != 1 || events[0].ID != recorded[0].ID || events[0].IntentID != in.ID {
			t.Errorf("delivered %+v, want event %s of %s", events, recorded[0].ID, in.ID)
		}
		waitFor(t, "the delivery is recorded", func() bool {
			v := intentView(t, b.provider, in.ID)
			return len(v.Events) == 1 && v.Events[0].Delivered != nil && v.Events[0].Attempts >= 3
		})
	})
}

// An expired intent takes no payment (its status says expired), expiring
// it again is no error, one paid cannot be expired, and the demo's switch
// pays an expired one all the same, as a payment that won the race.
func TestExpireIntent(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		r := newReceiver(t, 0)
		a := launch(t, url, r.config())
		in, err := a.provider.CreateIntent(ctx, intentRequest("k1", 100))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := a.provider.ExpireIntent(ctx, payment.ExpireRequest{IdempotencyKey: "expire:co-k1", IntentID: in.ID}); err != nil {
				t.Fatalf("ExpireIntent: %v", err)
			}
		}
		if status, err := a.provider.Pay(ctx, in.ID, demopay.OutcomeSucceed); err != nil || status != demopay.StatusExpired {
			t.Errorf("paying an expired intent: %q, %v; want it expired", status, err)
		}
		if v := intentView(t, a.provider, in.ID); v.Status != demopay.StatusExpired || v.Open() {
			t.Errorf("intent %+v, want expired and not open", v)
		}
		if status, err := a.provider.PayDespiteExpiry(ctx, in.ID, demopay.OutcomeSucceed); err != nil || status != demopay.StatusSucceeded {
			t.Errorf("paying despite the expiry: %q, %v; want succeeded", status, err)
		}
		if err := a.provider.ExpireIntent(ctx, payment.ExpireRequest{IdempotencyKey: "expire:co-k1", IntentID: in.ID}); !errors.Is(err, payment.ErrRefused) {
			t.Errorf("expiring a paid intent: %v, want refused", err)
		}
		if err := a.provider.ExpireIntent(ctx, payment.ExpireRequest{IdempotencyKey: "expire:none", IntentID: "pi_none"}); !errors.Is(err, payment.ErrRefused) {
			t.Errorf("expiring an unknown intent: %v, want refused", err)
		}
		waitFor(t, "the payment's event is delivered", func() bool { _, events, _ := r.state(); return len(events) == 1 })
	})
}
