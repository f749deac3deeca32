package chaos_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
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
// database across restarts. Its first run binds a free port of its own
// choosing (127.0.0.1:0) and prints where it listens; later runs come back
// to that address, as a restarted server would, unless it was taken
// meanwhile.
type shop struct {
	t    testing.TB
	db   string
	args []string
	env  []string // added to the test's environment, such as SMTP_URL=…
	bin  string   // the binary it runs: binary unless set (upgrade_test.go)
	// posting counts the requests of postJSON under way, for a kill to
	// land during one.
	posting atomic.Int32
	cut     atomic.Int32 // requests of postJSON a kill cut
	cmd     *exec.Cmd
	done    chan struct{}
	runs    int
	http    *http.Client
	start   time.Time // when the current run was started

	mu        sync.Mutex
	log       bytes.Buffer  // everything every run printed
	runLog    int           // where the current run's output starts in log
	addr      string        // where the shop listens (or last listened): HOST:PORT
	listening chan struct{} // closed when the current run prints its address
}

func newShop(t testing.TB, databaseURL string, args ...string) *shop {
	t.Helper()
	s := &shop{t: t, db: databaseURL, args: args, http: &http.Client{Timeout: 30 * time.Second}}
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

// runOutput is what the current run has printed so far.
func (s *shop) runOutput() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()[s.runLog:]
}

// url is where the shop serves now: http://HOST:PORT.
func (s *shop) url() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.addr
}

// listenLine starts the line a run prints on stdout once it listens.
const listenLine = "widgetstore listening on "

// stdout reads a run's standard output into the log, and takes the
// address from each listenLine: a supervised shop prints one per server
// it starts.
type stdout struct {
	s         *shop
	listening chan struct{}
	partial   []byte
}

func (w *stdout) Write(p []byte) (int, error) {
	w.s.Write(p)
	w.partial = append(w.partial, p...)
	for {
		line, rest, ok := bytes.Cut(w.partial, []byte("\n"))
		if !ok {
			return len(p), nil
		}
		w.partial = rest
		if addr, ok := strings.CutPrefix(string(line), listenLine); ok {
			w.s.mu.Lock()
			w.s.addr = strings.TrimSpace(addr)
			w.s.mu.Unlock()
			select {
			case <-w.listening:
			default:
				close(w.listening)
			}
		}
	}
}

// startProcess starts a run and returns without waiting for it to serve.
func (s *shop) startProcess(extra ...string) {
	s.t.Helper()
	s.runs++
	s.mu.Lock()
	fmt.Fprintf(&s.log, "--- run %d ---\n", s.runs)
	s.runLog = s.log.Len()
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s.listening = make(chan struct{})
	out := &stdout{s: s, listening: s.listening}
	s.mu.Unlock()
	args := append([]string{"-addr", addr, "-db", s.db}, s.args...)
	s.cmd = exec.Command(cmp.Or(s.bin, binary), append(args, extra...)...)
	s.cmd.Stdout, s.cmd.Stderr = out, s
	s.cmd.Env = append(os.Environ(), s.env...)
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
// When the address of the run before was taken while the shop was down, it
// moves to a new one, as the first run chose it.
func (s *shop) run() {
	s.t.Helper()
	s.startProcess("-supervise=false")
	if s.awaitListening() {
		s.awaitHealthy()
		return
	}
	if !strings.Contains(s.runOutput(), "address already in use") {
		s.t.Fatalf("the shop exited before serving:\n%s", s.output())
	}
	s.mu.Lock()
	s.t.Logf("%s was taken while the shop was down: moving to a free port", s.addr)
	s.addr = ""
	s.mu.Unlock()
	s.startProcess("-supervise=false")
	s.awaitHealthy()
}

// awaitListening waits for the run to print where it listens, and reports
// whether it did; false means it exited first.
func (s *shop) awaitListening() bool {
	s.t.Helper()
	select {
	case <-s.listening:
		return true
	case <-s.done:
		select {
		case <-s.listening: // it printed, then died
			return true
		default:
			return false
		}
	case <-time.After(60 * time.Second):
		s.t.Fatalf("the shop did not listen within a minute:\n%s", s.output())
		return false
	}
}

// awaitHealthy waits for the run to listen, then for GET /healthz to
// answer 200.
func (s *shop) awaitHealthy() {
	s.t.Helper()
	if !s.awaitListening() {
		s.t.Fatalf("the shop exited before serving:\n%s", s.output())
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			s.t.Fatalf("the shop exited before serving:\n%s", s.output())
		default:
		}
		resp, err := s.http.Get(s.url() + "/healthz")
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
// Without a run, it does nothing.
func (s *shop) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// stop asks the run to shut down cleanly (SIGTERM), and fails the test
// unless it exits with status 0 within 30 s. Without a run (after kill,
// say), it does nothing.
func (s *shop) stop() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
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
	resp, err := s.http.Post(s.url()+path, "", nil)
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
	// UpdatedAt is when the order last changed: a dispatched order's
	// dispatch.
	UpdatedAt time.Time `json:"last_update_time"`
}

func (s *shop) getJSON(path string, v any) error {
	resp, err := s.http.Get(s.url() + path)
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
	resp, err := s.http.Get(s.url() + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// TestHarnessComesBackOnItsAddress: the harness's shop takes the port it
// was given at its first run (it asks for 127.0.0.1:0) and comes back to it
// after a kill; a stop with nothing running does nothing.
func TestHarnessComesBackOnItsAddress(t *testing.T) {
	t.Parallel()
	s := newShop(t, dbtest.NewDatabase(t, "sqlite"))
	s.run()
	first := s.url()
	if strings.HasSuffix(first, ":0") || !strings.HasPrefix(first, "http://127.0.0.1:") {
		t.Fatalf("the shop serves at %s, want 127.0.0.1 and the port it was given", first)
	}
	s.kill()
	s.stop() // after a kill: nothing to stop
	s.run()
	if again := s.url(); again != first {
		t.Errorf("after a kill the shop came back at %s, want %s", again, first)
	}
	if n := strings.Count(s.output(), listenLine); n != 2 {
		t.Errorf("%d lines %q in the output of two runs, want 2", n, listenLine)
	}
	s.stop()
	s.stop()
}
