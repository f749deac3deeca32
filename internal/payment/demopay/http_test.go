package demopay_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/demopay"
)

// serve mounts the provider's handler as the shop does, at "/demopay/" of
// its mux, on a real HTTP server.
func serve(t *testing.T, p *demopay.Provider) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/demopay/", p.Handler())
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func do(t *testing.T, method, url, contentType, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// wantError checks a JSON error answer: its status, and a message that
// says what is wrong.
func wantError(t *testing.T, what string, resp *http.Response, body string, status int, says string) {
	t.Helper()
	var answer struct {
		Error string `json:"error"`
	}
	if resp.StatusCode != status || json.Unmarshal([]byte(body), &answer) != nil || !strings.Contains(answer.Error, says) {
		t.Errorf("%s: %d %s; want %d with an error saying %q", what, resp.StatusCode, body, status, says)
	}
}

// The page shows the intent and its buttons while it is open, the form
// settles it, and bad requests are answered with what is wrong.
func TestPayPageAndAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newReceiver(t, 0)
	a := launch(t, dbtest.NewDatabase(t, "sqlite"), r.config())
	s := serve(t, a.provider)
	req := intentRequest("k1", 4998)
	req.Description = "2 × <b>Widget</b>"
	in, err := a.provider.CreateIntent(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	page := s.URL + in.PayURL

	resp, body := do(t, http.MethodGet, page, "", "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %d %s", page, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, want := range []string{"49.98 USD", "co-k1", in.ID, `id="pay"`, `id="refuse"`,
		"2 × &lt;b&gt;Widget&lt;/b&gt;", `data-expires-at-ms="` + strconv.FormatInt(req.ExpiresAt.UnixMilli(), 10) + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q:\n%s", want, body)
		}
	}
	for path, status := range map[string]int{"/demopay/static/pay.js": 200, "/demopay/static/pay.css": 200, "/demopay/static/pay.html": 404} {
		if resp, _ := do(t, http.MethodGet, s.URL+path, "", ""); resp.StatusCode != status {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, status)
		}
	}

	form := "application/x-www-form-urlencoded"
	resp, body = do(t, http.MethodGet, s.URL+"/demopay/pay/pi_nope", "", "")
	wantError(t, "GET an unknown intent's page", resp, body, http.StatusNotFound, "pi_nope")
	resp, body = do(t, http.MethodPost, page, form, "outcome=maybe&refuse_refunds=on")
	wantError(t, "POST outcome=maybe", resp, body, http.StatusBadRequest, `"maybe"`)
	resp, body = do(t, http.MethodPost, page, "application/json", `{"outcome":`)
	wantError(t, "POST malformed JSON", resp, body, http.StatusBadRequest, "not a JSON object")
	resp, body = do(t, http.MethodPost, s.URL+"/demopay/pay/pi_nope", "application/json", `{"outcome":"succeed"}`)
	wantError(t, "POST to an unknown intent", resp, body, http.StatusNotFound, "pi_nope")
	resp, body = do(t, http.MethodPost, s.URL+"/demopay/intents/"+in.ID+"/refuse-refunds", "application/json", `{}`)
	wantError(t, "refuse-refunds without refuse", resp, body, http.StatusBadRequest, `"refuse"`)
	resp, body = do(t, http.MethodPost, s.URL+"/demopay/intents/"+in.ID+"/refuse-refunds", form, "refuse=perhaps")
	wantError(t, "refuse-refunds=perhaps", resp, body, http.StatusBadRequest, "refuse=true|false")
	resp, body = do(t, http.MethodPost, s.URL+"/demopay/intents/pi_nope/refuse-refunds", "application/json", `{"refuse":true}`)
	wantError(t, "refuse-refunds of an unknown intent", resp, body, http.StatusNotFound, "pi_nope")
	if v := intentView(t, a.provider, in.ID); v.Status != demopay.StatusRequiresPayment || len(v.Events) != 0 || v.RefuseRefunds {
		t.Fatalf("the bad requests changed the intent: %+v", v)
	}

	// Paid with the demo's switch ticked: its refunds are refused until
	// the page's button allows them.
	resp, _ = do(t, http.MethodPost, page, form, url.Values{"outcome": {"succeed"}, "refuse_refunds": {"on"}}.Encode())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != in.PayURL {
		t.Errorf("POST the form: %d to %q, want 303 to the page", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = do(t, http.MethodGet, page, "", "")
	if !strings.Contains(body, "went through") || strings.Contains(body, `id="pay"`) || !strings.Contains(body, `id="allow-refunds"`) {
		t.Errorf("the page of a paid intent whose refunds are refused:\n%s", body)
	}
	refund := payment.RefundRequest{IdempotencyKey: "r1", IntentID: in.ID, AmountCents: 100}
	if _, err := a.provider.Refund(ctx, refund); !errors.Is(err, payment.ErrRefused) {
		t.Errorf("refund while the switch says refuse: %v", err)
	}
	resp, _ = do(t, http.MethodPost, s.URL+"/demopay/intents/"+in.ID+"/refuse-refunds", form, "refuse=false")
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("POST refuse=false: %d, want 303", resp.StatusCode)
	}
	if _, err := a.provider.Refund(ctx, refund); err != nil {
		t.Errorf("refund once allowed: %v", err)
	}
	_, body = do(t, http.MethodGet, page, "", "")
	if !strings.Contains(body, `id="refuse-refunds"`) || !strings.Contains(body, "100 cents") {
		t.Errorf("the page of a paid intent with a refund:\n%s", body)
	}
	resp, body = do(t, http.MethodPost, page, "application/json", `{"outcome":"succeed"}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"status":"succeeded"`) {
		t.Errorf("POST succeed again: %d %s, want 200 succeeded", resp.StatusCode, body)
	}
}

// Two payments of one intent at once, with either outcome, start one
// workflow: both are answered with the outcome that won, and one event is
// made and delivered.
func TestConcurrentPaysStartOneDelivery(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		r := newReceiver(t, 0)
		a := launch(t, url, r.config())
		in, err := a.provider.CreateIntent(ctx, intentRequest("k1", 100))
		if err != nil {
			t.Fatal(err)
		}
		statuses := make([]string, 2)
		var wg sync.WaitGroup
		for i, outcome := range []string{demopay.OutcomeSucceed, demopay.OutcomeFail} {
			wg.Go(func() {
				status, err := a.provider.Pay(ctx, in.ID, outcome)
				if err != nil {
					t.Errorf("Pay(%s): %v", outcome, err)
				}
				statuses[i] = status
			})
		}
		wg.Wait()
		if statuses[0] != statuses[1] || statuses[0] == demopay.StatusRequiresPayment {
			t.Errorf("the two payments were answered %q", statuses)
		}
		waitFor(t, "the delivery is recorded", func() bool {
			v := intentView(t, a.provider, in.ID)
			return len(v.Events) > 0 && v.Events[0].Delivered != nil
		})
		time.Sleep(10 * fastRetry.Max) // time for a second delivery, had one started
		requests, events, _ := r.state()
		if v := intentView(t, a.provider, in.ID); requests != 1 || len(events) != 1 || len(v.Events) != 1 || v.Status != statuses[0] {
			t.Errorf("%d requests, events delivered %+v, recorded %+v, status %s; want one event of status %s",
				requests, events, v.Events, v.Status, statuses[0])
		}
	})
}

// A delivery gives up once it has waited Retry.GiveUpAfter: the shop that
// never answers is not called for ever.
func TestDeliveryGivesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newReceiver(t, 0)
	r.setFailing(true)
	cfg := r.config()
	// Waits of 10, 20 and 20 ms reach the 50 ms: the 4th attempt is the last.
	cfg.Retry = demopay.Retry{First: 10 * time.Millisecond, Max: 20 * time.Millisecond, GiveUpAfter: 50 * time.Millisecond}
	a := launch(t, dbtest.NewDatabase(t, "sqlite"), cfg)
	in, err := a.provider.CreateIntent(ctx, intentRequest("k1", 100))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.provider.Pay(ctx, in.ID, demopay.OutcomeSucceed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "4 attempts are recorded", func() bool {
		v := intentView(t, a.provider, in.ID)
		return len(v.Events) == 1 && v.Events[0].Attempts >= 4
	})
	time.Sleep(500 * time.Millisecond) // time for a 5th attempt, were there one
	v := intentView(t, a.provider, in.ID)
	if requests, _, _ := r.state(); requests != 4 || v.Events[0].Attempts != 4 || v.Events[0].Delivered != nil ||
		!strings.Contains(v.Events[0].LastError, "503") {
		t.Errorf("%d requests, event %+v; want 4 failed attempts, the last error recorded", requests, v.Events[0])
	}
}
