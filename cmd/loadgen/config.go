package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultPGAdminURL is where -engine postgres creates its databases.
const defaultPGAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// config is the command line, and the secrets from the environment.
type config struct {
	baseURL     string // the -url, without a trailing slash
	rate        float64
	duration    time.Duration
	maxStarts   int
	concurrency int
	pay         float64
	product     int64
	restock     bool
	timeout     time.Duration
	json        bool

	// From the environment only, as the shop reads them: never flags that
	// ps shows.
	webhookSecret []byte // WEBHOOK_SECRET: sign every webhook
	operatorToken string // OPERATOR_TOKEN: sent on the operator's routes

	// The closed loop: a non-empty customers selects it.
	customers    []int
	warmup       int // purchases per customer before measuring
	dispatchWait time.Duration

	// Starting the shop: a non-empty shops selects it.
	shops      []shopBinary
	engines    []string
	rounds     int
	shopArgs   []string
	pgAdminURL string
}

// shopBinary is a built widgetstore, under the label the report gives it,
// or DBOS's demo (labelled demoLabel).
type shopBinary struct {
	Label string
	Path  string
	Demo  bool
}

// lists are the flags read as text and checked by the mode that takes
// them.
type lists struct {
	url, customers, shops, engines, shopArgs string
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	var raw lists
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&raw.url, "url", "http://127.0.0.1:8080", "the widgetstore to drive, on this machine (loopback)")
	fs.Float64Var(&cfg.rate, "rate", 20, "open loop: checkouts started per second")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to start purchases for")
	fs.IntVar(&cfg.maxStarts, "n", 0, "open loop: start at most this many checkouts (default: rate × duration)")
	fs.IntVar(&cfg.concurrency, "concurrency", 32, "open loop: most purchases in flight at once; starts beyond it are dropped")
	fs.Float64Var(&cfg.pay, "pay", 0.8, "open loop: fraction of checkouts paid; the rest are refused (/failed)")
	fs.Int64Var(&cfg.product, "product", 1, "product id to buy, one at a time")
	fs.BoolVar(&cfg.restock, "restock", true, "POST /restock before starting; the closed loop restocks as it buys instead")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "timeout of each request")
	fs.BoolVar(&cfg.json, "json", false, "print the report as JSON")

	fs.StringVar(&raw.customers, "customers", "", "closed loop: customers buying one after another, or a list to sweep (1,8,32,64)")
	fs.IntVar(&cfg.warmup, "warmup", 2, "closed loop: purchases per customer before measuring, not measured")
	fs.DurationVar(&cfg.dispatchWait, "dispatch-wait", 2*time.Minute, "closed loop: longest wait for the dispatches to finish after the load")
	fs.StringVar(&raw.shops, "shop", "", "start this widgetstore binary for every run, or several to compare: label=PATH,label2=PATH2; "+
		"the label "+demoLabel+" marks DBOS's demo shop (built by cmd/loadgen/demo/build.sh), run on PostgreSQL only")
	fs.StringVar(&raw.engines, "engine", "sqlite", "with -shop: sqlite, postgres, or both (sqlite,postgres)")
	fs.IntVar(&cfg.rounds, "rounds", 1, "with -shop: times to repeat the whole sweep, binaries interleaved within each")
	fs.StringVar(&raw.shopArgs, "shop-args", "", "with -shop: more flags for the shop, separated by spaces (e.g. \"-dispatch-interval 100ms\")")
	fs.StringVar(&cfg.pgAdminURL, "pg-admin-url", defaultPGAdminURL, "with -engine postgres: where to create and drop each run's database (loopback only)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	if secret := getenv("WEBHOOK_SECRET"); secret != "" {
		cfg.webhookSecret = []byte(secret)
	}
	cfg.operatorToken = getenv("OPERATOR_TOKEN")

	if err := checkCommon(cfg); err != nil {
		return cfg, err
	}
	if raw.customers == "" {
		return cfg, cfg.openLoop(raw, given)
	}
	return cfg, cfg.closedLoop(raw, given)
}

// openLoop checks the flags of the open loop, against -url.
func (cfg *config) openLoop(raw lists, given map[string]bool) (err error) {
	if err := refuseFlags(given, "without -customers", "shop", "engine", "rounds", "shop-args", "pg-admin-url", "warmup", "dispatch-wait"); err != nil {
		return err
	}
	if err := checkOpenLoop(cfg); err != nil {
		return err
	}
	cfg.baseURL, err = checkURL(raw.url)
	return err
}

// closedLoop checks the flags of the closed loop, against -url or the
// shops it starts.
func (cfg *config) closedLoop(raw lists, given map[string]bool) (err error) {
	if err := refuseFlags(given, "with -customers (they are the open loop's)", "rate", "n", "concurrency", "pay"); err != nil {
		return err
	}
	if cfg.customers, err = parseCustomers(raw.customers); err != nil {
		return err
	}
	switch {
	case cfg.warmup < 0:
		return fmt.Errorf("-warmup must not be negative, not %d", cfg.warmup)
	case cfg.dispatchWait <= 0:
		return fmt.Errorf("-dispatch-wait must be positive, not %v", cfg.dispatchWait)
	}
	if raw.shops == "" {
		if err := refuseFlags(given, "without -shop", "engine", "rounds", "shop-args", "pg-admin-url"); err != nil {
			return err
		}
		cfg.baseURL, err = checkURL(raw.url)
		return err
	}
	return cfg.startedShops(raw, given)
}

// startedShops checks the flags of the shops loadgen starts (-shop).
func (cfg *config) startedShops(raw lists, given map[string]bool) (err error) {
	if err := refuseFlags(given, "with -shop (loadgen starts the shop on loopback itself)", "url"); err != nil {
		return err
	}
	if cfg.shops, err = parseShops(raw.shops); err != nil {
		return err
	}
	if cfg.engines, err = parseEngines(raw.engines); err != nil {
		return err
	}
	if cfg.rounds < 1 {
		return fmt.Errorf("-rounds must be at least 1, not %d", cfg.rounds)
	}
	if slices.ContainsFunc(cfg.shops, func(b shopBinary) bool { return b.Demo }) && !slices.Contains(cfg.engines, "postgres") {
		return fmt.Errorf("-shop %s=...: DBOS's demo runs on PostgreSQL only: add -engine postgres", demoLabel)
	}
	cfg.shopArgs = strings.Fields(raw.shopArgs)
	if slices.Contains(cfg.engines, "postgres") {
		return checkPGURL(cfg.pgAdminURL)
	}
	return nil
}

// checkCommon checks the flags of both modes.
func checkCommon(cfg config) error {
	switch {
	case cfg.duration <= 0:
		return fmt.Errorf("-duration must be positive, not %v", cfg.duration)
	case cfg.product < 1:
		return fmt.Errorf("-product must be a positive id, not %d", cfg.product)
	case cfg.timeout <= 0:
		return fmt.Errorf("-timeout must be positive, not %v", cfg.timeout)
	}
	return nil
}

// checkOpenLoop checks the open loop's flags and bounds -n by the rate.
func checkOpenLoop(cfg *config) error {
	switch {
	case !(cfg.rate > 0) || math.IsInf(cfg.rate, 0) || cfg.rate > 1e6:
		return fmt.Errorf("-rate must be above 0 and at most 1e6, not %v", cfg.rate)
	case cfg.maxStarts < 0:
		return fmt.Errorf("-n must not be negative, not %d", cfg.maxStarts)
	case cfg.concurrency < 1:
		return fmt.Errorf("-concurrency must be at least 1, not %d", cfg.concurrency)
	case !(cfg.pay >= 0 && cfg.pay <= 1):
		return fmt.Errorf("-pay must be between 0 and 1, not %v", cfg.pay)
	}
	if limit := int(math.Ceil(cfg.rate * cfg.duration.Seconds())); cfg.maxStarts == 0 || cfg.maxStarts > limit {
		cfg.maxStarts = max(limit, 1)
	}
	return nil
}

// refuseFlags fails if any of names was given on the command line: a flag
// that the mode would silently ignore is a mistake worth saying.
func refuseFlags(given map[string]bool, why string, names ...string) error {
	for _, name := range names {
		if given[name] {
			return fmt.Errorf("-%s makes no sense %s", name, why)
		}
	}
	return nil
}

// parseCustomers reads "8" or "1,8,32,64".
func parseCustomers(s string) ([]int, error) {
	var cs []int
	for _, field := range strings.Split(s, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || c < 1 || c > 10000 {
			return nil, fmt.Errorf("-customers %q: each must be a whole number from 1 to 10000", s)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// parseEngines reads "sqlite", "postgres" or both, comma separated.
func parseEngines(s string) ([]string, error) {
	var engines []string
	for _, field := range strings.Split(s, ",") {
		e := strings.TrimSpace(field)
		if e != "sqlite" && e != "postgres" {
			return nil, fmt.Errorf("-engine %q: each must be sqlite or postgres", s)
		}
		if slices.Contains(engines, e) {
			return nil, fmt.Errorf("-engine %q: %s twice", s, e)
		}
		engines = append(engines, e)
	}
	return engines, nil
}

// parseShops reads "PATH" or "label=PATH,label2=PATH2". An unlabelled
// binary is labelled with its file name. Each must exist and be
// executable, so a typo fails now rather than after the first runs.
func parseShops(s string) ([]shopBinary, error) {
	var shops []shopBinary
	for _, field := range strings.Split(s, ",") {
		label, path, found := strings.Cut(strings.TrimSpace(field), "=")
		if !found {
			path, label = label, filepath.Base(label)
		}
		if label == "" || path == "" || strings.ContainsAny(label, " \t") {
			return nil, fmt.Errorf("-shop %q: give PATH or label=PATH, labels without spaces", s)
		}
		if slices.ContainsFunc(shops, func(b shopBinary) bool { return b.Label == label }) {
			return nil, fmt.Errorf("-shop %q: label %q twice (label them: a=PATH,b=PATH)", s, label)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("-shop %s: %w", path, err)
		}
		info, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("-shop: %w", err)
		}
		if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			return nil, fmt.Errorf("-shop %s: not an executable file", path)
		}
		shops = append(shops, shopBinary{Label: label, Path: abs, Demo: label == demoLabel})
	}
	return shops, nil
}

// checkURL validates the -url and returns it without a trailing slash. A
// host that is not loopback is refused: load goes only
// to this machine.
func checkURL(raw string) (string, error) {
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
	if !isLoopbackHost(u.Hostname()) {
		return "", fmt.Errorf("-url %q: %s is not a loopback address (127.0.0.0/8, ::1, localhost); load goes only to this machine", raw, u.Hostname())
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// checkPGURL refuses a -pg-admin-url whose hosts are not on this machine:
// a Unix socket or a loopback address. The benchmark's load reaches
// PostgreSQL through the shop, so it must be this machine's.
func checkPGURL(raw string) error {
	pc, err := pgx.ParseConfig(raw)
	if err != nil {
		return fmt.Errorf("-pg-admin-url: %w", err)
	}
	hosts := []string{pc.Host}
	for _, fb := range pc.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	for _, host := range hosts {
		if !strings.HasPrefix(host, "/") && !isLoopbackHost(host) {
			return fmt.Errorf("-pg-admin-url: %s is not a loopback address or a Unix socket; the benchmark runs only on this machine", host)
		}
	}
	return nil
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
