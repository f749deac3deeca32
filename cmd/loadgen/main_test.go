package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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

func runJSON(t *testing.T, ctx context.Context, args ...string) report {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, append(args, "-json"), &stdout, &stderr); err != nil {
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
		err := run(t.Context(), []string{"-url", u}, &stdout, &stderr)
		if err == nil {
			t.Errorf("-url %s: accepted, want refused", u)
		}
		if stdout.Len() != 0 {
			t.Errorf("-url %s: printed %q", u, stdout.String())
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://127.9.9.9", "http://[::1]:8080/", "http://localhost:8080", "https://LOCALHOST/shop/"} {
		if _, err := checkURL(u, false); err != nil {
			t.Errorf("-url %s: %v, want accepted", u, err)
		}
	}
	if _, err := checkURL("http://192.0.2.1:8080", true); err != nil {
		t.Errorf("-allow-remote: %v, want accepted", err)
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
