// Command loadgen drives a running widgetstore over HTTP: it starts
// checkouts at a steady rate, pays or refuses each one through the payment
// webhook, and reports the latencies of the two calls.
//
//	go run ./cmd/loadgen -url http://127.0.0.1:8080 -rate 20 -duration 10s
//
// It only ever talks to the -url given, and refuses a -url that is not on
// this machine (127.0.0.0/8, ::1, localhost) unless -allow-remote is set.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// maxAnswerBytes bounds how much of an answer is read: the shop's are tiny.
const maxAnswerBytes = 64 << 10

// config is the command line.
type config struct {
	baseURL     string // the -url, without a trailing slash
	allowRemote bool
	rate        float64
	duration    time.Duration
	maxStarts   int
	concurrency int
	pay         float64
	product     int64
	restock     bool
	timeout     time.Duration
	json        bool
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rawURL := fs.String("url", "http://127.0.0.1:8080", "the widgetstore to drive (loopback only, unless -allow-remote)")
	fs.BoolVar(&cfg.allowRemote, "allow-remote", false, "allow a -url that is not on this machine")
	fs.Float64Var(&cfg.rate, "rate", 20, "checkouts started per second")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to start checkouts for")
	fs.IntVar(&cfg.maxStarts, "n", 0, "start at most this many checkouts (default: rate × duration)")
	fs.IntVar(&cfg.concurrency, "concurrency", 32, "most purchases in flight at once; starts beyond it are dropped")
	fs.Float64Var(&cfg.pay, "pay", 0.8, "fraction of checkouts paid; the rest are refused (/failed)")
	fs.Int64Var(&cfg.product, "product", 1, "product id to buy, one at a time")
	fs.BoolVar(&cfg.restock, "restock", true, "POST /restock before starting")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "timeout of each request")
	fs.BoolVar(&cfg.json, "json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	switch {
	case !(cfg.rate > 0) || math.IsInf(cfg.rate, 0) || cfg.rate > 1e6:
		return cfg, fmt.Errorf("-rate must be above 0 and at most 1e6, not %v", cfg.rate)
	case cfg.duration <= 0:
		return cfg, fmt.Errorf("-duration must be positive, not %v", cfg.duration)
	case cfg.maxStarts < 0:
		return cfg, fmt.Errorf("-n must not be negative, not %d", cfg.maxStarts)
	case cfg.concurrency < 1:
		return cfg, fmt.Errorf("-concurrency must be at least 1, not %d", cfg.concurrency)
	case !(cfg.pay >= 0 && cfg.pay <= 1):
		return cfg, fmt.Errorf("-pay must be between 0 and 1, not %v", cfg.pay)
	case cfg.product < 1:
		return cfg, fmt.Errorf("-product must be a positive id, not %d", cfg.product)
	case cfg.timeout <= 0:
		return cfg, fmt.Errorf("-timeout must be positive, not %v", cfg.timeout)
	}
	if limit := int(math.Ceil(cfg.rate * cfg.duration.Seconds())); cfg.maxStarts == 0 || cfg.maxStarts > limit {
		cfg.maxStarts = max(limit, 1)
	}

	base, err := checkURL(*rawURL, cfg.allowRemote)
	if err != nil {
		return cfg, err
	}
	cfg.baseURL = base
	return cfg, nil
}

// checkURL validates the -url and returns it without a trailing slash. A
// host that is not loopback is refused unless allowRemote: load goes only
// to this machine.
func checkURL(raw string, allowRemote bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("-url %q: the scheme must be http or https", raw)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("-url %q: no host", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("-url %q: give only scheme, host, port and path", raw)
	}
	if !allowRemote && !isLoopbackHost(u.Hostname()) {
		return "", fmt.Errorf("-url %q: %s is not a loopback address (127.0.0.0/8, ::1, localhost); load may go only to this machine unless -allow-remote", raw, u.Hostname())
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// isLoopbackHost says whether a host name or address is this machine's
// loopback. Names other than localhost are not resolved: they are refused.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newClient returns the HTTP client of a run: no proxy, no redirects, and,
// unless allowRemote, a dialer that connects only to loopback addresses
// (whatever "localhost" resolves to).
func newClient(cfg config) *http.Client {
	dialer := &net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}
	if !cfg.allowRemote {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("refusing to connect to %s: not a loopback address", address)
			}
			return nil
		}
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			MaxIdleConns:        2 * cfg.concurrency,
			MaxIdleConnsPerHost: 2 * cfg.concurrency,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is an answer, not a new address to load
		},
	}
}

// run drives the shop as the command line says and prints the report on
// stdout. It stops by itself after -duration (or -n starts) and the
// purchases in flight; when ctx ends it stops early, cancels what is in
// flight, and still prints the report.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	client := newClient(cfg)
	defer client.CloseIdleConnections()

	if cfg.restock {
		if err := restock(ctx, client, cfg); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "loadgen: %s, product %d, %g checkouts/s for %s (at most %d), %d in flight at most, %g paid\n",
		cfg.baseURL, cfg.product, cfg.rate, cfg.duration, cfg.maxStarts, cfg.concurrency, cfg.pay)

	l := &loader{cfg: cfg, client: client, stats: newStats()}
	elapsed := l.loop(ctx)
	rep := l.stats.report(cfg, elapsed, ctx.Err() != nil)
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.print(stdout)
}

// restock tops the shop's stock up before the run.
func restock(ctx context.Context, client *http.Client, cfg config) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	status, body, err := post(ctx, client, cfg.baseURL+"/restock", nil)
	if err != nil {
		return fmt.Errorf("restocking: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("restocking: HTTP %d: %s", status, errorMessage(body))
	}
	return nil
}

// loader runs the purchases of one run.
type loader struct {
	cfg    config
	client *http.Client
	stats  *stats
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
	body := fmt.Sprintf(`{"product_id": %d, "quantity": 1}`, l.cfg.product)

	t0 := time.Now()
	status, answer, err := l.call(ctx, "/checkout/"+url.PathEscape(key), strings.NewReader(body))
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
	status, answer, err = l.call(ctx, "/payment_webhook/"+url.PathEscape(paymentID)+"/"+verdict, nil)
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

// call POSTs to a path under the -url, bounded by -timeout.
func (l *loader) call(ctx context.Context, path string, body io.Reader) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.timeout)
	defer cancel()
	return post(ctx, l.client, l.cfg.baseURL+path, body)
}

// post sends a POST and reads the answer.
func post(ctx context.Context, client *http.Client, target string, body io.Reader) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	io.Copy(io.Discard, resp.Body) // so the connection is reused
	return resp.StatusCode, answer, nil
}

// errorMessage is the "error" of a JSON error answer, else the answer.
func errorMessage(answer []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(answer, &e) == nil && e.Error != "" {
		return truncate(e.Error)
	}
	return truncate(strings.TrimSpace(string(answer)))
}

func truncate(s string) string {
	const most = 200
	if len(s) > most {
		return s[:most] + "…"
	}
	return s
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

type errorKind struct {
	Count   int    `json:"count"`
	Example string `json:"example"`
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
	e := s.errors[kind]
	if e == nil {
		e = &errorKind{Example: example}
		s.errors[kind] = e
	}
	e.Count++
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

// latency summarizes the latencies of one call, in milliseconds.
type latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func summarize(ds []time.Duration) latency {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return latency{
		Count: len(sorted),
		P50:   ms(percentile(sorted, 50)),
		P90:   ms(percentile(sorted, 90)),
		P99:   ms(percentile(sorted, 99)),
		Max:   ms(percentile(sorted, 100)),
	}
}

// percentile is the nearest-rank p-th percentile of sorted durations: the
// smallest one that at least p% of them do not exceed. Zero for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
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
