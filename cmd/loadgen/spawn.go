package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// startTimeout bounds a shop's start: migrations, DBOS's launch (on
	// PostgreSQL it builds its indexes) and the listener.
	startTimeout = 90 * time.Second
	// stopTimeout bounds a shop's stop after SIGTERM (it gives DBOS 10 s
	// to shut down), before SIGKILL.
	stopTimeout = 20 * time.Second
	// listeningPrefix starts the line the shop prints on stdout once it
	// serves.
	listeningPrefix = "widgetstore listening on "
)

// shopProcess is a widgetstore started by loadgen on a database of its
// own, with secrets of its own.
type shopProcess struct {
	engine        string
	baseURL       string // http://127.0.0.1:PORT
	pid           int
	webhookSecret []byte
	operatorToken string
	db            *benchDatabase

	dir    string // the run's temporary directory: the shop's log, SQLite's file
	logf   *os.File
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
}

// startShop creates a fresh database on engine and starts bin on it, on a
// loopback port, and returns once it serves: a widgetstore with args and
// then -shop-args, DBOS's demo as startDemo says.
func startShop(ctx context.Context, cfg config, bin shopBinary, engine string, args []string) (_ *shopProcess, err error) {
	dir, err := os.MkdirTemp("", "loadgen-*")
	if err != nil {
		return nil, fmt.Errorf("making the run's directory: %w", err)
	}
	p := &shopProcess{engine: engine, dir: dir, exited: make(chan struct{}),
		webhookSecret: []byte(rand.Text()), operatorToken: rand.Text()}
	defer func() {
		if err != nil {
			p.cleanUp(context.WithoutCancel(ctx))
		}
	}()

	if p.db, err = newBenchDatabase(ctx, engine, dir, cfg.pgAdminURL); err != nil {
		return nil, err
	}
	if p.logf, err = os.Create(filepath.Join(dir, "shop.log")); err != nil {
		return nil, fmt.Errorf("making the shop's log: %w", err)
	}
	var listening <-chan string // the address it serves at, once it does
	if bin.Demo {
		listening, err = p.startDemo(ctx, bin)
	} else {
		listening, err = p.startWidgetstore(cfg, bin, args)
	}
	if err != nil {
		return nil, err
	}
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case addr := <-listening:
		if p.baseURL, err = loopbackURL(addr); err != nil {
			return nil, err
		}
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("the shop exited before serving (%s)%s", p.cmd.ProcessState, p.logTail())
	case <-timer.C:
		return nil, fmt.Errorf("the shop did not serve within %s%s", startTimeout, p.logTail())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startWidgetstore starts a widgetstore on the run's database, on
// loopback, with both secrets; its address comes on the channel once it
// prints that it listens.
func (p *shopProcess) startWidgetstore(cfg config, bin shopBinary, args []string) (<-chan string, error) {
	// Loopback and both secrets always: later shops may refuse to serve
	// anything else without secrets.
	args = append([]string{"-supervise=false", "-crash-button=false", "-addr", "127.0.0.1:0", "-db", p.db.url}, args...)
	cmd := exec.Command(bin.Path, append(args, cfg.shopArgs...)...)
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+string(p.webhookSecret), "OPERATOR_TOKEN="+p.operatorToken)
	// An os.Pipe rather than StdoutPipe: its reader may run after Wait.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("piping the shop's stdout: %w", err)
	}
	cmd.Stdout = stdoutW
	err = p.start(cmd)
	stdoutW.Close()
	if err != nil {
		stdout.Close()
		return nil, err
	}
	addr := make(chan string, 1)
	go readStdout(stdout, p.logf, addr)
	return addr, nil
}

// start starts cmd as the run's shop, its output (what is not read
// otherwise) to the run's log, and watches for its exit.
func (p *shopProcess) start(cmd *exec.Cmd) error {
	p.cmd = cmd
	if cmd.Stdout == nil {
		cmd.Stdout = p.logf
	}
	cmd.Stderr = p.logf
	stopWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	return nil
}

// readStdout sends the address of the shop's "widgetstore listening on"
// line on addr, and copies the shop's stdout to its log until it ends.
func readStdout(stdout *os.File, log io.Writer, addr chan<- string) {
	defer stdout.Close()
	defer close(addr)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(log, line)
		if a, ok := strings.CutPrefix(line, listeningPrefix); ok {
			select {
			case addr <- strings.TrimSpace(a):
			default:
			}
		}
	}
}

// loopbackURL is the shop's URL from the address it listens on, which
// must be loopback: loadgen sends traffic nowhere else.
func loopbackURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("the shop's address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("the shop listens on %s, not a loopback address", addr)
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// stop sends SIGTERM and waits for the shop to exit, then SIGKILL after
// stopTimeout.
func (p *shopProcess) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// cleanUp stops the shop, drops its database and removes its directory.
func (p *shopProcess) cleanUp(ctx context.Context) error {
	p.stop()
	var errs []error
	if p.db != nil {
		errs = append(errs, p.db.drop(ctx))
	}
	if p.logf != nil {
		p.logf.Close()
	}
	errs = append(errs, os.RemoveAll(p.dir))
	return errors.Join(errs...)
}

// logTail is the end of the shop's log, to say why it failed.
func (p *shopProcess) logTail() string {
	b, err := os.ReadFile(filepath.Join(p.dir, "shop.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return "; the shop's log ends:\n  " + strings.Join(lines[max(0, len(lines)-15):], "\n  ")
}

// benchDatabase is a run's fresh database: a SQLite file in the run's
// directory, or a PostgreSQL database bench_<random> dropped afterwards.
type benchDatabase struct {
	url      string // what the shop's -db gets
	name     string // PostgreSQL's database name
	adminURL string
}

func newBenchDatabase(ctx context.Context, engine, dir, adminURL string) (*benchDatabase, error) {
	if engine == "sqlite" {
		return &benchDatabase{url: "sqlite:" + filepath.Join(dir, "shop.db")}, nil
	}
	db := &benchDatabase{name: "bench_" + strings.ToLower(rand.Text()[:16]), adminURL: adminURL}
	admin, err := connectPG(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db.name); err != nil {
		return nil, fmt.Errorf("creating database %s: %w", db.name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return nil, fmt.Errorf("-pg-admin-url: %w", err)
	}
	u.Path = "/" + db.name
	db.url = u.String()
	return db, nil
}

// drop drops a PostgreSQL database, with FORCE: a shop that was killed
// may leave connections behind.
func (db *benchDatabase) drop(ctx context.Context) error {
	if db.name == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	admin, err := connectPG(ctx, db.adminURL)
	if err != nil {
		return fmt.Errorf("dropping database %s: %w", db.name, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db.name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %s: %w", db.name, err)
	}
	return nil
}

// connectPG connects to PostgreSQL on this machine only: the URL was
// checked, and the dialer checks each address again.
func connectPG(ctx context.Context, rawURL string) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parsing the PostgreSQL URL: %w", err)
	}
	pc.DialFunc = loopbackDialer(10 * time.Second).DialContext
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w", redactURL(rawURL), err)
	}
	return conn, nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// benchFlags are the shop's flags that loadgen sets for every run where the
// build has them (older builds do not, and would refuse an unknown flag):
// the per-client checkout limits guard against one client hoarding the
// stock, and loadgen's customers are all one client, 127.0.0.1. -shop-args
// come after them, so they can set them otherwise.
var benchFlags = []struct{ name, value string }{
	{"checkouts-per-minute", "0"},
	{"pending-units", "0"},
}

// shopFlagsFor returns the benchFlags that the binary has, as arguments,
// from what its -h lists.
func shopFlagsFor(ctx context.Context, bin shopBinary) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// -h makes the shop print its flags and exit 1 before it opens
	// anything; an exit code is no error here, no listing is.
	out, _ := exec.CommandContext(ctx, bin.Path, "-h").CombinedOutput()
	listed := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok && strings.HasPrefix(line, "  -") {
			name, _, _ = strings.Cut(name, " ")
			listed[name] = true
		}
	}
	if len(listed) == 0 {
		return nil, fmt.Errorf("%s -h lists no flags: is it a widgetstore?", bin.Path)
	}
	var args []string
	for _, f := range benchFlags {
		if listed[f.name] {
			args = append(args, "-"+f.name, f.value)
		}
	}
	return args, nil
}
