package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestPprofAddrIsLoopbackOnly: Go's profiles are served on loopback or not
// at all.
func TestPprofAddrIsLoopbackOnly(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{"": true, "127.0.0.1:6060": true, "localhost:6060": true, "[::1]:6060": true,
		":6060": false, "0.0.0.0:6060": false, "192.168.1.5:6060": false, "6060": false} {
		_, err := parseConfig([]string{"-pprof-addr", addr}, func(string) string { return "" }, io.Discard)
		if (err == nil) != ok {
			t.Errorf("-pprof-addr %q: %v, want ok %v", addr, err, ok)
		}
	}
}

// TestPprofServesOnItsOwnAddress: with -pprof-addr the profiles are served
// there, and never on the shop's own address.
func TestPprofServesOnItsOwnAddress(t *testing.T) {
	t.Parallel()
	r := startRun(t, nil, "-pprof-addr", "127.0.0.1:0")
	m := regexp.MustCompile(`serving Go.s profiles"? url=(\S+)`).FindStringSubmatch(r.log.String())
	if m == nil {
		t.Fatalf("no line says where the profiles are served:\n%s", r.log.String())
	}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := get(m[1] + "goroutine?debug=1"); status != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("GET %sgoroutine?debug=1: %d %q", m[1], status, body)
	}
	if status, body := get("http://" + r.addr + "/debug/pprof/goroutine?debug=1"); strings.Contains(body, "goroutine profile:") {
		t.Errorf("the shop's own address serves the profiles: %d %q", status, body)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}
