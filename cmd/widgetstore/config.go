package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
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
	version     bool   // -version: print the build and exit
	healthcheck bool   // -healthcheck: probe the server at addr and exit
	pprofAddr   string // -pprof-addr: where Go's profiles are served, loopback; "" for nowhere
	// From the environment only, never flags that ps shows.
	webhookKeys   [][]byte // WEBHOOK_SECRET, comma-separated: the first signs, all verify
	operatorToken []byte   // OPERATOR_TOKEN
	smtpURL       string   // SMTP_URL: where receipts are sent (with a password, maybe); "" logs them
	publicURL     string
	stripe        stripeConfig // STRIPE_*: Stripe in place of the demo provider
	checkout      checkout.Config
	retention     checkout.Retention
	tracing       tracingConfig // from the OTEL_* variables
}

// setting is one line of the configuration: a flag and its environment
// twin, or a variable of the environment alone (a secret, which ps would
// show as a flag).
type setting struct {
	flag string // the flag's name; "" for a variable of the environment alone
	// env are the flag's twins, the first one set wins; nil means
	// WIDGETSTORE_ and the flag's name in capitals, _ for -.
	env    []string
	noTwin bool       // a flag that asks for an answer and an exit: in the environment it would stop every start
	value  flag.Value // where the setting goes, holding its default
	usage  string
}

// envPrefix names the environment twin of a flag: -payment-timeout is
// WIDGETSTORE_PAYMENT_TIMEOUT. Containers and systemd units configure a
// program through its environment more easily than through its command
// line.
const envPrefix = "WIDGETSTORE_"

// settings is every setting of the shop, one a row. A new flag is one more
// row; a rule between settings is one more entry in checks.
func (cfg *config) settings(getenv func(string) string) []setting {
	// Loopback by default: the demo is open to whoever reaches it. PORT is
	// not a twin: it sets only the port of -addr's default.
	addr := "127.0.0.1:8080"
	if port := getenv("PORT"); port != "" {
		addr = "127.0.0.1:" + port
	}
	settings := []setting{
		{flag: "addr", value: value(&cfg.addr, addr),
			usage: "address to serve on, loopback by default (the port from PORT); an address other machines reach, such as :8080, needs WEBHOOK_SECRET and OPERATOR_TOKEN, or -open-demo"},
		{flag: "open-demo", value: value(&cfg.openDemo, false),
			usage: "serve a non-loopback -addr without WEBHOOK_SECRET and OPERATOR_TOKEN: anyone who reaches it may report payments, restock, crash and resume"},
		// The twins that were there before the WIDGETSTORE_ ones, so that
		// existing deployments work unchanged.
		{flag: "db", env: []string{"DATABASE_URL", "DBOS_SYSTEM_DATABASE_URL"}, value: value(&cfg.databaseURL, "sqlite:data/widgetstore.db"),
			usage: "database: postgres://... or sqlite:PATH; pass a URL with a password in DATABASE_URL instead, since ps shows every process's flags"},
		{flag: "executor-id", env: []string{"DBOS__VMID"}, value: value(&cfg.executorID, "local"), // DBOS's own name and default
			usage: "this instance's stable id among those sharing a database"},
		{flag: "supervise", value: value(&cfg.supervise, true),
			usage: "run the server under a supervisor that restarts it when it dies; turn off under systemd or Kubernetes"},
		{flag: "crash-button", value: value(&cfg.crashButton, true),
			usage: "serve POST /crash_application, which kills the server (a demo)"},
		{flag: "takeover-after", value: value(&cfg.takeover, 30*time.Second),
			usage: fmt.Sprintf("on PostgreSQL, take over the workflows of another instance silent this long, and for %d of its own heartbeats (0: never; else at least %d times -heartbeat)",
				store.HeartbeatMargin, store.HeartbeatMargin)},
		{flag: "heartbeat", value: value(&cfg.heartbeat, defaultHeartbeat),
			usage: "on PostgreSQL, how often this instance records that it is alive, for the others' -takeover-after"},
		{flag: "payment-timeout", value: value(&cfg.checkout.PaymentTimeout, cfg.checkout.PaymentTimeout),
			usage: "how long a checkout waits for its payment"},
		{flag: "dispatch-steps", value: value(&cfg.checkout.DispatchSteps, cfg.checkout.DispatchSteps),
			usage: "progress steps of a dispatch"},
		{flag: "dispatch-interval", value: value(&cfg.checkout.DispatchInterval, cfg.checkout.DispatchInterval),
			usage: "time between two dispatch steps"},
		{flag: "retention", value: value(&cfg.retention.Keep, cfg.retention.Keep),
			usage: "how long the records of finished checkouts are kept (0: forever); orders and the stock ledger are kept forever"},
		{flag: "retention-every", value: value(&cfg.retention.Every, cfg.retention.Every),
			usage: "how often records older than -retention are deleted"},
		{flag: "checkouts-per-minute", value: value(&cfg.limits.PerMinute, 20),
			usage: "new checkouts one client (address) may start a minute (0: no limit; a benchmark from one address needs 0)"},
		{flag: "pending-units", value: value(&cfg.checkout.PendingUnitsPerClient, 20),
			usage: "units one client (address) may hold in checkouts awaiting payment, counted in the database (0: no limit, else at least 10, what one checkout may buy)"},
		{flag: "behind-proxy", value: value(&cfg.behindProxy, false),
			usage: "the shop is reached only through a proxy: take a client's address from the last X-Forwarded-For entry"},
		{flag: "public-url", value: value(&cfg.publicURL, ""),
			usage: "the shop's address as customers reach it, such as https://shop.example, for the links in their receipts (default: none)"},
		{flag: "pprof-addr", value: value(&cfg.pprofAddr, ""),
			usage: "serve Go's profiles (/debug/pprof/) on this loopback address, such as 127.0.0.1:6060 (default: off)"},
		{flag: "version", noTwin: true, value: value(&cfg.version, false),
			usage: "print the build and the DBOS application version, and exit"},
		{flag: "healthcheck", noTwin: true, value: value(&cfg.healthcheck, false),
			usage: "probe GET /livez of the server at -addr, and exit 0 if it answers 200, else 1 (a container's HEALTHCHECK)"},

		{env: []string{"WEBHOOK_SECRET"}, value: setFunc(cfg.setWebhookKeys)},
		{env: []string{"OPERATOR_TOKEN"}, value: setFunc(func(token string) error { cfg.operatorToken = []byte(token); return nil })},
		{env: []string{"SMTP_URL"}, value: value(&cfg.smtpURL, "")},
	}
	settings = append(settings, cfg.http.settings()...)
	settings = append(settings, cfg.stripe.settings()...)
	return append(settings, cfg.log.settings()...)
}

// checks are the rules the settings keep together, in order: the first
// one broken stops the start with what to do.
func (cfg *config) checks() []func() error {
	return []func() error{
		cfg.http.check,
		cfg.log.check,
		func() error {
			if _, err := receipt.NewSender(cfg.smtpURL, nil); err != nil {
				return fmt.Errorf("SMTP_URL: %w", err)
			}
			return nil
		},
		func() error { return checkTakeover(cfg.heartbeat, cfg.takeover) },
		func() error { return cfg.stripe.check(cfg.publicURL) },
		func() error {
			if pending := cfg.checkout.PendingUnitsPerClient; cfg.limits.PerMinute < 0 || pending < 0 || 0 < pending && pending < shop.MaxQuantity {
				return fmt.Errorf("-checkouts-per-minute must be 0 (no limit) or more, -pending-units 0 (no limit) or at least %d, what one checkout may buy", shop.MaxQuantity)
			}
			return nil
		},
		cfg.checkExposure,
		func() error { return checkPprofAddr(cfg.pprofAddr) },
	}
}

// parseConfig reads the settings from the environment, then from args (a
// flag on the command line wins over its twin), and checks them.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{checkout: checkout.DefaultConfig, retention: checkout.DefaultRetention}
	fs := flag.NewFlagSet("widgetstore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range cfg.settings(getenv) {
		if err := s.define(fs, getenv); err != nil {
			return cfg, err
		}
	}
	if err := fs.Parse(args); err != nil || cfg.version || cfg.healthcheck {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.limits.PaymentWindow = cfg.checkout.PaymentTimeout
	tracing, err := parseTracing(getenv)
	if err != nil {
		return cfg, err
	}
	cfg.tracing = tracing
	for _, check := range cfg.checks() {
		if err := check(); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// define defines s's flag in fs, its twins named in its usage so that -h
// lists them, and sets it from the first of them set (an empty variable
// counts as unset).
func (s setting) define(fs *flag.FlagSet, getenv func(string) string) error {
	env := s.env
	if env == nil && !s.noTwin {
		env = []string{envPrefix + strings.ToUpper(strings.ReplaceAll(s.flag, "-", "_"))}
	}
	if s.flag != "" {
		usage := s.usage
		for i, name := range env {
			if i == 0 {
				usage += " [$" + name + "]"
			} else {
				usage += " (else $" + name + ")"
			}
		}
		fs.Var(s.value, s.flag, usage)
	}
	for _, name := range env {
		v := getenv(name)
		if v == "" {
			continue
		}
		err := s.value.Set(v)
		switch {
		case err != nil && s.flag == "":
			// No value shown: a variable of the environment alone is a secret.
			return fmt.Errorf("%s: %w", name, err)
		case err != nil:
			// The value is shown: only a string may hold a secret (the
			// database URL's password), and setting a string never fails.
			return fmt.Errorf("environment variable %s=%q (the twin of -%s): %w", name, v, s.flag, err)
		}
		return nil
	}
	return nil
}

// value is the flag package's own flag.Value for p, holding def, so that
// parsing, its errors and -h stay the flag package's.
func value[T string | bool | int | time.Duration | slog.Level](p *T, def T) flag.Value {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	switch p := any(p).(type) {
	case *string:
		fs.StringVar(p, "v", any(def).(string), "")
	case *bool:
		fs.BoolVar(p, "v", any(def).(bool), "")
	case *int:
		fs.IntVar(p, "v", any(def).(int), "")
	case *time.Duration:
		fs.DurationVar(p, "v", any(def).(time.Duration), "")
	case *slog.Level: // parses debug, info, warn and error, any case
		fs.TextVar(p, "v", any(def).(slog.Level), "")
	}
	return fs.Lookup("v").Value
}

// setFunc is a flag.Value that parses with a function: a variable of the
// environment alone.
type setFunc func(string) error

func (f setFunc) Set(s string) error { return f(s) }
func (f setFunc) String() string     { return "" }

// setWebhookKeys reads WEBHOOK_SECRET's comma-separated secrets.
func (cfg *config) setWebhookKeys(secrets string) error {
	for secret := range strings.SplitSeq(secrets, ",") {
		if secret = strings.TrimSpace(secret); secret == "" {
			return errors.New("an empty secret in its comma-separated list")
		}
		cfg.webhookKeys = append(cfg.webhookKeys, []byte(secret))
	}
	return nil
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

// checkExposure refuses an address other machines reach unless payment
// reports must be signed and the operator's routes need a token, or
// -open-demo says the open demo is meant.
func (cfg *config) checkExposure() error {
	exposed, err := exposed(cfg.addr)
	if err != nil {
		return err
	}
	if exposed && !cfg.secured() && !cfg.openDemo {
		return fmt.Errorf("-addr %s is reachable from other machines, and without WEBHOOK_SECRET and OPERATOR_TOKEN anyone there may report payments, restock, "+
			"crash the server and resume workflows: set both in the environment, serve on 127.0.0.1 (the default), or pass -open-demo to serve the open demo anyway", cfg.addr)
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
