package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// panicEnv, set, makes the test binary panic at its start: a real Go
// panic's output for TestJSONLinesWrapsAPanic.
const panicEnv = "WIDGETSTORE_TEST_PANIC"

func TestMain(m *testing.M) {
	if os.Getenv(panicEnv) != "" {
		panic("the test asked for a panic")
	}
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built is the widgetstore binary, built once by the first test that needs
// it (buildBinary).
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildBinary returns the path of the real widgetstore binary.
func buildBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "widgetstore-cmd"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "widgetstore")
		out, err := exec.Command("go", "build", "-o", built.path, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("building widgetstore: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// binaryRun is the real binary, running.
type binaryRun struct {
	cmd            *exec.Cmd
	stdout, stderr *lines
	done           chan error // its exit
}

// lines collects what a process writes, line by line.
type lines struct {
	mu    sync.Mutex
	lines []string
	added chan struct{} // a token per line
}

func collect(r io.Reader) *lines {
	l := &lines{added: make(chan struct{}, 10_000)}
	go func() {
		scanner := bufio.NewScanner(r)
		scanner.Buffer(make([]byte, 1<<20), 1<<20)
		for scanner.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, scanner.Text())
			l.mu.Unlock()
			select {
			case l.added <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// wait returns the first line that ok takes, failing the test after 60 s.
func (l *lines) wait(t testing.TB, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		for _, line := range l.all() {
			if ok(line) {
				return line
			}
		}
		select {
		case <-l.added:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waited 60 s for %s; the lines: %q", what, l.all())
		}
	}
}

// startBinary starts the binary with args, and env added to the test's
// environment; it is stopped with SIGTERM (then SIGKILL) when the test
// ends.
func startBinary(t testing.TB, env []string, args ...string) *binaryRun {
	t.Helper()
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &binaryRun{cmd: cmd, stdout: collect(stdout), stderr: collect(stderr), done: make(chan error, 1)}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop sends SIGTERM and waits for the exit, SIGKILL after 30 s.
func (r *binaryRun) stop(t testing.TB) error {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		t.Errorf("widgetstore did not stop 30 s after SIGTERM")
		return <-r.done
	}
}

// addr waits for the n-th listen line (from 1) and returns its address,
// the line being text or a JSON record.
func (r *binaryRun) addr(t testing.TB, n int) string {
	t.Helper()
	var listens []string
	r.stdout.wait(t, fmt.Sprintf("listen line %d", n), func(string) bool {
		listens = listens[:0]
		for _, line := range r.stdout.all() {
			if strings.Contains(line, listenLine) {
				listens = append(listens, line)
			}
		}
		return len(listens) >= n
	})
	return listenAddr(listens[n-1])
}

// listenAddr is the address of a listen line, text or a JSON record.
func listenAddr(line string) string {
	var record struct{ Addr string }
	if json.Unmarshal([]byte(line), &record) == nil && record.Addr != "" {
		return record.Addr
	}
	return strings.TrimSpace(strings.TrimPrefix(line, listenLine))
}
