package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantDB   string
	}{
		{"defaults", nil, nil, ":8080", "sqlite:data/widgetstore.db"},
		{"PORT", nil, map[string]string{"PORT": "9000"}, ":9000", "sqlite:data/widgetstore.db"},
		{"DATABASE_URL", nil, map[string]string{"DATABASE_URL": "postgres://a/b", "DBOS_SYSTEM_DATABASE_URL": "postgres://c/d"}, ":8080", "postgres://a/b"},
		{"DBOS_SYSTEM_DATABASE_URL", nil, map[string]string{"DBOS_SYSTEM_DATABASE_URL": "postgres://c/d"}, ":8080", "postgres://c/d"},
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
}

// TestRunServesAndShutsDown runs the server in-process on a free port and a
// fresh SQLite file, then cancels it: run must shut down cleanly.
func TestRunServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stdoutW := io.Pipe()
	args := []string{"-supervise=false", "-addr", "127.0.0.1:0", "-db", dbtest.NewDatabase(t, "sqlite")}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(string) string { return "" }, stdoutW, io.Discard)
		stdoutW.Close()
	}()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the address: %v (run: %v)", err, <-done)
	}
	go io.Copy(io.Discard, stdout)
	addr := strings.TrimSpace(strings.TrimPrefix(line, "widgetstore listening on "))
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /healthz: %s", resp.Status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return 30 s after its context was cancelled")
	}
}
