package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/store"
	"github.com/widgetstore/widgetstore/internal/web"
)

// config is the command line, with defaults from the environment.
type config struct {
	addr        string
	databaseURL string
	supervise   bool
	crashButton bool
	executorID  string
	takeover    time.Duration
	// From the environment only, never flags that ps shows.
	webhookKey    []byte // WEBHOOK_SECRET
	operatorToken []byte // OPERATOR_TOKEN
	checkout      checkout.Config
	retention     checkout.Retention
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{checkout: checkout.DefaultConfig, retention: checkout.DefaultRetention}
	fs := flag.NewFlagSet("widgetstore", flag.ContinueOnError)
	fs.SetOutput(stderr)

	addr := ":8080"
	if port := getenv("PORT"); port != "" {
		addr = ":" + port
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

	fs.StringVar(&cfg.addr, "addr", addr, "address to serve on (default from PORT)")
	fs.StringVar(&cfg.databaseURL, "db", databaseURL, "database: postgres://... or sqlite:PATH (default from DATABASE_URL or DBOS_SYSTEM_DATABASE_URL)")
	fs.BoolVar(&cfg.supervise, "supervise", true, "run the server under a supervisor that restarts it when it dies; turn off under systemd or Kubernetes")
	fs.BoolVar(&cfg.crashButton, "crash-button", true, "serve POST /crash_application, which kills the server (a demo)")
	fs.StringVar(&cfg.executorID, "executor-id", executorID, "this instance's stable id among those sharing a database (default from DBOS__VMID)")
	fs.DurationVar(&cfg.takeover, "takeover-after", 30*time.Second, "on PostgreSQL, take over the workflows of another instance silent this long (0: never)")
	fs.DurationVar(&cfg.checkout.PaymentTimeout, "payment-timeout", cfg.checkout.PaymentTimeout, "how long a checkout waits for its payment")
	fs.IntVar(&cfg.checkout.DispatchSteps, "dispatch-steps", cfg.checkout.DispatchSteps, "progress steps of a dispatch")
	fs.DurationVar(&cfg.checkout.DispatchInterval, "dispatch-interval", cfg.checkout.DispatchInterval, "time between two dispatch steps")
	fs.DurationVar(&cfg.retention.Keep, "retention", cfg.retention.Keep, "how long the records of finished checkouts are kept (0: forever); orders and the stock ledger are kept forever")
	fs.DurationVar(&cfg.retention.Every, "retention-every", cfg.retention.Every, "how often records older than -retention are deleted")
	if secret := getenv("WEBHOOK_SECRET"); secret != "" {
		cfg.webhookKey = []byte(secret)
	}
	if token := getenv("OPERATOR_TOKEN"); token != "" {
		cfg.operatorToken = []byte(token)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, nil
}

// run runs the shop until ctx is done: under the supervisor by default,
// else the server itself.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if cfg.supervise {
		return supervise(ctx, args, stdout, stderr, logger)
	}
	return serve(ctx, cfg, stdout, logger)
}

// serve starts in order (database, migrations, DBOS with recovery, HTTP)
// and stops in reverse, each step under a deadline.
func serve(ctx context.Context, cfg config, stdout io.Writer, logger *slog.Logger) error {
	db, err := store.Open(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx, checkout.DBOSLogger(logger)); err != nil {
		return fmt.Errorf("migrating the database: %w", err)
	}
	co, err := checkout.Launch(ctx, db, checkout.LaunchConfig{
		Checkout: cfg.checkout, Retention: cfg.retention, ExecutorID: cfg.executorID, Logger: logger,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := co.Shutdown(10 * time.Second); err != nil {
			logger.Error("shutting down", slog.Any("error", err))
		}
	}()

	opts := web.Options{WebhookSecret: cfg.webhookKey, OperatorToken: cfg.operatorToken}
	if cfg.crashButton {
		opts.CrashFunc = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	}
	if opts.WebhookSecret == nil || opts.OperatorToken == nil {
		logger.Info("demo mode: without WEBHOOK_SECRET anyone may report a payment, without OPERATOR_TOKEN anyone may restock, crash and resume",
			"WEBHOOK_SECRET set", opts.WebhookSecret != nil, "OPERATOR_TOKEN set", opts.OperatorToken != nil)
	}
	listener, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	server := &http.Server{
		Handler:           web.NewServer(logger, db, co, opts),
		ReadHeaderTimeout: 10 * time.Second,
	}
	logger.Info("serving the widget store", "url", pageURL(listener.Addr()), "database", db.Engine())
	fmt.Fprintf(stdout, "widgetstore listening on %s\n", listener.Addr())

	// On PostgreSQL other instances may share the database.
	stopTakeover := func() {}
	if db.Postgres != nil && cfg.takeover > 0 {
		takeoverCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); co.TakeOver(takeoverCtx, cfg.executorID, cfg.takeover) }()
		stopTakeover = func() { cancel(); <-done }
	}
	defer stopTakeover() // before DBOS shuts down

	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(listener) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("HTTP shutdown", slog.Any("error", err))
	}
	return nil
}

// pageURL is where a person on this machine opens the shop.
func pageURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return "http://" + addr.String()
	}
	return fmt.Sprintf("http://localhost:%d", tcp.Port)
}
