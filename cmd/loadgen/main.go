// Command loadgen drives a widgetstore over HTTP and measures what a
// purchase costs. It has two modes.
//
// Open loop (the default): checkouts start at a steady -rate against a
// running shop, each paid or refused through the payment webhook, and the
// latencies of the two calls are reported.
//
//	go run ./cmd/loadgen -url http://127.0.0.1:8080 -rate 20 -duration 10s
//
// Closed loop (-customers): C customers each buy one widget after another
// (checkout, then the paid webhook) for -duration. With -shop, loadgen
// starts the shop binary itself on a fresh database for every run, and
// reports CPU, commits and WAL per purchase beside the latencies:
//
//	go build -o /tmp/ws ./cmd/widgetstore
//	go run ./cmd/loadgen -shop /tmp/ws -engine sqlite,postgres -customers 1,8,32,64
//
// WEBHOOK_SECRET and OPERATOR_TOKEN are read from the environment, as the
// shop reads them: webhooks are then signed, operator routes carry the
// token. A shop that loadgen starts gets random ones.
//
// It only ever talks to this machine: a -url or -pg-admin-url that is not
// loopback (127.0.0.0/8, ::1, localhost) is refused, and its connections
// are checked again when made.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// run drives the shop as the command line says and prints the report on
// stdout. When ctx ends it stops early, cancels what is in flight, and
// still prints what it measured.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if len(cfg.customers) > 0 {
		return runSweep(ctx, cfg, stdout, stderr)
	}
	return runOpenLoop(ctx, cfg, stdout, stderr)
}

// runOpenLoop starts checkouts at -rate against -url and reports them.
func runOpenLoop(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	shop := newShopClient(cfg, cfg.baseURL, cfg.webhookSecret, cfg.operatorToken, cfg.concurrency)
	defer shop.close()

	if cfg.restock {
		if err := shop.restock(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "loadgen: %s, product %d, %g checkouts/s for %s (at most %d), %d in flight at most, %g paid\n",
		cfg.baseURL, cfg.product, cfg.rate, cfg.duration, cfg.maxStarts, cfg.concurrency, cfg.pay)

	l := &loader{cfg: cfg, shop: shop, stats: newPurchaseStats(time.Time{})}
	elapsed := l.loop(ctx)
	rep := l.report(elapsed, ctx.Err() != nil)
	if cfg.json {
		return writeJSON(stdout, rep)
	}
	return rep.print(stdout)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// loopbackDialer returns a dialer that connects only to loopback addresses
// (whatever "localhost" resolves to) and Unix sockets: the second line of
// defence behind the checks of the URLs.
func loopbackDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			if network == "unix" {
				return nil
			}
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("refusing to connect to %s: not a loopback address", address)
			}
			return nil
		}}
}

// newHTTPClient returns the HTTP client of a run: no proxy, no redirects,
// loopback only, and idle connections kept for conns requests in flight at
// once.
func newHTTPClient(timeout time.Duration, conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         loopbackDialer(timeout).DialContext,
			MaxIdleConns:        2 * conns,
			MaxIdleConnsPerHost: 2 * conns,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is an answer, not a new address to load
		},
	}
}
