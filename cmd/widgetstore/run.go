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
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
	"github.com/widgetstore/widgetstore/internal/web"
)

// config is the command line, with defaults from the environment.
type config struct {
	addr        string
	openDemo    bool // serve a non-loopback addr without the secrets
	databaseURL string
	supervise   bool
	crashButton bool
	executorID  string
	takeover    time.Duration
	heartbeat   time.Duration
	http        httpConfig
	log         logConfig
	limits      web.CheckoutLimits
	behindProxy bool
	version     bool // -version: print the build and exit
	// From the environment only, never flags that ps shows.
	webhookKeys   [][]byte // WEBHOOK_SECRET, comma-separated: the first signs, all verify
	operatorToken []byte   // OPERATOR_TOKEN
	smtpURL       string   // SMTP_URL: where receipts are sent (with a password, maybe); "" logs them
	publicURL     string
	stripe        stripeConfig
	checkout      checkout.Config
	retention     checkout.Retention
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{checkout: checkout.DefaultConfig, retention: checkout.DefaultRetention}
	fs := flag.NewFlagSet("widgetstore", flag.ContinueOnError)
	fs.SetOutput(stderr)

	// Loopback by default: the demo is open to whoever reaches it.
	addr := "127.0.0.1:8080"
	if port := getenv("PORT"); port != "" {
		addr = "127.0.0.1:" + port
	}
	databaseURL := "sqlite:data/widgetstore.db"
	for _, name := range []string{"DATABASE_URL", "DBOS_SYSTEM_DATABASE_URL"} {
		if url := getenv(name); url != "" {
			databaseURL = url
			break
		}
	}
	executorID := "local" // DBOS's own default
	if id := getenv("DBOS__VMID"); id != "" {
		executorID = id
	}

	fs.StringVar(&cfg.addr, "addr", addr, "address to serve on, loopback by default (the port from PORT); an address other machines reach, such as :8080, needs WEBHOOK_SECRET and OPERATOR_TOKEN, or -open-demo")
	fs.BoolVar(&cfg.openDemo, "open-demo", false, "serve a non-loopback -addr without WEBHOOK_SECRET and OPERATOR_TOKEN: anyone who reaches it may report payments, restock, crash and resume")
	// No default shown: it may come from DATABASE_URL, password and all.
	fs.StringVar(&cfg.databaseURL, "db", "", "database: postgres://... or sqlite:PATH (default: DATABASE_URL, else DBOS_SYSTEM_DATABASE_URL, else sqlite:data/widgetstore.db); "+
		"pass a URL with a password in DATABASE_URL instead, since ps shows every process's flags")
	fs.BoolVar(&cfg.supervise, "supervise", true, "run the server under a supervisor that restarts it when it dies; turn off under systemd or Kubernetes")
	fs.BoolVar(&cfg.crashButton, "crash-button", true, "serve POST /crash_application, which kills the server (a demo)")
	fs.StringVar(&cfg.executorID, "executor-id", executorID, "this instance's stable id among those sharing a database (default from DBOS__VMID)")
	fs.DurationVar(&cfg.takeover, "takeover-after", 30*time.Second, fmt.Sprintf("on PostgreSQL, take over the workflows of another instance silent this long, and for %d of its own heartbeats (0: never; else at least %d times -heartbeat)",
		store.HeartbeatMargin, store.HeartbeatMargin))
	fs.DurationVar(&cfg.heartbeat, "heartbeat", defaultHeartbeat, "on PostgreSQL, how often this instance records that it is alive, for the others' -takeover-after")
	fs.DurationVar(&cfg.checkout.PaymentTimeout, "payment-timeout", cfg.checkout.PaymentTimeout, "how long a checkout waits for its payment")
	fs.IntVar(&cfg.checkout.DispatchSteps, "dispatch-steps", cfg.checkout.DispatchSteps, "progress steps of a dispatch")
	fs.DurationVar(&cfg.checkout.DispatchInterval, "dispatch-interval", cfg.checkout.DispatchInterval, "time between two dispatch steps")
	fs.DurationVar(&cfg.retention.Keep, "retention", cfg.retention.Keep, "how long the records of finished checkouts are kept (0: forever); orders and the stock ledger are kept forever")
	fs.DurationVar(&cfg.retention.Every, "retention-every", cfg.retention.Every, "how often records older than -retention are deleted")
	cfg.http.flags(fs)
	cfg.log.flags(fs)
	fs.IntVar(&cfg.limits.PerMinute, "checkouts-per-minute", 20, "new checkouts one client (address) may start a minute (0: no limit; a benchmark from one address needs 0)")
	fs.IntVar(&cfg.checkout.PendingUnitsPerClient, "pending-units", 20, "units one client (address) may hold in checkouts awaiting payment, counted in the database (0: no limit, else at least 10, what one checkout may buy)")
	fs.BoolVar(&cfg.behindProxy, "behind-proxy", false, "the shop is reached only through a proxy: take a client's address from the last X-Forwarded-For entry")
	if secrets := getenv("WEBHOOK_SECRET"); secrets != "" {
		for secret := range strings.SplitSeq(secrets, ",") {
			if secret = strings.TrimSpace(secret); secret == "" {
				return cfg, errors.New("WEBHOOK_SECRET: an empty secret in its comma-separated list")
			}
			cfg.webhookKeys = append(cfg.webhookKeys, []byte(secret))
		}
	}
	if token := getenv("OPERATOR_TOKEN"); token != "" {
		cfg.operatorToken = []byte(token)
	}
	cfg.smtpURL = getenv("SMTP_URL")
	fs.StringVar(&cfg.publicURL, "public-url", "", "the shop's address as customers reach it, such as https://shop.example, for the links in their receipts (default: none)")
	cfg.stripe.flags(fs)
	fs.BoolVar(&cfg.version, "version", false, "print the build and the DBOS application version, and exit")
	if err := applyEnv(fs, getenv); err != nil {
		return cfg, err
	}
	if err := fs.Parse(args); err != nil || cfg.version {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.databaseURL == "" {
		cfg.databaseURL = databaseURL
	}
	if err := cfg.http.check(); err != nil {
		return cfg, err
	}
	if err := cfg.log.check(); err != nil {
		return cfg, err
	}
	if err := cfg.stripe.check(cfg.publicURL); err != nil {
		return cfg, err
	}
	if _, err := receipt.NewSender(cfg.smtpURL, nil); err != nil {
		return cfg, fmt.Errorf("SMTP_URL: %w", err)
	}
	if err := checkTakeover(cfg.heartbeat, cfg.takeover); err != nil {
		return cfg, err
	}
	if pending := cfg.checkout.PendingUnitsPerClient; cfg.limits.PerMinute < 0 || pending < 0 || 0 < pending && pending < shop.MaxQuantity {
		return cfg, fmt.Errorf("-checkouts-per-minute must be 0 (no limit) or more, -pending-units 0 (no limit) or at least %d, what one checkout may buy", shop.MaxQuantity)
	}
	cfg.limits.PaymentWindow = cfg.checkout.PaymentTimeout
	exposed, err := exposed(cfg.addr)
	if err != nil {
		return cfg, err
	}
	if exposed && !cfg.secured() && !cfg.openDemo {
		return cfg, fmt.Errorf("-addr %s is reachable from other machines, and without WEBHOOK_SECRET and OPERATOR_TOKEN anyone there may report payments, restock, "+
			"crash the server and resume workflows: set both in the environment, serve on 127.0.0.1 (the default), or pass -open-demo to serve the open demo anyway", cfg.addr)
	}
	return cfg, nil
}

// defaultHeartbeat is -heartbeat's default: a write a second is nothing to
// the database (the watch's probe writes as often), and it lets
// -takeover-after go down to 3 s, which instances of releases without
// -heartbeat were run with.
const defaultHeartbeat = time.Second

// minHeartbeat bounds -heartbeat from below: every beat is a write.
const minHeartbeat = 100 * time.Millisecond

// checkTakeover refuses the heartbeat and takeover settings under which an
// instance could take over a live one: a silence shorter than a few of its
// own beats, which a busy database or a paused process can miss. (Another
// instance's beats are waited for as it records them: store.SilentExecutors.)
func checkTakeover(heartbeat, takeover time.Duration) error {
	if heartbeat < minHeartbeat {
		return fmt.Errorf("-heartbeat %v: must be at least %v", heartbeat, minHeartbeat)
	}
	if takeover < 0 {
		return fmt.Errorf("-takeover-after %v: must be 0 (never take over) or positive", takeover)
	}
	if takeover > 0 && takeover < store.HeartbeatMargin*heartbeat {
		return fmt.Errorf("-takeover-after %v is less than %d times -heartbeat %v: a live instance that missed a beat or two would be taken over; "+
			"set -takeover-after to %v or more, or a shorter -heartbeat", takeover, store.HeartbeatMargin, heartbeat, store.HeartbeatMargin*heartbeat)
	}
	return nil
}

// secured reports whether payment reports must be signed and the
// operator's routes need a token.
func (cfg config) secured() bool { return cfg.webhookKeys != nil && cfg.operatorToken != nil }

// exposed reports whether addr is reachable from other machines: anything
// but a loopback address (127.0.0.0/8, ::1) or localhost. A host name is
// taken as exposed: what it resolves to may change.
func exposed(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("-addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return false, nil
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback(), nil
}

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
// else the server itself.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
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
	if cfg.supervise {
		return supervise(ctx, args, cfg.http.drain, stdout, stderr, logger)
	}
	return serve(ctx, cfg, stdout, logger)
}

// serve starts in order (database, migrations, DBOS with recovery, HTTP)
// and stops in reverse. A stop asked for by ctx ends within the stop
// budget (stopBudget): past it serve returns an error without waiting any
// more, and what was in flight stays pending for the next start.
func serve(ctx context.Context, cfg config, stdout io.Writer, logger *slog.Logger) error {
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
	co, err := checkout.Launch(ctx, db, checkout.LaunchConfig{
		Checkout: cfg.checkout, Retention: cfg.retention, ExecutorID: cfg.executorID, Logger: logger, Metrics: metrics,
		Provider: pay.Provider, Register: pay.Register, Receipts: receipts, PublicURL: cfg.publicURL,
	})
	if err != nil {
		db.Close()
		return err
	}
	// On PostgreSQL other instances may share the database.
	stopTakeover := func() {}
	if db.Postgres != nil && cfg.takeover > 0 {
		takeoverCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); co.TakeOver(takeoverCtx, cfg.executorID, cfg.heartbeat, cfg.takeover) }()
		stopTakeover = func() { cancel(); <-done }
	}
	// release stops what was started, in reverse, after HTTP.
	release := func() {
		stopTakeover() // before DBOS shuts down
		if err := co.Shutdown(dbosShutdownTimeout); err != nil {
			logger.Error("shutting down", slog.Any("error", err))
		}
		db.Close()
	}

	opts := web.Options{WebhookSecrets: cfg.webhookKeys, OperatorToken: cfg.operatorToken, Limits: cfg.limits, BehindProxy: cfg.behindProxy,
		Metrics: metrics, Events: verifier, ProviderPages: providerPages, StaleAfter: cfg.takeover}
	if cfg.crashButton {
		opts.CrashFunc = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	}
	handler := web.NewServer(logger, db, co, opts)
	server := cfg.http.server(handler)
	logMode(logger, cfg, listener.Addr(), db.Engine())
	fmt.Fprintf(stdout, "widgetstore listening on %s\n", listener.Addr())

	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(listener) }()
	select {
	case err := <-serveErr:
		release()
		return err
	case <-ctx.Done():
	}
	budget := stopBudget(cfg.http.drain)
	deadline := time.NewTimer(budget)
	defer deadline.Stop()
	// Not ready from now on, but still serving for the drain, so that a
	// load balancer stops sending requests before the listener closes.
	handler.Drain()
	logger.Info("shutting down", "drain", cfg.http.drain, "budget", budget)
	stopped := make(chan error, 1)
	go func() {
		select {
		case <-time.After(cfg.http.drain):
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
