package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loader runs the purchases of one run.
type loader struct {
	cfg   config
	shop  *shopClient
	stats *purchaseStats
	// Counted by loop alone: every start that was due, and those dropped
	// because -concurrency were in flight.
	attempted, dropped int
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
		l.attempted++
		verdict := "failed"
		if payThis(n, l.cfg.pay) {
			verdict = "paid"
		}
		select {
		case slots <- struct{}{}:
			wg.Go(func() {
				defer func() { <-slots }()
				buy(ctx, l.shop, l.cfg.product, verdict, l.stats)
			})
		default:
			l.dropped++
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

func (l *loader) report(elapsed time.Duration, stopped bool) report {
	s := l.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	r := report{
		URL: l.cfg.baseURL, Product: l.cfg.product, Rate: l.cfg.rate, Duration: l.cfg.duration.String(),
		Concurrency: l.cfg.concurrency, Pay: l.cfg.pay,
		ElapsedSeconds: elapsed.Seconds(),
		Attempted:      l.attempted, Started: l.attempted - l.dropped, Dropped: l.dropped,
		Completed: s.nCompleted, Paid: s.nPaid, Refused: s.nCompleted - s.nPaid,
		OutOfStock: s.nOutOfStock, Errors: s.nErrors, Interrupted: s.nInterrupted, Stopped: stopped,
		Checkout:         summarize(s.checkout),
		PaymentRoundTrip: summarize(s.webhook),
		ErrorKinds:       maps.Clone(s.errors),
	}
	if elapsed > 0 {
		r.Throughput = float64(r.Completed) / elapsed.Seconds()
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
		printErrorKinds(&b, r.ErrorKinds)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
