package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/logtest"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantDB   string
	}{
		{"defaults", nil, nil, "127.0.0.1:8080", "sqlite:data/widgetstore.db"},
		{"PORT", nil, map[string]string{"PORT": "9000"}, "127.0.0.1:9000", "sqlite:data/widgetstore.db"},
		{"DATABASE_URL", nil, map[string]string{"DATABASE_URL": "postgres://a/b", "DBOS_SYSTEM_DATABASE_URL": "postgres://c/d"}, "127.0.0.1:8080", "postgres://a/b"},
		{"DBOS_SYSTEM_DATABASE_URL", nil, map[string]string{"DBOS_SYSTEM_DATABASE_URL": "postgres://c/d"}, "127.0.0.1:8080", "postgres://c/d"},
		{"flags win", []string{"-addr", "127.0.0.1:1", "-db", "sqlite:x.db"}, map[string]string{"PORT": "9000", "DATABASE_URL": "postgres://a/b"}, "127.0.0.1:1", "sqlite:x.db"},
	}
	for _, tt := range tests {
		cfg, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if cfg.addr != tt.wantAddr || cfg.databaseURL != tt.wantDB {
			t.Errorf("%s: addr %q db %q, want %q %q", tt.name, cfg.addr, cfg.databaseURL, tt.wantAddr, tt.wantDB)
		}
	}
	if _, err := parseConfig([]string{"-payment-timeout", "soon"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("a malformed flag was accepted")
	}
	if _, err := parseConfig([]string{"extra"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("a stray argument was accepted")
	}
	for _, args := range [][]string{{"-pending-units", "9"}, {"-pending-units", "-1"}, {"-checkouts-per-minute", "-1"}, {"-max-conns", "0"}, {"-read-timeout", "0s"}, {"-drain", "-1s"},
		{"-log-format", "xml"}, {"-log-level", "loud"}} {
		if _, err := parseConfig(args, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%q was accepted", args)
		}
	}
	if cfg, _ := parseConfig(nil, func(string) string { return "" }, io.Discard); cfg.limits.PerMinute != 20 || cfg.checkout.PendingUnitsPerClient != 20 || cfg.behindProxy {
		t.Errorf("default limits: %+v, %d units pending, behind a proxy %v; want 20 checkouts a minute, 20 units pending, no proxy",
			cfg.limits, cfg.checkout.PendingUnitsPerClient, cfg.behindProxy)
	}
	cfg, err := parseConfig([]string{"-payment-timeout", "45s", "-checkouts-per-minute", "0", "-pending-units", "0"}, func(string) string { return "" }, io.Discard)
	if err != nil || cfg.limits.PerMinute != 0 || cfg.checkout.PendingUnitsPerClient != 0 || cfg.limits.PaymentWindow != 45*time.Second {
		t.Errorf("limits turned off: %+v, %d units pending, %v", cfg.limits, cfg.checkout.PendingUnitsPerClient, err)
	}
}

// TestParseConfigGuardsTheNetwork: an address other machines reach is
// refused, with what to do, unless both secrets are set or -open-demo says
// the open demo is meant.
func TestParseConfigGuardsTheNetwork(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{"WEBHOOK_SECRET": "w", "OPERATOR_TOKEN": "o"}
	tests := []struct {
		args []string
		env  map[string]string
		ok   bool
	}{
		{nil, nil, true},
		{[]string{"-addr", "localhost:8080"}, nil, true},
		{[]string{"-addr", "127.0.0.2:8080"}, nil, true},
		{[]string{"-addr", "[::1]:8080"}, nil, true},
		{[]string{"-addr", ":8080"}, nil, false},
		{[]string{"-addr", "0.0.0.0:8080"}, nil, false},
		{[]string{"-addr", "[::]:8080"}, nil, false},
		{[]string{"-addr", "192.168.1.5:8080"}, nil, false},
		{[]string{"-addr", "shop.example:8080"}, nil, false},
		{[]string{"-addr", ":8080"}, map[string]string{"WEBHOOK_SECRET": "w"}, false},
		{[]string{"-addr", ":8080"}, map[string]string{"OPERATOR_TOKEN": "o"}, false},
		{[]string{"-addr", ":8080"}, secrets, true},
		{[]string{"-addr", ":8080", "-open-demo"}, nil, true},
		{[]string{"-addr", "0.0.0.0:8080", "-open-demo"}, map[string]string{"WEBHOOK_SECRET": "w"}, true},
	}
	for _, tt := range tests {
		_, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
		if (err == nil) != tt.ok {
			t.Errorf("parseConfig(%q) with %v: %v, want ok %v", tt.args, tt.env, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "-open-demo") {
			t.Errorf("parseConfig(%q): %v; the error should say what to do", tt.args, err)
		}
	}
	if _, err := parseConfig([]string{"-addr", "8080"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("an -addr without a port was accepted")
	}
}

// TestLogModeSaysOneLine: the start's one line says who can reach the shop
// and what is open to them.
func TestLogModeSaysOneLine(t *testing.T) {
	t.Parallel()
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	everywhere := &net.TCPAddr{IP: net.IPv4zero, Port: 8080}
	secret := []byte("s")
	tests := []struct {
		addr      net.Addr
		cfg       config
		want, not string
		wantWarn  bool
	}{
		{loopback, config{}, "local demo, on this machine only (loopback): anyone on it may report payments (no WEBHOOK_SECRET) and restock, crash and resume (no OPERATOR_TOKEN)", "", false},
		{loopback, config{webhookKeys: [][]byte{secret}}, "local demo", "report payments", false},
		{loopback, config{webhookKeys: [][]byte{secret}, operatorToken: secret}, "secured, on this machine only", "", false},
		{everywhere, config{webhookKeys: [][]byte{secret}, operatorToken: secret}, "secured, reachable from other machines", "", false},
		{everywhere, config{openDemo: true}, "OPEN DEMO (-open-demo), reachable from other machines: anyone who reaches it may report payments", "", true},
	}
	for _, tt := range tests {
		var log strings.Builder
		logMode(slog.New(slog.NewTextHandler(&log, nil)), tt.cfg, tt.addr, "sqlite")
		line := log.String()
		if strings.Count(line, "\n") != 1 || !strings.Contains(line, tt.want) || tt.not != "" && strings.Contains(line, tt.not) {
			t.Errorf("%v %+v: logged %q, want one line with %q (and not %q)", tt.addr, tt.cfg, line, tt.want, tt.not)
		}
		if warn := strings.Contains(line, "level=WARN"); warn != tt.wantWarn {
			t.Errorf("%v %+v: logged %q, want a warning: %v", tt.addr, tt.cfg, line, tt.wantWarn)
		}
	}
}

// TestHelpHidesTheDatabasePassword: -h shows no DATABASE_URL, and tells to
// pass a password there, not with -db, which ps shows.
func TestHelpHidesTheDatabasePassword(t *testing.T) {
	t.Parallel()
	var help strings.Builder
	env := map[string]string{"DATABASE_URL": "postgres://shop:hunter2@db.internal/shop"}
	if _, err := parseConfig([]string{"-h"}, func(k string) string { return env[k] }, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	if strings.Contains(help.String(), "hunter2") {
		t.Errorf("-h shows the password of DATABASE_URL:\n%s", help.String())
	}
	if !strings.Contains(help.String(), "password in DATABASE_URL") {
		t.Errorf("-h does not tell to pass a password in DATABASE_URL:\n%s", help.String())
	}
}

// TestRunServesAndShutsDown runs the server in-process on a free port and a
// fresh SQLite file, then cancels it: run must shut down cleanly. It says
// once, at start, that it serves the local demo.
func TestRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	r := startRun(t, nil)
	resp, err := http.Get("http://" + r.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /healthz: %s", resp.Status)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if n := strings.Count(r.log.String(), "local demo, on this machine only"); n != 1 {
		t.Errorf("the log says %d times that it serves the local demo, want once:\n%s", n, r.log.String())
	}
	// Attribute keys are plain words, which log tools can query; the text
	// handler quotes a key with a space in it.
	for line := range strings.Lines(r.log.String()) {
		if strings.Contains(line, `"=`) {
			t.Errorf("a log line has a quoted attribute key (one with a space): %s", line)
		}
	}
}

// TestReadyzDrains: at a shutdown /readyz answers 503 for the -drain while
// the server still serves, /livez among the rest; then run returns.
func TestReadyzDrains(t *testing.T) {
	t.Parallel()
	get := func(addr, path string) int {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	r := startRun(t, nil, "-drain", "3s")
	for _, path := range []string{"/livez", "/readyz", "/healthz"} {
		if got := get(r.addr, path); got != 200 {
			t.Errorf("before the shutdown, GET %s: %d, want 200", path, got)
		}
	}
	r.cancel() // the shutdown starts
	deadline := time.Now().Add(2 * time.Second)
	for get(r.addr, "/readyz") != 503 {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still 200 2 s into a shutdown with a 3 s drain")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := get(r.addr, "/livez"); got != 200 {
		t.Errorf("during the drain, GET /livez: %d, want 200", got)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := http.Get("http://" + r.addr + "/livez"); err == nil {
		t.Error("the server still answers after run returned")
	}
}

// TestRunLogsJSON: -log-format json -log-level debug logs every line as a
// JSON object, the request's line with its id among them; at the default
// level, the request's line is not logged.
func TestRunLogsJSON(t *testing.T) {
	t.Parallel()
	get := func(addr string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+"/livez", nil)
		req.Header.Set("X-Request-Id", "test-id-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	r := startRun(t, nil, "-log-format", "json", "-log-level", "debug")
	get(r.addr)
	if err := r.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	var requests int
	for line := range strings.Lines(r.log.String()) {
		var record struct {
			Level   string
			Msg     string
			Request struct{ ID, Path string }
		}
		if err := json.Unmarshal([]byte(line), &record); err != nil {
			t.Errorf("a line that is not JSON: %s", line)
			continue
		}
		if record.Msg == "request" && record.Request.ID == "test-id-1" && record.Request.Path == "/livez" && record.Level == "DEBUG" {
			requests++
		}
	}
	if requests != 1 {
		t.Errorf("want the request's line once, with its id, got it %d times:\n%s", requests, r.log.String())
	}

	r = startRun(t, nil)
	get(r.addr)
	if err := r.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if strings.Contains(r.log.String(), "test-id-1") {
		t.Errorf("at the default level (info) the request's line is logged:\n%s", r.log.String())
	}
}

// TestRunLimitsCheckouts: the limits' flags reach the server.
func TestRunLimitsCheckouts(t *testing.T) {
	t.Parallel()
	post := func(addr, key, body string) *http.Response {
		t.Helper()
		resp, err := http.Post(fmt.Sprintf("http://%s/checkout/%s", addr, key), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	r := startRun(t, nil, "-checkouts-per-minute", "2")
	for i, want := range []int{200, 200, 429} {
		resp := post(r.addr, fmt.Sprint("key-", i), "")
		if resp.StatusCode != want || want == 429 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("checkout %d: %s, Retry-After %q; want %d", i, resp.Status, resp.Header.Get("Retry-After"), want)
		}
	}

	r = startRun(t, nil, "-checkouts-per-minute", "0", "-pending-units", "10")
	for i, want := range []int{200, 429} {
		resp := post(r.addr, fmt.Sprint("units-", i), `{"product_id": 1, "quantity": 10}`)
		if resp.StatusCode != want || want == 429 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("checkout %d of 10 units: %s, Retry-After %q; want %d", i, resp.Status, resp.Header.Get("Retry-After"), want)
		}
	}
}

// shopRun is run, serving in this process.
type shopRun struct {
	addr   string          // where it listens
	log    *logtest.Buffer // its log
	cancel func()          // stops it
	done   chan error      // run's result

	stopOnce sync.Once
	err      error // run's result, once stopped
}

// startRun runs the shop in-process without its supervisor on a free
// loopback port and a fresh SQLite file, with args and env beside, and
// returns once it listens. It is stopped when the test ends.
func startRun(t *testing.T, env map[string]string, args ...string) *shopRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stdoutW := io.Pipe()
	r := &shopRun{log: &logtest.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	args = append([]string{"-supervise=false", "-addr", "127.0.0.1:0", "-db", dbtest.NewDatabase(t, "sqlite")}, args...)
	go func() {
		r.done <- run(ctx, args, func(k string) string { return env[k] }, stdoutW, r.log)
		stdoutW.Close()
	}()
	t.Cleanup(func() { r.stop() })

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the address: %v (run: %v)\n%s", err, r.stop(), r.log.String())
	}
	go io.Copy(io.Discard, stdout)
	r.addr = strings.TrimSpace(strings.TrimPrefix(line, "widgetstore listening on "))
	return r
}

// stop cancels run and returns its result.
func (r *shopRun) stop() error {
	r.stopOnce.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(30 * time.Second):
			r.err = errors.New("run did not return 30 s after its context was cancelled")
		}
	})
	return r.err
}
