// Package stripemock runs a real stripe-mock process for tests
// (github.com/stripe/stripe-mock, which validates every request against
// Stripe's OpenAPI spec and answers with its fixtures), behind a small
// recording reverse proxy: stripe-mock keeps no state, so what the shop
// asked of it, and under which idempotency keys, is counted there.
//
// The binary is STRIPE_MOCK_BIN, or stripe-mock on the PATH or in
// $(go env GOPATH)/bin. Without it a test is skipped, and under CI=true it
// fails: CI installs it (go install github.com/stripe/stripe-mock@v0.203.0).
package stripemock

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKey is a secret key stripe-mock takes (it takes any sk_test_ key).
const TestKey = "sk_test_widgetstore0000"

// Request is one API request the proxy passed on, and how it was answered.
type Request struct {
	Method, Path   string
	IdempotencyKey string
	Status         int
}

// Server is a stripe-mock process behind the recording proxy.
type Server struct {
	// URL is the proxy's: point the provider's API URL (STRIPE_API_URL)
	// at it.
	URL string

	mu       sync.Mutex
	requests []Request
	// refuse answers requests whose path has this prefix with Stripe's
	// 400 itself, without passing them on ("" for none).
	refuse string
	// beforeAnswer, when set, is called with each request stripe-mock has
	// answered, before the answer goes back: a chaos test kills the shop
	// there, after Stripe acted and before the shop heard of it.
	beforeAnswer func(Request)
}

// Binary returns the path of the stripe-mock binary, skipping the test
// when there is none (failing it under CI=true).
func Binary(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("STRIPE_MOCK_BIN")}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		candidates = append(candidates, p)
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, "go", "bin", "stripe-mock"))
	}
	if gopath := os.Getenv("GOPATH"); gopath != "" {
		candidates = append(candidates, filepath.Join(gopath, "bin", "stripe-mock"))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if info, err := os.Stat(c); err == nil && !info.IsDir() {
			return c
		}
	}
	const install = "go install github.com/stripe/stripe-mock@v0.203.0, or set STRIPE_MOCK_BIN"
	if os.Getenv("CI") == "true" {
		t.Fatalf("stripe-mock not found, and CI=true requires it: %s", install)
	}
	t.Skipf("skipping: stripe-mock not found (%s)", install)
	return ""
}

var listening = regexp.MustCompile(`Listening for HTTP at address: (\S+)`)

// Start starts stripe-mock on a free loopback port, and the proxy in
// front of it; both stop when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	ctx, cancel := context.WithCancel(context.Background())
	// Both listeners on free loopback ports: stripe-mock's HTTPS one
	// defaults to a fixed port, which tests in parallel would fight over.
	cmd := exec.CommandContext(ctx, bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting stripe-mock: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait() // killed: its exit status says so
	})
	addr := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(out)
		for scanner.Scan() {
			if m := listening.FindStringSubmatch(scanner.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var upstream string
	select {
	case upstream = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatal("stripe-mock did not say where it listens within 30 s")
	}
	target, err := url.Parse("http://" + upstream)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		s.record(resp.Request, resp.StatusCode)
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if prefix := s.refused(); prefix != "" && strings.HasPrefix(r.URL.Path, prefix) {
			s.record(r, http.StatusBadRequest)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error": {"type": "invalid_request_error", "code": "charge_already_refunded", "message": "Charge has already been refunded (the test's refusal)."}}`) //nolint:errcheck // the client left
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *Server) record(r *http.Request, status int) {
	req := Request{Method: r.Method, Path: r.URL.Path, IdempotencyKey: r.Header.Get("Idempotency-Key"), Status: status}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	hook := s.beforeAnswer
	s.mu.Unlock()
	if hook != nil {
		hook(req)
	}
}

func (s *Server) refused() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refuse
}

// Refuse makes the proxy answer every request whose path has prefix with
// Stripe's 400 itself, as Stripe refuses a refund of a charge refunded
// already, or the expiry of a session paid; "" refuses none.
func (s *Server) Refuse(prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = prefix
}

// BeforeAnswer sets fn to be called with each request stripe-mock has
// answered, before the answer goes back to the client; nil for none.
func (s *Server) BeforeAnswer(fn func(Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeAnswer = fn
}

// Requests returns the requests passed on so far whose path has prefix.
func (s *Server) Requests(prefix string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}
