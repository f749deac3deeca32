package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loader runs the purchases of one run.
type loader struct {
	cfg   config
	shop  *shopClient
	stats *stats
}

// loop starts purchases at the rate until the duration, the count or ctx
// ends, then waits for those in flight. It returns the time it took.
func (l *loader) loop(ctx context.Context) time.Duration {
	start := time.Now()
	interval := time.Duration(float64(time.Second) / l.cfg.rate)
	interval = max(interval, time.Microsecond)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	deadline := time.NewTimer(l.cfg.duration)
	defer deadline.Stop()

	slots := make(chan struct{}, l.cfg.concurrency)
	var wg sync.WaitGroup
starting:
	for n := 0; n < l.cfg.maxStarts; n++ {
		if n > 0 { // the first starts at once, the others on the ticker
			select {
			case <-ticker.C:
			case <-deadline.C:
				break starting
			case <-ctx.Done():
				break starting
			}
			if ctx.Err() != nil || time.Since(start) >= l.cfg.duration {
				break starting // when a tick came at the same time, it lost
			}
		}
		select {
		case slots <- struct{}{}:
			l.stats.started()
			paid := payThis(n, l.cfg.pay)
			wg.Go(func() {
				defer func() { <-slots }()
				l.purchase(ctx, paid)
			})
		default:
			l.stats.dropped()
		}
	}
	wg.Wait()
	return time.Since(start)
}

// payThis says whether the n-th purchase (from 0) is paid: exactly the
// fraction pay of the first n+1 ones are, spread evenly.
func payThis(n int, pay float64) bool {
	return math.Floor(float64(n+1)*pay) > math.Floor(float64(n)*pay)
}

// purchase checks out one widget and pays or refuses it.
func (l *loader) purchase(ctx context.Context, paid bool) {
	key := "load-" + rand.Text()

	t0 := time.Now()
	status, answer, err := l.shop.checkout(ctx, key, l.cfg.product)
	checkoutTook := time.Since(t0)
	switch {
	case err != nil:
		l.stats.failed(ctx, "checkout", err)
		return
	case status == http.StatusConflict:
		l.stats.outOfStock()
		return
	case status != http.StatusOK:
		l.stats.httpError("checkout", status, answer)
		return
	}
	paymentID := strings.TrimSpace(string(answer))
	if paymentID == "" {
		l.stats.badAnswer("checkout", "an empty payment id")
		return
	}
	l.stats.checkoutDone(checkoutTook)

	verdict := "failed"
	if paid {
		verdict = "paid"
	}
	t1 := time.Now()
	status, answer, err = l.shop.payment(ctx, paymentID, verdict)
	paymentTook := time.Since(t1)
	switch {
	case err != nil:
		l.stats.failed(ctx, "payment", err)
		return
	case status != http.StatusOK:
		l.stats.httpError("payment", status, answer)
		return
	}
	if _, err := strconv.ParseInt(strings.TrimSpace(string(answer)), 10, 64); err != nil {
		l.stats.badAnswer("payment", fmt.Sprintf("order id %q is not a number", truncate(string(answer))))
		return
	}
	l.stats.paymentDone(paymentTook, paid)
}

// stats gathers the outcome of every purchase.
type stats struct {
	mu          sync.Mutex
	nAttempted  int
	nDropped    int
	nStarted    int
	nOutOfStock int
	nErrors     int
	nPaid       int
	nRefused    int
	nCancelled  int // interrupted by ctx
	checkout    []time.Duration
	payment     []time.Duration
	errors      map[string]*errorKind
}

func newStats() *stats { return &stats{errors: make(map[string]*errorKind)} }

func (s *stats) started() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nAttempted++
	s.nStarted++
}

func (s *stats) dropped() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nAttempted++
	s.nDropped++
}

func (s *stats) outOfStock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nOutOfStock++
}

func (s *stats) checkoutDone(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checkout = append(s.checkout, d)
}

func (s *stats) paymentDone(d time.Duration, paid bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.payment = append(s.payment, d)
	if paid {
		s.nPaid++
	} else {
		s.nRefused++
	}
}

// failed records a call that got no answer: interrupted when ctx ended,
// else a timeout or a transport error.
func (s *stats) failed(ctx context.Context, call string, err error) {
	if ctx.Err() != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.nCancelled++
		return
	}
	kind := call + ": transport error"
	if errors.Is(err, context.DeadlineExceeded) {
		kind = call + ": timeout"
	}
	s.record(kind, err.Error())
}

func (s *stats) httpError(call string, status int, answer []byte) {
	s.record(fmt.Sprintf("%s: HTTP %d", call, status), errorMessage(answer))
}

func (s *stats) badAnswer(call, what string) {
	s.record(call+": bad answer", what)
}

func (s *stats) record(kind, example string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nErrors++
	countError(s.errors, kind, example, 1)
}

// report is what a run measured. The counts add up:
// attempted = started + dropped, and
// started = completed + out_of_stock + errors + interrupted.
type report struct {
	URL         string  `json:"url"`
	Product     int64   `json:"product_id"`
	Rate        float64 `json:"rate"`
	Duration    string  `json:"duration"`
	Concurrency int     `json:"concurrency"`
	Pay         float64 `json:"pay"`

	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Attempted      int     `json:"attempted"`
	Started        int     `json:"started"`
	Dropped        int     `json:"dropped"`
	Completed      int     `json:"completed"`
	Paid           int     `json:"paid"`
	Refused        int     `json:"refused"`
	OutOfStock     int     `json:"out_of_stock"`
	Errors         int     `json:"errors"`
	Interrupted    int     `json:"interrupted"`
	Stopped        bool    `json:"stopped_early"`
	Throughput     float64 `json:"throughput_per_second"` // completed purchases per second

	Checkout         latency               `json:"checkout"`
	PaymentRoundTrip latency               `json:"payment_round_trip"`
	ErrorKinds       map[string]*errorKind `json:"error_kinds"`
}

func (s *stats) report(cfg config, elapsed time.Duration, stopped bool) report {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := report{
		URL: cfg.baseURL, Product: cfg.product, Rate: cfg.rate, Duration: cfg.duration.String(),
		Concurrency: cfg.concurrency, Pay: cfg.pay,
		ElapsedSeconds: elapsed.Seconds(),
		Attempted:      s.nAttempted, Started: s.nStarted, Dropped: s.nDropped,
		Completed: s.nPaid + s.nRefused, Paid: s.nPaid, Refused: s.nRefused,
		OutOfStock: s.nOutOfStock, Errors: s.nErrors, Interrupted: s.nCancelled, Stopped: stopped,
		Checkout:         summarize(s.checkout),
		PaymentRoundTrip: summarize(s.payment),
		ErrorKinds:       make(map[string]*errorKind, len(s.errors)),
	}
	if elapsed > 0 {
		r.Throughput = float64(r.Completed) / elapsed.Seconds()
	}
	for k, e := range s.errors {
		r.ErrorKinds[k] = &errorKind{Count: e.Count, Example: e.Example}
	}
	return r
}

// print writes the report as a fixed-width table.
func (r report) print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "widgetstore load: %s  product %d  %g checkouts/s for %s  concurrency %d  pay %g\n",
		r.URL, r.Product, r.Rate, r.Duration, r.Concurrency, r.Pay)
	if r.Stopped {
		b.WriteString("stopped early (interrupted)\n")
	}
	fmt.Fprintf(&b, "elapsed %.2fs  attempted %d  started %d  dropped %d",
		r.ElapsedSeconds, r.Attempted, r.Started, r.Dropped)
	if r.Dropped > 0 {
		b.WriteString(" (the server was slower than -rate)")
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "completed %d (paid %d, refused %d)  out of stock %d  errors %d  interrupted %d\n",
		r.Completed, r.Paid, r.Refused, r.OutOfStock, r.Errors, r.Interrupted)
	fmt.Fprintf(&b, "throughput %.2f completed purchases/s\n\n", r.Throughput)

	const row = "%-20s %7s %10s %10s %10s %10s\n"
	fmt.Fprintf(&b, row, "latency (ms)", "count", "p50", "p90", "p99", "max")
	f := func(ms float64) string { return strconv.FormatFloat(ms, 'f', 1, 64) }
	for _, call := range []struct {
		name string
		l    latency
	}{{"checkout", r.Checkout}, {"payment round trip", r.PaymentRoundTrip}} {
		fmt.Fprintf(&b, row, call.name, strconv.Itoa(call.l.Count), f(call.l.P50), f(call.l.P90), f(call.l.P99), f(call.l.Max))
	}

	if len(r.ErrorKinds) > 0 {
		b.WriteString("\nerrors by kind:\n")
		kinds := slices.Sorted(maps.Keys(r.ErrorKinds))
		width := 0
		for _, k := range kinds {
			width = max(width, len(k))
		}
		for _, k := range kinds {
			fmt.Fprintf(&b, "  %-*s %6d  e.g. %s\n", width, k, r.ErrorKinds[k].Count, r.ErrorKinds[k].Example)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
