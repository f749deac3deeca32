package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/demopay"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/store"
	"github.com/widgetstore/widgetstore/internal/web"
)

// logMode logs the one line that says who can reach the shop and who may
// do what in it.
func logMode(logger *slog.Logger, cfg config, addr net.Addr, engine string) {
	var open []string
	if cfg.webhookKeys == nil {
		open = append(open, "report payments (no WEBHOOK_SECRET)")
	}
	if cfg.operatorToken == nil {
		open = append(open, "restock, crash and resume (no OPERATOR_TOKEN)")
	}
	exposed, _ := exposed(addr.String())
	level, msg := slog.LevelInfo, ""
	switch {
	case len(open) == 0 && exposed:
		msg = "secured, reachable from other machines: payment reports must be signed with WEBHOOK_SECRET, the operator's routes need OPERATOR_TOKEN"
	case len(open) == 0:
		msg = "secured, on this machine only: payment reports must be signed with WEBHOOK_SECRET, the operator's routes need OPERATOR_TOKEN"
	case exposed:
		level, msg = slog.LevelWarn, "OPEN DEMO (-open-demo), reachable from other machines: anyone who reaches it may "+strings.Join(open, " and ")
	default:
		msg = "local demo, on this machine only (loopback): anyone on it may " + strings.Join(open, " and ")
	}
	logger.Log(context.Background(), level, msg, "url", pageURL(addr), "database", engine)
}

// run runs the shop until ctx is done: under the supervisor by default,
// else the server itself; or, first argument "backup", the backup command.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "backup" {
		return backup(ctx, args[1:], getenv, stderr)
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h asked for the usage, which is printed
	}
	if err != nil {
		return err
	}
	if cfg.version {
		return printVersion(stdout)
	}
	logger := cfg.log.logger(stderr)
	if cfg.healthcheck {
		err = healthcheck(ctx, cfg.addr)
	} else if cfg.supervise {
		err = supervise(ctx, args, cfg.http.drain, stdout, stderr, logger, cfg.log.format == "json")
	} else {
		err = serve(ctx, cfg, stdout, logger)
	}
	if err != nil && cfg.log.format == "json" {
		// main's line would be text.
		logger.Error("widgetstore exits on an error", slog.Any("error", err))
		return errLogged
	}
	return err
}

// serve starts in order (database, migrations, DBOS with recovery, HTTP)
// and stops in reverse. A stop asked for by ctx ends within the stop
// budget (stopBudget): past it serve returns an error without waiting any
// more, and what was in flight stays pending for the next start.
func serve(ctx context.Context, cfg config, stdout io.Writer, logger *slog.Logger) error {
	stopPprof, err := servePprof(cfg.pprofAddr, logger)
	if err != nil {
		return err
	}
	defer stopPprof()
	db, err := store.Open(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	if err := db.Migrate(ctx, checkout.DBOSLogger(logger)); err != nil {
		db.Close()
		return fmt.Errorf("migrating the database: %w", err)
	}
	// One registry for the process, passed down like the logger; GET
	// /metrics serves it.
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Listening before DBOS launches: the demo payment provider, whose
	// workflows launch with it, delivers its events to this address.
	// Requests wait in the listener's backlog until the server serves.
	listener, err := cfg.http.listen(cfg.addr)
	if err != nil {
		db.Close()
		return err
	}
	defer listener.Close()
	pay, verifier, providerPages, err := paymentProvider(db, cfg, listener.Addr(), logger)
	if err != nil {
		db.Close()
		return err
	}
	receipts, err := receipt.NewSender(cfg.smtpURL, logger)
	if err != nil {
		db.Close()
		return err
	}
	// Before DBOS launches: the checkouts it recovers trace their steps.
	tracer, flushTraces, err := cfg.tracing.start(ctx, logger)
	if err != nil {
		db.Close()
		return err
	}
	if tracer != nil {
		logger = traceLogs(logger)
	}
	co, err := checkout.Launch(ctx, db, checkout.LaunchConfig{
		Checkout: cfg.checkout, Retention: cfg.retention, ExecutorID: cfg.executorID, Logger: logger, Metrics: metrics,
		Provider: pay.Provider, Register: pay.Register, Receipts: receipts, PublicURL: cfg.publicURL, Tracer: tracer,
	})
	if err != nil {
		flushTraces()
		db.Close()
		return err
	}
	stopTakeover := startTakeover(ctx, db, co, cfg)
	// release stops what was started, in reverse, after HTTP.
	release := func() {
		stopTakeover() // before DBOS shuts down
		if err := co.Shutdown(dbosShutdownTimeout); err != nil {
			logger.Error("shutting down", slog.Any("error", err))
		}
		flushTraces() // the last steps' spans
		db.Close()
	}

	opts := web.Options{WebhookSecrets: cfg.webhookKeys, OperatorToken: cfg.operatorToken, Limits: cfg.limits, BehindProxy: cfg.behindProxy,
		Metrics: metrics, Events: verifier, ProviderPages: providerPages, StaleAfter: cfg.takeover, Tracer: tracer}
	if cfg.crashButton {
		opts.CrashFunc = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	}
	handler := web.NewServer(logger, db, co, opts)
	server := cfg.http.server(handler)
	server.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn) // net/http's own lines, in the log's format
	logMode(logger, cfg, listener.Addr(), db.Engine())
	cfg.log.announce(stdout, listener.Addr())

	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(listener) }()
	select {
	case err := <-serveErr:
		release()
		return err
	case <-ctx.Done():
	}
	return shutdownWithinBudget(cfg.http.drain, handler, server, serveErr, release, logger)
}

// startTakeover, on PostgreSQL, where other instances may share the
// database, starts taking over the workflows of instances that stopped
// (when -takeover is set); the function it returns stops that and waits.
func startTakeover(ctx context.Context, db *store.DB, co *checkout.Checkout, cfg config) (stop func()) {
	if db.Postgres == nil || cfg.takeover <= 0 {
		return func() {}
	}
	takeoverCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); co.TakeOver(takeoverCtx, cfg.executorID, cfg.heartbeat, cfg.takeover) }()
	return func() { cancel(); <-done }
}

// shutdownWithinBudget stops a serving server: not ready at once, still
// serving for the drain, then HTTP shuts down and release stops the rest.
// Past the stop budget it returns an error without waiting any more.
func shutdownWithinBudget(drain time.Duration, handler *web.Server, server *http.Server, serveErr <-chan error, release func(), logger *slog.Logger) error {
	budget := stopBudget(drain)
	deadline := time.NewTimer(budget)
	defer deadline.Stop()
	// Not ready from now on, but still serving for the drain, so that a
	// load balancer stops sending requests before the listener closes.
	handler.Drain()
	logger.Info("shutting down", "drain", drain, "budget", budget)
	stopped := make(chan error, 1)
	go func() {
		select {
		case <-time.After(drain):
		case err := <-serveErr:
			release()
			stopped <- err
			return
		}
		shutdownCtx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		if err := server.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("HTTP shutdown", slog.Any("error", err))
		}
		release()
		stopped <- nil
	}()
	select {
	case err := <-stopped:
		return err
	case <-deadline.C:
		return fmt.Errorf("the shutdown took longer than its budget, %v: exiting with the workflows in flight left pending for the next start", budget)
	}
}

// pageURL is where a person on this machine opens the shop.
func pageURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return "http://" + addr.String()
	}
	return fmt.Sprintf("http://localhost:%d", tcp.Port)
}

// demoProvider is the payment provider carts are paid through, the
// built-in demo one, and the verifier of its events. It signs them with
// the first of WEBHOOK_SECRET's secrets, and the shop takes any of them;
// without WEBHOOK_SECRET (the local demo), with a secret of this process's
// own: it runs in this process, and signs each delivery as it sends it.
func demoProvider(db *store.DB, cfg config, addr net.Addr, logger *slog.Logger) (*demopay.Provider, *payment.Verifier, error) {
	secrets := make([]string, len(cfg.webhookKeys))
	for i, key := range cfg.webhookKeys {
		secrets[i] = string(key)
	}
	if len(secrets) == 0 {
		secrets = []string{rand.Text()}
	}
	verifier, err := payment.NewVerifier(secrets, payment.DefaultTolerance)
	if err != nil {
		return nil, nil, err
	}
	// The provider calls back on loopback: it runs beside the server.
	webhook := &url.URL{Scheme: "http", Host: addr.String(), Path: "/api/payment_events"}
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		webhook.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
	}
	provider, err := demopay.New(db, demopay.Config{WebhookURL: webhook.String(), SigningSecret: secrets[0], PublicURL: cfg.publicURL, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	return provider, verifier, nil
}
