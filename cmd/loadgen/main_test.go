package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/web"
)

// fakeShop imitates the shop's checkout and webhook, to test the load
// generator's own counting: the n-th checkout to arrive (from 1) is out of
// stock when n%4 == 2, fails with a 500 when n%4 == 3, and is answered a
// payment id otherwise. It is not a test of the shop.
type fakeShop struct {
	restocks, checkouts, paid, failed, bad atomic.Int64
}

func (f *fakeShop) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /restock", func(w http.ResponseWriter, r *http.Request) {
		f.restocks.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"restocked": 1}`)
	})
	mux.HandleFunc("POST /checkout/{key}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ProductID int64 `json:"product_id"`
			Quantity  int   `json:"quantity"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ProductID != 7 || body.Quantity != 1 ||
			!strings.HasPrefix(r.PathValue("key"), "load-") {
			f.bad.Add(1)
			http.Error(w, `{"error": "bad request"}`, http.StatusBadRequest)
			return
		}
		n := f.checkouts.Add(1)
		switch n % 4 {
		case 2:
			http.Error(w, `{"error": "Widget is not available in that quantity"}`, http.StatusConflict)
		case 3:
			http.Error(w, `{"error": "internal error"}`, http.StatusInternalServerError)
		default:
			io.WriteString(w, "pay-"+strconv.FormatInt(n, 10))
		}
	})
	mux.HandleFunc("POST /payment_webhook/{payment_id}/{status}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("status") {
		case "paid":
			f.paid.Add(1)
		case "failed":
			f.failed.Add(1)
		default:
			f.bad.Add(1)
			http.Error(w, `{"error": "bad status"}`, http.StatusBadRequest)
			return
		}
		io.WriteString(w, "42")
	})
	return mux
}

// noEnv is an environment without WEBHOOK_SECRET or OPERATOR_TOKEN.
func noEnv(string) string { return "" }

func runJSON(t *testing.T, ctx context.Context, args ...string) report {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, append(args, "-json"), noEnv, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("the JSON report: %v\n%s", err, stdout.String())
	}
	return rep
}

func checkOrdered(t *testing.T, name string, l latency) {
	t.Helper()
	if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("%s percentiles out of order: %+v", name, l)
	}
}

func checkSums(t *testing.T, rep report) {
	t.Helper()
	if rep.Attempted != rep.Started+rep.Dropped {
		t.Errorf("attempted %d != started %d + dropped %d", rep.Attempted, rep.Started, rep.Dropped)
	}
	if rep.Started != rep.Completed+rep.OutOfStock+rep.Errors+rep.Interrupted {
		t.Errorf("started %d != completed %d + out of stock %d + errors %d + interrupted %d",
			rep.Started, rep.Completed, rep.OutOfStock, rep.Errors, rep.Interrupted)
	}
	if rep.Completed != rep.Paid+rep.Refused {
		t.Errorf("completed %d != paid %d + refused %d", rep.Completed, rep.Paid, rep.Refused)
	}
	sum := 0
	for _, e := range rep.ErrorKinds {
		sum += e.Count
	}
	if sum != rep.Errors {
		t.Errorf("errors by kind add up to %d, not %d", sum, rep.Errors)
	}
}

func TestRunCounts(t *testing.T) {
	shop := &fakeShop{}
	srv := httptest.NewServer(shop.handler())
	defer srv.Close()

	// 20 starts, 1 ms apart, none dropped: at most 20 are in flight.
	rep := runJSON(t, t.Context(), "-url", srv.URL, "-rate", "1000", "-duration", "5s", "-n", "20",
		"-concurrency", "100", "-pay", "0.5", "-product", "7")

	checkSums(t, rep)
	if shop.restocks.Load() != 1 || shop.bad.Load() != 0 {
		t.Errorf("restocks %d (want 1), bad requests %d (want 0)", shop.restocks.Load(), shop.bad.Load())
	}
	if rep.Attempted != 20 || rep.Started != 20 || rep.Dropped != 0 {
		t.Errorf("attempted %d, started %d, dropped %d; want 20, 20, 0", rep.Attempted, rep.Started, rep.Dropped)
	}
	if rep.OutOfStock != 5 {
		t.Errorf("out of stock %d, want the 5 answered 409", rep.OutOfStock)
	}
	if rep.Errors != 5 || len(rep.ErrorKinds) != 1 {
		t.Errorf("errors %d %v, want the 5 answered 500 only", rep.Errors, rep.ErrorKinds)
	}
	if e := rep.ErrorKinds["checkout: HTTP 500"]; e == nil || e.Count != 5 || e.Example != "internal error" {
		t.Errorf(`"checkout: HTTP 500" = %+v, want 5 with example "internal error"`, e)
	}
	if rep.Completed != 10 || rep.Interrupted != 0 || rep.Stopped {
		t.Errorf("completed %d, interrupted %d, stopped %v; want 10, 0, false", rep.Completed, rep.Interrupted, rep.Stopped)
	}
	if int64(rep.Paid) != shop.paid.Load() || int64(rep.Refused) != shop.failed.Load() {
		t.Errorf("paid %d, refused %d; the shop saw %d paid, %d failed", rep.Paid, rep.Refused, shop.paid.Load(), shop.failed.Load())
	}
	if rep.Checkout.Count != 10 || rep.PaymentRoundTrip.Count != 10 {
		t.Errorf("latencies: %d checkouts (want the 10 answered 200), %d payments (want 10)", rep.Checkout.Count, rep.PaymentRoundTrip.Count)
	}
	checkOrdered(t, "checkout", rep.Checkout)
	checkOrdered(t, "payment round trip", rep.PaymentRoundTrip)
	if rep.Throughput <= 0 {
		t.Errorf("throughput %v, want above 0", rep.Throughput)
	}
}

func TestRunStopsWhenInterrupted(t *testing.T) {
	arrived := make(chan struct{}, 10)
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that the server notices the client hang up
		arrived <- struct{}{}
		select { // answers only when the test is over
		case <-r.Context().Done():
		case <-done:
		}
	}))
	defer srv.Close()
	defer close(done)

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel() // Ctrl-C
	}()
	rep := runJSON(t, ctx, "-url", srv.URL, "-restock=false", "-rate", "1000", "-duration", "5s", "-n", "3",
		"-concurrency", "1", "-timeout", "10s")

	checkSums(t, rep)
	if !rep.Stopped || rep.Started != 1 || rep.Interrupted != 1 || rep.Errors != 0 || rep.Completed != 0 {
		t.Errorf("stopped %v, started %d, interrupted %d, errors %d, completed %d; want true, 1, 1, 0, 0",
			rep.Stopped, rep.Started, rep.Interrupted, rep.Errors, rep.Completed)
	}
}

func TestRunRefusesRemoteURL(t *testing.T) {
	for _, u := range []string{"http://192.0.2.1:8080", "http://example.com", "http://[2001:db8::1]/", "http://0.0.0.0:8080", "ftp://127.0.0.1/"} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), []string{"-url", u}, noEnv, &stdout, &stderr)
		if err == nil {
			t.Errorf("-url %s: accepted, want refused", u)
		}
		if stdout.Len() != 0 {
			t.Errorf("-url %s: printed %q", u, stdout.String())
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://127.9.9.9", "http://[::1]:8080/", "http://localhost:8080", "https://LOCALHOST/shop/"} {
		if _, err := checkURL(u); err != nil {
			t.Errorf("-url %s: %v, want accepted", u, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if l := summarize(ds); l != (latency{Count: 100, P50: 50, P90: 90, P99: 99, Max: 100}) {
		t.Errorf("1..100 ms: %+v", l)
	}
	if l := summarize([]time.Duration{3 * time.Millisecond}); l != (latency{Count: 1, P50: 3, P90: 3, P99: 3, Max: 3}) {
		t.Errorf("one: %+v", l)
	}
	if l := summarize(nil); l != (latency{}) {
		t.Errorf("none: %+v", l)
	}
}

func TestPrint(t *testing.T) {
	rep := report{URL: "http://127.0.0.1:1", Attempted: 5, Started: 3, Dropped: 2, Errors: 1,
		ErrorKinds: map[string]*errorKind{"payment: HTTP 500": {Count: 1, Example: "internal error"}}}
	var b bytes.Buffer
	if err := rep.print(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dropped 2 (the server was slower than -rate)", "checkout", "payment round trip",
		"payment: HTTP 500", "e.g. internal error"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, b.String())
		}
	}
}

// strictShop imitates the shop as the closed loop sees it, in its
// production settings: a webhook secret and an operator token, stock that
// runs out (a restock tops it up to 5), every failEvery-th checkout
// answered 500, and a dispatch that keeps a workflow pending for the next
// two polls of /api/workflows after each payment (an older build's
// checkout) and its order paid and not dispatched for the next two reads
// of /metrics (widgetstore-5's sweep). It is not a test of the shop: it
// checks loadgen's requests and counts them.
type strictShop struct {
	secret, token string
	failEvery     int

	mu                                      sync.Mutex
	stock, pendingPolls, undispatchedPolls  int
	checkouts, fails, outOfStock, paid      int
	restocks, unsigned, unauthorized, polls int
	checkoutsAnswered                       int
}

func (f *strictShop) handler() http.Handler {
	mux := http.NewServeMux()
	operator := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			f.unauthorized++
			http.Error(w, `{"error": "this is for the operator"}`, http.StatusUnauthorized)
			return false
		}
		return true
	}
	mux.HandleFunc("POST /restock", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if operator(w, r) {
			f.restocks++
			f.stock = max(f.stock, 5) // tops up, as the shop does
			io.WriteString(w, `{"restocked": 1}`)
		}
	})
	mux.HandleFunc("POST /checkout/{key}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.checkouts++
		switch {
		case f.failEvery > 0 && f.checkouts%f.failEvery == 0:
			f.fails++
			http.Error(w, `{"error": "internal error"}`, http.StatusInternalServerError)
		case f.stock == 0:
			f.outOfStock++
			http.Error(w, `{"error": "Widget is not available in that quantity"}`, http.StatusConflict)
		default:
			f.stock--
			f.checkoutsAnswered++
			io.WriteString(w, "pay-"+r.PathValue("key"))
		}
	})
	mux.HandleFunc("POST /payment_webhook/{payment_id}/{status}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		id, status := r.PathValue("payment_id"), r.PathValue("status")
		if r.Header.Get("Webhook-Signature") != web.SignWebhook([]byte(f.secret), id, status) {
			f.unsigned++
			http.Error(w, `{"error": "missing or wrong Webhook-Signature"}`, http.StatusUnauthorized)
			return
		}
		if status == "paid" && strings.HasPrefix(id, "pay-load-") {
			f.paid++
			f.pendingPolls, f.undispatchedPolls = 2, 2
		}
		io.WriteString(w, "42")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !operator(w, r) {
			return
		}
		dispatched := f.paid
		if f.undispatchedPolls > 0 {
			f.undispatchedPolls--
			dispatched--
		}
		fmt.Fprintf(w, "# TYPE widgetstore_orders_settled_total counter\nwidgetstore_orders_settled_total{outcome=\"dispatched\"} %d\n"+
			"widgetstore_orders_settled_total{outcome=\"paid\"} %d\n", dispatched, f.paid)
	})
	mux.HandleFunc("GET /api/workflows", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !operator(w, r) || r.URL.Query().Get("status") != "PENDING" {
			return
		}
		f.polls++
		if f.pendingPolls > 0 {
			f.pendingPolls--
			io.WriteString(w, `[{"id": "load-x:dispatch", "status": "PENDING"}]`)
			return
		}
		io.WriteString(w, `[]`)
	})
	return mux
}

// env is an environment holding only the given variables.
func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func runSweepJSON(t *testing.T, getenv func(string) string, args ...string) sweepReport {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), append(args, "-json"), getenv, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	var rep sweepReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("the JSON report: %v\n%s", err, stdout.String())
	}
	return rep
}

func TestClosedLoopCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		warmup    int
		failEvery int
		stock     int
	}{
		{"errors and restocks, no warm-up", 0, 7, 0},
		{"warm-up", 2, 0, 1 << 30}, // a warm-up whose purchases all succeed, so they can be counted
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			shop := &strictShop{secret: "s3cret", token: "t0ken", failEvery: tt.failEvery, stock: tt.stock}
			srv := httptest.NewServer(shop.handler())
			defer srv.Close()

			const customers = 3
			rep := runSweepJSON(t, env(map[string]string{"WEBHOOK_SECRET": shop.secret, "OPERATOR_TOKEN": shop.token}),
				"-url", srv.URL, "-customers", strconv.Itoa(customers), "-duration", "300ms", "-warmup", strconv.Itoa(tt.warmup))

			if len(rep.Runs) != 1 {
				t.Fatalf("%d runs, want 1", len(rep.Runs))
			}
			r := rep.Runs[0]
			shop.mu.Lock()
			defer shop.mu.Unlock()
			if shop.unsigned != 0 || shop.unauthorized != 0 {
				t.Errorf("the shop refused %d webhooks as unsigned and %d operator calls, want none", shop.unsigned, shop.unauthorized)
			}
			if shop.checkoutsAnswered != shop.paid {
				t.Errorf("%d checkouts answered a payment id, %d paid: every purchase must reach its webhook", shop.checkoutsAnswered, shop.paid)
			}
			if warm := tt.warmup * customers; r.Completed+warm != shop.paid {
				t.Errorf("completed %d + %d warm-up purchases, the shop saw %d paid", r.Completed, warm, shop.paid)
			}
			if r.Errors != shop.fails || (shop.fails > 0 && r.ErrorKinds["checkout: HTTP 500"].Count != shop.fails) {
				t.Errorf("errors %d %v, the shop answered %d checkouts 500", r.Errors, r.ErrorKinds, shop.fails)
			}
			if tt.warmup == 0 && (r.OutOfStock != shop.outOfStock || r.Restocks != shop.restocks) {
				t.Errorf("out of stock %d, restocks %d; the shop saw %d and %d", r.OutOfStock, r.Restocks, shop.outOfStock, shop.restocks)
			}
			if tt.stock == 0 && (r.OutOfStock == 0 || r.Restocks == 0) {
				t.Errorf("out of stock %d, restocks %d: a shelf of 5 must run out and be restocked", r.OutOfStock, r.Restocks)
			}
			if r.Checkout.Count != r.Completed || r.Webhook.Count != r.Completed || r.Purchase.Count != r.Completed {
				t.Errorf("latencies of %d checkouts, %d webhooks, %d purchases; want the %d completed",
					r.Checkout.Count, r.Webhook.Count, r.Purchase.Count, r.Completed)
			}
			checkOrdered(t, "purchase", r.Purchase)
			if r.Purchase.P50 < r.Checkout.P50 {
				t.Errorf("purchase p50 %v below checkout p50 %v: a purchase holds its checkout", r.Purchase.P50, r.Checkout.P50)
			}
			if r.CompletedInWindow > r.Completed || r.CompletedInWindow == 0 {
				t.Errorf("completed in the window %d, of %d", r.CompletedInWindow, r.Completed)
			}
			if want := float64(r.CompletedInWindow) / 0.3; math.Abs(r.PurchasesPerSecond-want) > 1e-6 {
				t.Errorf("purchases/s %v, want %d / 0.3 s = %v", r.PurchasesPerSecond, r.CompletedInWindow, want)
			}
			if r.PendingAfterWait != 0 || r.DispatchWaitSeconds < 0.3 {
				t.Errorf("pending after the wait %d, waited %.2f s; want 0 after two polls 200 ms apart", r.PendingAfterWait, r.DispatchWaitSeconds)
			}
			if r.ShopCPUMs != nil || r.CommitsPerPurchase != nil {
				t.Errorf("counters against -url, which loadgen did not start: %+v", r)
			}
		})
	}
}

func TestClosedLoopWithoutSecrets(t *testing.T) {
	t.Parallel()
	shop := &strictShop{secret: "s3cret", token: "t0ken", stock: 1000}
	srv := httptest.NewServer(shop.handler())
	defer srv.Close()

	// Without WEBHOOK_SECRET and OPERATOR_TOKEN a shop in production
	// refuses loadgen's payments and its operator's calls, and says why.
	rep := runSweepJSON(t, noEnv, "-url", srv.URL, "-customers", "2", "-duration", "100ms", "-warmup", "0")
	r := rep.Runs[0]
	if r.Completed != 0 {
		t.Errorf("completed %d, want none", r.Completed)
	}
	for _, kind := range []string{"webhook: HTTP 401", "dispatch wait"} {
		if r.ErrorKinds[kind] == nil {
			t.Errorf("no %q among the errors %v", kind, r.ErrorKinds)
		}
	}
	if e := r.ErrorKinds["webhook: HTTP 401"]; e != nil && e.Example != "missing or wrong Webhook-Signature" {
		t.Errorf("example %q", e.Example)
	}
}

func TestSignWebhookIsTheShops(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ secret, id, status string }{
		{"s3cret", "pay-123", "paid"},
		{"another", "b9f2c0", "failed"},
		{"ünïcode ✓", "id/with/slashes", "paid"},
	} {
		if got, want := signWebhook([]byte(tt.secret), tt.id, tt.status), web.SignWebhook([]byte(tt.secret), tt.id, tt.status); got != want {
			t.Errorf("signWebhook(%q, %q, %q) = %s, the shop wants %s", tt.secret, tt.id, tt.status, got, want)
		}
	}
}

// executable makes an empty executable file to stand for a shop binary.
func executable(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	a, b := executable(t, "a"), executable(t, "widgetstore")
	notExecutable := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(notExecutable, nil, 0o644)

	refused := []struct {
		args []string
		want string // in the error
	}{
		{[]string{"-customers", "8", "-rate", "5"}, "-rate"},
		{[]string{"-customers", "0"}, "-customers"},
		{[]string{"-customers", "1,x"}, "-customers"},
		{[]string{"-shop", a}, "-shop makes no sense without -customers"},
		{[]string{"-customers", "8", "-engine", "postgres"}, "-engine makes no sense without -shop"},
		{[]string{"-customers", "8", "-shop", a, "-url", "http://127.0.0.1:1"}, "-url"},
		{[]string{"-customers", "8", "-shop", a, "-engine", "mysql"}, "-engine"},
		{[]string{"-customers", "8", "-shop", a, "-engine", "sqlite,sqlite"}, "twice"},
		{[]string{"-customers", "8", "-shop", "x=" + a + ",x=" + b}, "twice"},
		{[]string{"-customers", "8", "-shop", a + "," + a}, "twice"},
		{[]string{"-customers", "8", "-shop", "/no/such/widgetstore"}, "no such file"},
		{[]string{"-customers", "8", "-shop", notExecutable}, "not an executable"},
		{[]string{"-customers", "8", "-shop", a, "-rounds", "0"}, "-rounds"},
		{[]string{"-customers", "8", "-shop", a, "-engine", "postgres", "-pg-admin-url", "postgres://postgres@192.0.2.1/postgres"}, "not a loopback"},
		{[]string{"-customers", "8", "-url", "http://example.com"}, "not a loopback"},
	}
	for _, tt := range refused {
		_, err := parseConfig(tt.args, noEnv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one about %q", tt.args, err, tt.want)
		}
	}

	cfg, err := parseConfig([]string{"-customers", "1, 8", "-shop", "old=" + a + ",new=" + b, "-engine", "postgres,sqlite",
		"-rounds", "2", "-shop-args", " -dispatch-interval  10ms ", "-pg-admin-url", "postgres://postgres@localhost/postgres"},
		env(map[string]string{"WEBHOOK_SECRET": "w", "OPERATOR_TOKEN": "o"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{customers: []int{1, 8}, shops: []shopBinary{{Label: "old", Path: a}, {Label: "new", Path: b}}, engines: []string{"postgres", "sqlite"},
		rounds: 2, shopArgs: []string{"-dispatch-interval", "10ms"}, webhookSecret: []byte("w"), operatorToken: "o"}
	got := config{customers: cfg.customers, shops: cfg.shops, engines: cfg.engines, rounds: cfg.rounds, shopArgs: cfg.shopArgs,
		webhookSecret: cfg.webhookSecret, operatorToken: cfg.operatorToken}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", got, want)
	}
	cfg, err = parseConfig([]string{"-customers", "4", "-shop", b}, noEnv, io.Discard)
	if err != nil || cfg.shops[0].Label != "widgetstore" || !reflect.DeepEqual(cfg.engines, []string{"sqlite"}) {
		t.Errorf("an unlabelled binary: %+v, %v; want labelled widgetstore, on sqlite", cfg.shops, err)
	}
}

func TestPlanRunsInterleaves(t *testing.T) {
	t.Parallel()
	cfg := config{customers: []int{1, 8}, engines: []string{"sqlite", "postgres"}, rounds: 2,
		shops: []shopBinary{{Label: "a"}, {Label: "b"}}}
	var got []string
	for _, s := range planRuns(cfg) {
		got = append(got, fmt.Sprintf("%d %s %d %s", s.round, s.engine, s.customers, s.shop.Label))
	}
	want := []string{
		"1 sqlite 1 a", "1 sqlite 1 b", "1 sqlite 8 a", "1 sqlite 8 b",
		"1 postgres 1 a", "1 postgres 1 b", "1 postgres 8 a", "1 postgres 8 b",
		"2 sqlite 1 b", "2 sqlite 1 a", "2 sqlite 8 b", "2 sqlite 8 a",
		"2 postgres 1 b", "2 postgres 1 a", "2 postgres 8 b", "2 postgres 8 a",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runs\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDemoRunsOnPostgresOnly: a -shop labelled demo is DBOS's demo, which
// needs PostgreSQL: its runs are planned on PostgreSQL only, beside the
// others', and a comparison without PostgreSQL is refused.
func TestDemoRunsOnPostgresOnly(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "widget-store")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	if _, err := parseConfig([]string{"-customers", "32", "-shop", "demo=" + bin + ",shop=" + bin}, noEnv, io.Discard); err == nil || !strings.Contains(err.Error(), "-engine postgres") {
		t.Errorf("the demo on SQLite only: %v, want refused, saying to add -engine postgres", err)
	}
	cfg, err := parseConfig([]string{"-customers", "32", "-shop", "demo=" + bin + ",shop=" + bin, "-engine", "sqlite,postgres", "-rounds", "2"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.shops[0].Demo || cfg.shops[1].Demo {
		t.Errorf("shops %+v: want demo marked as DBOS's demo, shop not", cfg.shops)
	}
	var got []string
	for _, s := range planRuns(cfg) {
		got = append(got, fmt.Sprintf("%d %s %s", s.round, s.engine, s.shop.Label))
	}
	want := []string{"1 sqlite shop", "1 postgres demo", "1 postgres shop", "2 sqlite shop", "2 postgres shop", "2 postgres demo"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runs %q, want %q", got, want)
	}
}

func TestSweepPrint(t *testing.T) {
	t.Parallel()
	rep := sweepReport{Product: 1, Duration: "10s", Warmup: 2, Window: windowNote, Runs: []runRow{
		{Round: 1, Binary: "old", Engine: "sqlite", Customers: 8, Completed: 400, PurchasesPerSecond: 39.5,
			Checkout: latency{Count: 400, P50: 12.25, P99: 80}, ShopCPUMs: ptr(800.0), ShopCPUMsPerPurchase: ptr(2.0),
			Errors: 3, ErrorKinds: map[string]*errorKind{"webhook: HTTP 500": {Count: 3, Example: "internal error"}}},
		{Round: 1, Binary: "old", Engine: "postgres", Customers: 8, Completed: 500, PurchasesPerSecond: 50,
			ShopCPUMsPerPurchase: ptr(1.5), PGCPUMsPerPurchase: ptr(4.25), PGBackendCPUMsPerPurchase: ptr(3.0),
			Commits: ptr(int64(27500)), CommitsPerPurchase: ptr(55.0), WALBytesPerPurchase: ptr(80000.0),
			DatabaseWALBytesPerPurchase: ptr(30000.0), DatabaseFPIBytesPerPurchase: ptr(2000.0),
			OtherDatabasesCommits: ptr(int64(9000)), Checkpoints: ptr(int64(3)), ErrorKinds: map[string]*errorKind{},
			StatementsPerPurchase: ptr(290.0), Statements: []statement{{Query: "INSERT INTO\n\t\"dbos\".operation_outputs (a, b)", Calls: 14000}}},
		{Round: 1, Binary: "new", Engine: "postgres", Customers: 8, Failed: "the shop exited before serving\nits log: ..."},
	}}
	var b bytes.Buffer
	if err := rep.print(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"end of the wait for its dispatches",
		"12.2/80.0", "2.00", // sqlite: latencies and the shop's CPU per purchase
		"1.50     3.00    4.25    55.0   30000    2000   80000      0", // postgres: every counter
		"failed: the shop exited before serving",
		"run 1 (old sqlite C=8, round 1): errors by kind", "webhook: HTTP 500      3  e.g. internal error",
		"run 2 (old postgres C=8, round 1): other databases committed 9000 transactions",
		"run 2 (old postgres C=8, round 1): 3 checkpoints during the run",
		"run 2 (old postgres C=8, round 1): 290.0 statements per purchase", `    28.0  INSERT INTO "dbos".operation_outputs (a, b)`,
		"run 3 (new postgres C=8, round 1) failed: the shop exited before serving\nits log: ...",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	// SQLite has no PostgreSQL counters: dashes, not zeros.
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "old    sqlite") && !strings.Contains(line, "2.00        -       -       -       -       -       -      3") {
			t.Errorf("the SQLite row should show dashes for PostgreSQL's counters: %q", line)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	// The command name may hold spaces and parentheses.
	line := "4242 (post (gres) x) S 77 3 4 0 -1 4194560 100 0 0 0 150 50 20 10 20 0 1 0 12345 0 0\n"
	st, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{comm: "post (gres) x", ppid: 77, cpu: 2 * time.Second, childCPU: 300 * time.Millisecond}
	if st != want {
		t.Errorf("parsed %+v, want %+v", st, want)
	}
	if _, err := parseProcStat("4242 (short) S 1 2"); err == nil {
		t.Error("a short line: parsed, want an error")
	}
	if st, err := readProcStat(os.Getpid()); err != nil || st.ppid != os.Getppid() {
		t.Errorf("this process: %+v, %v; want its parent %d", st, err, os.Getppid())
	}
}

func TestCPUSince(t *testing.T) {
	t.Parallel()
	then := map[int]time.Duration{1: 10 * time.Millisecond, 2: 5 * time.Millisecond}
	now := map[int]time.Duration{1: 30 * time.Millisecond, 3: 7 * time.Millisecond} // 2 died, 3 was born
	if got := cpuSince(then, now); got != 27*time.Millisecond {
		t.Errorf("cpuSince = %v, want 20 ms + 7 ms", got)
	}
}

func TestLSN(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"16/B374D848", "0/0", "FFFFFFFF/FFFFFFFF"} {
		lsn, err := parseLSN(s)
		if err != nil || formatLSN(lsn) != s {
			t.Errorf("%s: parsed %x (%v), formatted back %s", s, lsn, err, formatLSN(lsn))
		}
	}
	if lsn, _ := parseLSN("16/B374D848"); lsn != 0x16B374D848 {
		t.Errorf("16/B374D848 = %x", lsn)
	}
	for _, s := range []string{"", "16", "16/xyz", "1/2/3"} {
		if _, err := parseLSN(s); err == nil {
			t.Errorf("%q: parsed, want an error", s)
		}
	}
}

func TestShopFlagsFor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := func(name, body string) shopBinary {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return shopBinary{Label: name, Path: path}
	}
	// A build with one of the limits, listed as the flag package does.
	newer := script("newer", `cat >&2 <<'END'
Usage of widgetstore:
  -addr string
    	address to serve on (default "127.0.0.1:8080")
  -pending-units int
    	units one client may hold (default 20)
END
exit 1
`)
	args, err := shopFlagsFor(t.Context(), newer)
	if err != nil || !reflect.DeepEqual(args, []string{"-pending-units", "0"}) {
		t.Errorf("a build with -pending-units only: %q, %v", args, err)
	}
	older := script("older", "echo 'Usage of widgetstore:' >&2; echo '  -addr string' >&2; exit 2\n")
	if args, err := shopFlagsFor(t.Context(), older); err != nil || len(args) != 0 {
		t.Errorf("a build without the limits: %q, %v; want no flags", args, err)
	}
	if _, err := shopFlagsFor(t.Context(), script("silent", "exit 0\n")); err == nil {
		t.Error("a binary that lists no flags: accepted, want an error")
	}
}
