package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/checkout/checkouttest"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/logtest"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/demopay"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/receipt/smtptest"
	"github.com/widgetstore/widgetstore/internal/store"
	"github.com/widgetstore/widgetstore/internal/web"
)

// testConfig: a short dispatch, so a paid order is dispatched in the test.
var testConfig = checkout.Config{PaymentTimeout: 30 * time.Second, DispatchSteps: 3, DispatchInterval: 50 * time.Millisecond}

type testServer struct {
	URL     string
	db      *store.DB
	co      *checkout.Checkout
	dbos    dbos.Context      // the shop's DBOS context (startVersion4)
	demo    *demopay.Provider // the payment provider carts are paid through
	crashed chan struct{}     // receives when the crash button is pressed
	logs    *logtest.Buffer   // everything logged, as text, besides the test's log
}

// newTestServer serves the shop on a real HTTP server over a fresh
// database at url, with DBOS launched on it. The crash button only reports
// that it was pressed.
func newTestServer(t testing.TB, url string, cfg checkout.Config) *testServer {
	return newTestServerWith(t, url, cfg, web.Options{})
}

// newTestServerWith is newTestServer with the secrets in opts.
func newTestServerWith(t testing.TB, url string, cfg checkout.Config, opts web.Options) *testServer {
	t.Helper()
	return newTestServerWrapped(t, url, cfg, opts, nil)
}

// newTestServerMailing is newTestServer with receipts sent to a real SMTP
// server, which it returns.
func newTestServerMailing(t testing.TB, url string, cfg checkout.Config) (*testServer, *smtptest.Server) {
	t.Helper()
	mail := smtptest.Start(t, smtptest.Options{})
	sender, err := receipt.NewSender(mail.URL("shop@example.com"), dbtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return newTestServerLaunched(t, url, checkout.LaunchConfig{Checkout: cfg, Receipts: sender}, web.Options{}, nil), mail
}

// newTestServerWrapped is newTestServerWith with the shop's handler inside
// wrap, unless wrap is nil.
func newTestServerWrapped(t testing.TB, url string, cfg checkout.Config, opts web.Options, wrap func(http.Handler) http.Handler) *testServer {
	t.Helper()
	return newTestServerLaunched(t, url, checkout.LaunchConfig{Checkout: cfg}, opts, wrap)
}

// newTestServerLaunched is newTestServerWrapped with the shop's workflows
// launched with launch.
func newTestServerLaunched(t testing.TB, url string, launch checkout.LaunchConfig, opts web.Options, wrap func(http.Handler) http.Handler) *testServer {
	t.Helper()
	return newTestServerPaying(t, url, launch, opts, wrap, launchDemoPay(nil))
}

// launchShop launches the shop's workflows on a fresh database at url with
// a payment provider, whose events, signed with secret, go to webhookURL.
// It returns the provider's pages to serve (nil for none), and the demo
// provider when that is the one.
type launchShop func(t testing.TB, url string, launch checkout.LaunchConfig, webhookURL, secret string) (*store.DB, *checkout.Checkout, http.Handler, *demopay.Provider)

// launchDemoPay launches the shop with the demo provider, as it serves by
// default, the provider the checkout calls inside wrap (unless nil).
func launchDemoPay(wrap func(payment.Provider) payment.Provider) launchShop {
	return func(t testing.TB, url string, launch checkout.LaunchConfig, webhookURL, secret string) (*store.DB, *checkout.Checkout, http.Handler, *demopay.Provider) {
		db, co, demo := checkouttest.LaunchDemoPayWrapped(t, url, launch,
			demopay.Config{WebhookURL: webhookURL, SigningSecret: secret,
				Retry: demopay.Retry{First: 50 * time.Millisecond, Max: 200 * time.Millisecond, GiveUpAfter: time.Minute}}, wrap)
		return db, co, demo.Handler(), demo
	}
}

// newTestServerPaying is newTestServerLaunched with the provider that
// launchShop gives.
func newTestServerPaying(t testing.TB, url string, launch checkout.LaunchConfig, opts web.Options, wrap func(http.Handler) http.Handler, launchShop launchShop) *testServer {
	t.Helper()
	logs := &logtest.Buffer{}
	logger := slog.New(teeHandler{dbtest.Logger(t).Handler(),
		slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})})
	// The provider delivers its events to this server, which listens
	// from here on.
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	secrets := []string{"whsec_test"}
	for _, s := range opts.WebhookSecrets {
		secrets = append(secrets, string(s))
	}
	launch.ExecutorID, launch.Logger = "test", logger
	var dbosCtx dbos.Context // the shop's, for startVersion4
	register := launch.Register
	launch.Register = func(ctx dbos.Context) error {
		dbosCtx = ctx
		if register != nil {
			return register(ctx)
		}
		return nil
	}
	db, co, pages, demo := launchShop(t, url, launch, "http://"+srv.Listener.Addr().String()+"/api/payment_events", secrets[len(secrets)-1])
	verifier, err := payment.NewVerifier(secrets, 0)
	if err != nil {
		t.Fatal(err)
	}
	crashed := make(chan struct{}, 10)
	opts.CrashFunc = func() { crashed <- struct{}{} }
	opts.Events, opts.ProviderPages = verifier, pages
	var handler http.Handler = web.NewServer(logger, db, co, opts)
	if wrap != nil {
		handler = wrap(handler)
	}
	srv.Config.Handler = handler
	srv.Start()
	return &testServer{URL: srv.URL, db: db, co: co, dbos: dbosCtx, demo: demo, crashed: crashed, logs: logs}
}

// startVersion4 starts a checkout of one widget under key as widgetstore-4
// started its own (its input's Version 4, which dispatches its order
// itself: checkout.markDispatched), through DBOS's internal queue, as a
// checkout in flight from the previous release is run here; it returns the
// payment id of its order once placed.
func (s *testServer) startVersion4(t testing.TB, key string) (paymentID string) {
	t.Helper()
	in := map[string]any{"ProductID": 1, "Quantity": 1, "Version": 4}
	if _, err := dbos.Enqueue[checkout.Result](s.dbos, "_dbos_internal_queue", checkout.WorkflowCheckout, in,
		dbos.WithEnqueueWorkflowID(key), dbos.WithEnqueueApplicationVersion(checkout.ApplicationVersion)); err != nil {
		t.Fatalf("starting checkout %s of version 4: %v", key, err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		order, err := store.OrderByCheckoutID(context.Background(), s.db.Q(), key)
		if err == nil {
			return order.PaymentID
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkout %s of version 4 placed no order in 20 s: %v", key, err)
		}
	}
}

// teeHandler hands every record to both handlers.
type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.a.Enabled(ctx, level) || h.b.Enabled(ctx, level)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, handler := range []slog.Handler{h.a, h.b} {
		if handler.Enabled(ctx, r.Level) {
			errs = append(errs, handler.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (h teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(attrs), h.b.WithAttrs(attrs)}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h.a.WithGroup(name), h.b.WithGroup(name)}
}

type response struct {
	status      int
	contentType string
	csp         string
	header      http.Header
	body        string
}

func (s *testServer) do(t testing.TB, method, path, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"),
		csp: resp.Header.Get("Content-Security-Policy"), header: resp.Header, body: string(b)}
}

// snapshot is what a bad request must leave as it was.
func (s *testServer) snapshot(t testing.TB) string {
	t.Helper()
	r := s.do(t, "GET", "/api/products", "")
	o := s.do(t, "GET", "/orders", "")
	return r.body + o.body
}

func TestSeedFlow(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServer(t, url, testConfig)

		r := s.do(t, "GET", "/product", "")
		var product struct {
			ID        int64   `json:"product_id"`
			Name      string  `json:"product"`
			Inventory int     `json:"inventory"`
			Price     float64 `json:"price"`
		}
		if err := json.Unmarshal([]byte(r.body), &product); err != nil || r.status != 200 {
			t.Fatalf("GET /product: %d %s", r.status, r.body)
		}
		if product.Name != "Premium Quality Widget" || product.Price != 99.99 || product.Inventory != 100 {
			t.Errorf("GET /product = %+v", product)
		}

		// The seed's client sends no body: one widget.
		r = s.do(t, "POST", "/checkout/seed-key-1", "")
		if r.status != 200 || !strings.HasPrefix(r.contentType, "text/plain") || r.body == "" {
			t.Fatalf("checkout: %d %q %s", r.status, r.contentType, r.body)
		}
		paymentID := r.body
		if again := s.do(t, "POST", "/checkout/seed-key-1", ""); again.body != paymentID {
			t.Errorf("same key again: %d %s, want payment id %s", again.status, again.body, paymentID)
		}

		r = s.do(t, "POST", "/payment_webhook/"+paymentID+"/paid", "")
		if r.status != 200 {
			t.Fatalf("webhook: %d %s", r.status, r.body)
		}
		orderID := r.body

		deadline := time.Now().Add(20 * time.Second)
		var order struct {
			Status            string `json:"status"`
			LegacyStatus      int    `json:"order_status"`
			ProgressRemaining int    `json:"progress_remaining"`
		}
		for order.Status != "DISPATCHED" && time.Now().Before(deadline) {
			r = s.do(t, "GET", "/order/"+orderID, "")
			if err := json.Unmarshal([]byte(r.body), &order); err != nil {
				t.Fatalf("GET /order/%s: %d %s", orderID, r.status, r.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if order.Status != "DISPATCHED" || order.LegacyStatus != 1 || order.ProgressRemaining != 0 {
			t.Errorf("order = %+v, want DISPATCHED (1) with nothing remaining", order)
		}

		// Three of the four products are below 100: the widget sold one.
		if r := s.do(t, "POST", "/restock", ""); r.status != 200 || r.body != "{\"restocked\":3}\n" {
			t.Errorf("restock: %d %s", r.status, r.body)
		}
		if err := json.Unmarshal([]byte(s.do(t, "GET", "/product", "").body), &product); err != nil || product.Inventory != 100 {
			t.Errorf("after restock: %+v, %v; want 100 in stock", product, err)
		}
		// An operator may ask for another level.
		if r := s.do(t, "POST", "/restock", `{"level": 5000}`); r.status != 200 || r.body != "{\"restocked\":4}\n" {
			t.Errorf("restock to 5000: %d %s", r.status, r.body)
		}
		if err := json.Unmarshal([]byte(s.do(t, "GET", "/product", "").body), &product); err != nil || product.Inventory != 5000 {
			t.Errorf("after a restock to 5000: %+v, %v", product, err)
		}
		if r := s.do(t, "POST", "/crash_application", ""); r.status != http.StatusAccepted {
			t.Errorf("crash: %d %s", r.status, r.body)
		}
		select {
		case <-s.crashed:
		default:
			t.Error("the crash button did not call the crash function")
		}
	})
}

func TestBadRequestsChangeNothing(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServer(t, url, testConfig)
		paymentID := s.do(t, "POST", "/checkout/settled", "").body
		if r := s.do(t, "POST", "/payment_webhook/"+paymentID+"/failed", ""); r.status != 200 {
			t.Fatalf("refusing the setup order: %d %s", r.status, r.body)
		}
		before := s.snapshot(t)

		tests := []struct {
			method, path, body string
			status             int
		}{
			{"POST", "/checkout/bad%20key", "", 400},
			{"POST", "/checkout/" + strings.Repeat("k", 129), "", 400},
			{"POST", "/checkout/has:colon", "", 400},
			{"POST", "/checkout/k1", `{"product_id": 1, "quantity": 0}`, 400},
			{"POST", "/checkout/k2", `{"product_id": 1, "quantity": 11}`, 400},
			{"POST", "/checkout/k3", `{"product_id": 1, "quantity": "two"}`, 400},
			{"POST", "/checkout/k4", `{"product_id": 1, "colour": "red"}`, 400},
			{"POST", "/checkout/k5", `{"product_id":`, 400},
			{"POST", "/checkout/k6", `{"product_id": 99}`, 404},
			{"POST", "/checkout/%2E", "", 400},
			{"POST", "/checkout/%2E%2E", "", 400},
			{"POST", "/checkout/k%00", "", 400},
			{"POST", "/checkout/k%FF", "", 400},
			{"POST", "/payment_webhook/pay_AAAAAAAAAAAAAAAAAAAAAAAAAA/paid", "", 404},
			{"POST", "/payment_webhook/pay_nope/paid", "", 400},
			{"POST", "/payment_webhook/pay_%00/paid", "", 400},
			{"POST", "/payment_webhook/pay_AAAAAAAAAAAAAAAAAAAAAAAAA%00/paid", "", 400},
			{"POST", "/payment_webhook/pay_%FF%FE/failed", "", 400},
			{"POST", "/payment_webhook/" + strings.ToLower(paymentID) + "/paid", "", 400},
			{"POST", "/api/workflows/k%00/resume", "", 400},
			{"POST", "/api/workflows/k%FF/resume", "", 400},
			{"POST", "/api/workflows/" + strings.Repeat("w", 257) + "/resume", "", 400},
			{"POST", "/payment_webhook/" + paymentID + "/maybe", "", 400},
			{"POST", "/payment_webhook/" + paymentID + "/paid", "", 409},
			{"GET", "/order/abc", "", 400},
			{"GET", "/order/-1", "", 400},
			{"GET", "/order/999", "", 404},
			{"POST", "/restock", `{"level": -1}`, 400},
			{"POST", "/restock", `{"level": 1e12}`, 400},
			{"POST", "/restock", `{"lvl": 5}`, 400},
		}
		for _, tt := range tests {
			start := time.Now()
			r := s.do(t, tt.method, tt.path, tt.body)
			if r.status != tt.status {
				t.Errorf("%s %s %s: status %d, want %d (%s)", tt.method, tt.path, tt.body, r.status, tt.status, r.body)
			}
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" || r.contentType != "application/json" {
				t.Errorf("%s %s: body %q (%s), want JSON {\"error\": ...}", tt.method, tt.path, r.body, r.contentType)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%s %s: answered after %v, want at once", tt.method, tt.path, d)
			}
		}
		if after := s.snapshot(t); after != before {
			t.Errorf("bad requests changed the shop:\nbefore %s\nafter  %s", before, after)
		}
	})
}

func TestPage(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), testConfig)
	for _, path := range []string{"/", "/static/app.js", "/static/style.css"} {
		if r := s.do(t, "GET", path, ""); r.status != 200 || len(r.body) < 100 {
			t.Errorf("GET %s: %d, %d bytes", path, r.status, len(r.body))
		}
	}
	r := s.do(t, "GET", "/", "")
	if !strings.Contains(r.body, `src="/static/app.js"`) {
		t.Errorf("the page does not load app.js:\n%s", r.body)
	}
	if !strings.Contains(r.csp, "default-src 'self'") {
		t.Errorf("the page's Content-Security-Policy is %q, want default-src 'self'", r.csp)
	}
}

// TestSignedWebhook: with a secret, only reports signed with it, for that
// payment and that status, are taken; the others change nothing.
func TestSignedWebhook(t *testing.T) {
	t.Parallel()
	secret := []byte("shared with the payment provider")
	s := newTestServerWith(t, dbtest.NewDatabase(t, "sqlite"), testConfig, web.Options{WebhookSecrets: [][]byte{[]byte("an older secret"), secret}})
	paymentID := s.do(t, "POST", "/checkout/signed", "").body
	before := s.snapshot(t)

	sig := web.SignWebhook(secret, paymentID, "paid")
	refused := []struct {
		name   string
		header []string
	}{
		{"unsigned", nil},
		{"signed with another secret", []string{web.SignatureHeader, web.SignWebhook([]byte("guess"), paymentID, "paid")}},
		{"signed for the other status", []string{web.SignatureHeader, web.SignWebhook(secret, paymentID, "failed")}},
		{"signed for another payment", []string{web.SignatureHeader, web.SignWebhook(secret, "pay_other", "paid")}},
		{"signature cut short", []string{web.SignatureHeader, sig[:len(sig)-1]}},
	}
	for _, tt := range refused {
		r := s.do(t, "POST", "/payment_webhook/"+paymentID+"/paid", "", tt.header...)
		if r.status != http.StatusUnauthorized || !strings.Contains(r.body, web.SignatureHeader) {
			t.Errorf("%s: %d %s, want 401 naming %s", tt.name, r.status, r.body, web.SignatureHeader)
		}
	}
	if after := s.snapshot(t); after != before {
		t.Errorf("refused reports changed the shop:\nbefore %s\nafter  %s", before, after)
	}
	if r := s.do(t, "POST", "/payment_webhook/"+paymentID+"/paid", "", web.SignatureHeader, sig); r.status != 200 {
		t.Errorf("signed report: %d %s", r.status, r.body)
	}
}

// TestErrorsAreJSON: what the routes do not know, the mux's own 404 and 405
// and the file server's 404, answers {"error": ...} like every other error,
// and a 405 still says which methods the route takes.
func TestErrorsAreJSON(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), testConfig)
	tests := []struct {
		method, path string
		status       int
		allow        string // the 405's Allow header
		message      string // in the error
	}{
		{"GET", "/no/such/route", 404, "", "not found: GET /no/such/route"},
		{"GET", "/static/no-such-file.js", 404, "", "no file"},
		{"GET", "/order/", 404, "", "not found"},
		{"POST", "/product", 405, "GET, HEAD", "method POST not allowed for /product: use GET, HEAD"},
		{"DELETE", "/checkout/some-key", 405, "POST", "method DELETE not allowed"},
		{"PUT", "/api/products", 405, "GET, HEAD", "not allowed"},
		{"GET", "/restock", 405, "POST", "not allowed"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, s.URL+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		if err := json.Unmarshal(body, &e); err != nil || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %q (%s), want JSON {\"error\": ...}", tt.method, tt.path, body, resp.Header.Get("Content-Type"))
		}
		if resp.StatusCode != tt.status || !strings.Contains(e.Error, tt.message) {
			t.Errorf("%s %s: %d %q, want %d with an error containing %q", tt.method, tt.path, resp.StatusCode, e.Error, tt.status, tt.message)
		}
		if got := resp.Header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
	// HEAD has no body, but the answer's type still says JSON.
	if r := s.do(t, "HEAD", "/no/such/route", ""); r.status != 404 || r.contentType != "application/json" {
		t.Errorf("HEAD /no/such/route: %d %s, want 404 application/json", r.status, r.contentType)
	}
	// net/http's own error answers, such as a range past a file's end.
	r := s.do(t, "GET", "/static/app.js", "", "Range", "bytes=99999999-")
	var e struct{ Error string }
	if r.status != http.StatusRequestedRangeNotSatisfiable || r.contentType != "application/json" ||
		json.Unmarshal([]byte(r.body), &e) != nil || e.Error == "" {
		t.Errorf("GET /static/app.js past its end: %d %q (%s), want 416 with a JSON error", r.status, r.body, r.contentType)
	}
}

// TestInternalErrorLoggedOnce breaks the database under the shop (its
// products table is gone): the client reads only "internal error", and the
// failure is logged once, at Error, with the request's method and path and
// the database's error.
func TestInternalErrorLoggedOnce(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), testConfig)
	if _, err := s.db.SQLite.Exec("ALTER TABLE products RENAME TO products_gone"); err != nil {
		t.Fatal(err)
	}
	r := s.do(t, "GET", "/api/products", "")
	if r.status != 500 || r.body != "{\"error\":\"internal error\"}\n" {
		t.Errorf("GET /api/products on a broken database: %d %s, want 500 internal error", r.status, r.body)
	}
	logged := s.logs.Lines("/api/products")
	if len(logged) != 1 {
		t.Fatalf("the failure was logged %d times, want once:\n%s", len(logged), strings.Join(logged, "\n"))
	}
	for _, want := range []string{"level=ERROR", "request.method=GET", "request.path=/api/products", "status=500", "no such table"} {
		if !strings.Contains(logged[0], want) {
			t.Errorf("the failure's log line lacks %q:\n%s", want, logged[0])
		}
	}
}

// TestQuantityLimitAdvertised: every product says the most one checkout may
// buy of it, and that is the limit the checkout keeps: that many is
// accepted, one more refused with 400 naming the limit.
func TestQuantityLimitAdvertised(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), testConfig)
	var products []struct {
		ID          int64 `json:"product_id"`
		Inventory   int   `json:"inventory"`
		MaxQuantity int   `json:"max_quantity"`
	}
	r := s.do(t, "GET", "/api/products", "")
	if err := json.Unmarshal([]byte(r.body), &products); err != nil || r.status != 200 || len(products) == 0 {
		t.Fatalf("GET /api/products: %d %s", r.status, r.body)
	}
	for _, p := range products {
		if p.MaxQuantity < 1 {
			t.Errorf("product %d: max_quantity %d, want the limit (at least 1)", p.ID, p.MaxQuantity)
		}
	}
	var seed struct {
		MaxQuantity int `json:"max_quantity"`
	}
	if err := json.Unmarshal([]byte(s.do(t, "GET", "/product", "").body), &seed); err != nil || seed.MaxQuantity != products[0].MaxQuantity {
		t.Errorf("GET /product: max_quantity %d (%v), want %d as in the catalog", seed.MaxQuantity, err, products[0].MaxQuantity)
	}

	p := products[0]
	if p.Inventory <= p.MaxQuantity {
		t.Fatalf("product %d has %d in stock; the test needs more than its limit %d", p.ID, p.Inventory, p.MaxQuantity)
	}
	body := func(n int) string { return fmt.Sprintf(`{"product_id": %d, "quantity": %d}`, p.ID, n) }
	if r := s.do(t, "POST", "/checkout/at-the-limit", body(p.MaxQuantity)); r.status != 200 {
		t.Errorf("checkout of max_quantity (%d): %d %s, want 200", p.MaxQuantity, r.status, r.body)
	}
	r = s.do(t, "POST", "/checkout/over-the-limit", body(p.MaxQuantity+1))
	if r.status != 400 || !strings.Contains(r.body, strconv.Itoa(p.MaxQuantity)) {
		t.Errorf("checkout of max_quantity+1 (%d): %d %s, want 400 naming the limit", p.MaxQuantity+1, r.status, r.body)
	}
}
