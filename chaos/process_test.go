package chaos_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the widgetstore built once for all the tests, with buildFlags.
var (
	binary     string
	buildFlags []string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "widgetstore-chaos")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "widgetstore")
	args := append([]string{"build", "-o", binary}, buildFlags...)
	build := exec.Command("go", append(args, "../cmd/widgetstore")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building widgetstore:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shop is the real widgetstore binary, run as a child process on one
// database and one port across restarts.
type shop struct {
	t     testing.TB
	url   string // http://127.0.0.1:PORT
	addr  string
	db    string
	args  []string
	cmd   *exec.Cmd
	done  chan struct{}
	mu    sync.Mutex
	log   bytes.Buffer // everything every run printed
	runs  int
	http  *http.Client
	start time.Time // when the current run was started
}

func newShop(t testing.TB, databaseURL string, args ...string) *shop {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &shop{t: t, url: "http://" + addr, addr: addr, db: databaseURL, args: args,
		http: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		s.kill()
		if strings.Contains(s.output(), "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in the shop")
		}
		if t.Failed() {
			t.Logf("the shop's output:\n%s", s.output())
		}
	})
	return s
}

func (s *shop) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

func (s *shop) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// startProcess starts a run and returns without waiting for it to serve.
func (s *shop) startProcess(extra ...string) {
	s.t.Helper()
	s.runs++
	fmt.Fprintf(s, "--- run %d ---\n", s.runs)
	args := append([]string{"-addr", s.addr, "-db", s.db}, s.args...)
	s.cmd = exec.Command(binary, append(args, extra...)...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	// Its own process group, so killing it can take a supervised child too.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.start = time.Now()
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.cmd, s.done)
}

// run starts the server without its supervisor and waits until it serves.
func (s *shop) run() {
	s.t.Helper()
	s.startProcess("-supervise=false")
	s.awaitHealthy()
}

// awaitHealthy waits for GET /healthz to answer 200.
func (s *shop) awaitHealthy() {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			s.t.Fatalf("the shop exited before serving:\n%s", s.output())
		default:
		}
		resp, err := s.http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("the shop did not serve within a minute:\n%s", s.output())
}

// kill sends SIGKILL to the run's process group and waits for it to die.
func (s *shop) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// stop asks the run to shut down cleanly (SIGTERM), and fails the test
// unless it exits with status 0 within 30 s.
func (s *shop) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			s.t.Errorf("the shop exited with status %d after SIGTERM", code)
		}
	case <-time.After(30 * time.Second):
		s.t.Errorf("the shop did not stop within 30 s of SIGTERM")
	}
	s.kill()
}

// post sends a request and returns status and body; a transport error
// (the shop is down) is returned as err.
func (s *shop) post(path string) (int, string, error) {
	resp, err := s.http.Post(s.url+path, "", nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// mustPost fails the test unless the request answers 200.
func (s *shop) mustPost(path string) string {
	s.t.Helper()
	status, body, err := s.post(path)
	if err != nil || status != 200 {
		s.t.Fatalf("POST %s: %d %s %v", path, status, body, err)
	}
	return body
}

type order struct {
	ID                int64  `json:"order_id"`
	Status            string `json:"status"`
	CancelReason      string `json:"cancel_reason"`
	ProgressRemaining int    `json:"progress_remaining"`
	PaymentID         string `json:"payment_id"`
	ProductID         int64  `json:"product_id"`
	Quantity          int    `json:"quantity"`
}

func (s *shop) getJSON(path string, v any) error {
	resp, err := s.http.Get(s.url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (s *shop) order(id string) order {
	s.t.Helper()
	var o order
	if err := s.getJSON("/order/"+id, &o); err != nil {
		s.t.Fatal(err)
	}
	return o
}

// awaitOrder polls an order until done says it is, or fails after a minute.
func (s *shop) awaitOrder(id string, what string, done func(order) bool) order {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		o := s.order(id)
		if done(o) {
			return o
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("order %s: %+v; waited a minute for it to be %s", id, o, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// get sends a GET and returns status and body; a transport error is err.
func (s *shop) get(path string) (int, string, error) {
	resp, err := s.http.Get(s.url + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}
