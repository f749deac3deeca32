package chaos_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultPostgresBin is where Debian's PostgreSQL 15 server binaries are;
// POSTGRES_BIN names another directory.
const defaultPostgresBin = "/usr/lib/postgresql/15/bin"

// noPrimaryFor is how long the test leaves the shop without a primary
// after a kill, before it promotes the standby: what a failover manager
// takes to see the primary gone. It is longer than a checkout waits for
// its start to be recorded (checkout.startWait, 5 s), so the checkouts
// caught by the kill are answered 503 too, and sent again.
const noPrimaryFor = 6 * time.Second

// defaultFailoverRounds bounds the test's time in CI; FAILOVER_ROUNDS asks
// for more.
const defaultFailoverRounds = 2

// TestDatabaseFailover runs the shop on a PostgreSQL primary and its
// synchronous standby, reached by a multi-host URL that asks for the one
// taking writes (target_session_attrs=read-write), while customers check
// out and pay. Each round kills the primary with SIGKILL, the machine's
// failure, and promotes the standby, as an operator or a failover manager
// would; then a new standby is made from the new primary, and the next
// round fails over back. The shop must serve again after the failover
// without a restart, answer 503 with Retry-After (never 500) while no
// primary takes writes, and lose nothing it acknowledged: every
// acknowledged checkout is paid, every acknowledged payment's order is
// PAID or DISPATCHED, every checkout workflow succeeds, and the books
// balance. It logs each round's pause, from the kill to the first
// checkout answered 200, and the answers given meanwhile.
func TestDatabaseFailover(t *testing.T) {
	t.Parallel()
	rounds := defaultFailoverRounds
	if env := os.Getenv("FAILOVER_ROUNDS"); env != "" {
		var err error
		if rounds, err = strconv.Atoi(env); err != nil || rounds < 1 {
			t.Fatalf("FAILOVER_ROUNDS=%q: want a positive number", env)
		}
	}
	c := newPGCluster(t)
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/widgetstore?sslmode=disable&target_session_attrs=read-write&connect_timeout=5",
		c.nodes[0].port, c.nodes[1].port)
	// Two instances, as behind a load balancer: the customers check out
	// on one and their payments are reported to the other, whose message
	// wakes the checkout through the first one's LISTEN connection, which
	// DBOS must take again after each failover. The payment deadline is
	// far beyond the test's waits, so that a checkout never woken by its
	// payment would fail it rather than end at its deadline.
	args := []string{"-checkouts-per-minute", "0", "-pending-units", "0", "-dispatch-steps", "3", "-dispatch-interval", "100ms", "-payment-timeout", "30m"}
	s := newShop(t, url, append(args, "-executor-id", "shop-a")...)
	payVia := newShop(t, url, append(args, "-executor-id", "shop-b")...)
	s.run()
	payVia.run()
	s.restockFor()
	l := startLoadVia(s, payVia, "failover", 4)
	defer l.stop()

	var pauses, afterPromotion []time.Duration
	refused := map[int]int{} // status -> answers between a kill and the first checkout served after it
	for round := 1; round <= rounds; round++ {
		waitForPayments(t, l, l.paid()+20) // load on the primary before each kill
		c.awaitSynchronous()

		killed := c.killPrimary()
		time.Sleep(noPrimaryFor)
		promoting := time.Now()
		c.promoteStandby()
		promoted := time.Since(promoting)
		// A checkout answered before the promotion was served by the old
		// primary, its answer arriving after the kill.
		served := awaitCheckoutServed(t, l, promoting)
		pause := served.Sub(killed)
		pauses = append(pauses, pause)
		afterPromotion = append(afterPromotion, served.Sub(promoting))
		withoutPrimary, sincePromotion := l.answersBetween(killed, promoting), l.answersBetween(promoting, served)
		for _, counts := range []map[int]int{withoutPrimary, sincePromotion} {
			for status, n := range counts {
				refused[status] += n
			}
		}
		t.Logf("round %d: primary killed; %v later the standby promoted in %v; first checkout served %v after the kill (%v after the promotion began); "+
			"answers by status without a primary: %v (the last 200 %v after the kill), from the promotion to the first checkout served: %v",
			round, noPrimaryFor, promoted.Round(time.Millisecond), pause.Round(time.Millisecond), served.Sub(promoting).Round(time.Millisecond),
			withoutPrimary, l.lastServedBefore(promoting).Sub(killed).Round(time.Millisecond), sincePromotion)
		c.rebuildStandby()
	}
	waitForPayments(t, l, l.paid()+20) // served by the last primary
	l.stop()
	l.finish(t)
	l.checkNothingLost(t, url)
	s.checkBooks()

	slices.Sort(pauses)
	slices.Sort(afterPromotion)
	t.Logf("%d failovers: from the kill to the first checkout served, p50 %v, max %v (of which %v without a primary); from the promotion's start, p50 %v, max %v; "+
		"answers meanwhile by status (0: none): %v; acknowledged: %d checkouts, %d payments, none lost",
		rounds, pauses[(len(pauses)-1)/2].Round(time.Millisecond), pauses[len(pauses)-1].Round(time.Millisecond), noPrimaryFor,
		afterPromotion[(len(afterPromotion)-1)/2].Round(time.Millisecond), afterPromotion[len(afterPromotion)-1].Round(time.Millisecond),
		refused, len(l.checkouts), len(l.payments))
	if n := refused[500]; n > 0 {
		t.Errorf("%d answers 500 while no primary took writes, want 503", n)
	}
	if refused[503] == 0 {
		t.Errorf("no answer 503 in %d failovers of %v without a primary: the customers waited, or were answered otherwise: %v", rounds, noPrimaryFor, refused)
	}
	s.stop()
	payVia.stop()
}

// awaitCheckoutServed waits for the load's first checkout answered 200
// after since, and returns when it was answered.
func awaitCheckoutServed(t *testing.T, l *load, since time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		l.mu.Lock()
		for _, a := range l.answers {
			if a.checkout && a.status == 200 && a.at.After(since) {
				l.mu.Unlock()
				return a.at
			}
		}
		wrong := l.wrong
		l.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no checkout served within two minutes of the failover; wrong answers: %q", wrong)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lastServedBefore is when the last answer 200 before t came.
func (l *load) lastServedBefore(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var last time.Time
	for _, a := range l.answers {
		if a.status == 200 && a.at.Before(t) && a.at.After(last) {
			last = a.at
		}
	}
	return last
}

// paid is how many payments were acknowledged so far.
func (l *load) paid() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.payments)
}

// answersBetween counts the load's answers in [from, to) by status (0: no
// answer).
func (l *load) answersBetween(from, to time.Time) map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	counts := map[int]int{}
	for _, a := range l.answers {
		if !a.at.Before(from) && a.at.Before(to) {
			counts[a.status]++
		}
	}
	return counts
}

// pgCluster is a PostgreSQL primary and its synchronous standby, started
// from the server binaries on this machine in a temporary directory, each
// on a free port of its own. The server refuses to run as root, so under
// root they run as the user postgres.
type pgCluster struct {
	t       *testing.T
	bin     string
	dir     string
	cred    *syscall.Credential // nil: run as this process's user
	nodes   [2]*pgNode
	primary int // index in nodes
}

type pgNode struct {
	name string // its directory under the cluster's, and its log's name
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func (n *pgNode) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", n.port)
}

// newPGCluster starts a primary and a synchronous standby streaming from
// it. It skips the test when the server binaries are absent, and fails it
// then under CI=true.
func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	bin := os.Getenv("POSTGRES_BIN")
	if bin == "" {
		bin = defaultPostgresBin
	}
	for _, tool := range []string{"initdb", "postgres", "pg_basebackup"} {
		if _, err := os.Stat(filepath.Join(bin, tool)); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("PostgreSQL's server binaries are needed (%v), and CI=true requires them: install postgresql-15, or set POSTGRES_BIN", err)
			}
			t.Skipf("skipping: PostgreSQL's server binaries are absent (%v): install postgresql-15, or set POSTGRES_BIN", err)
		}
	}
	dir, err := os.MkdirTemp("", "widgetstore-failover")
	if err != nil {
		t.Fatal(err)
	}
	c := &pgCluster{t: t, bin: bin, dir: dir}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n != nil {
				n.kill()
			}
		}
		if t.Failed() {
			c.logTails()
		}
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running PostgreSQL as root is refused, and there is no user postgres to run it as: %v", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			t.Fatal(err)
		}
	}

	c.nodes[0] = &pgNode{name: "a", port: freePort(t)}
	c.nodes[1] = &pgNode{name: "b", port: freePort(t)}
	c.tool("initdb", "-D", c.data(c.nodes[0]), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	// Synchronous: a commit is acknowledged once the standby has it, so
	// the standby promoted after a kill has whatever the shop was told
	// had committed. fsync is off: the test kills processes, not the
	// machine, whose page cache keeps every write, and this machine's
	// disk is shared. A standby whose primary died tries to reach it again
	// every wal_retrieve_retry_interval (5 s by default), and a promotion
	// waited up to that long here: a failover manager would shorten it too.
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"+
		"synchronous_standby_names = '*'\nwal_retrieve_retry_interval = '200ms'\nfsync = off\nshared_buffers = 16MB\nmax_connections = 60\nwal_keep_size = '128MB'\n", dir)
	f, err := os.OpenFile(filepath.Join(c.data(c.nodes[0]), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	c.start(c.nodes[0])
	c.primary = 0
	c.startStandby(c.nodes[1])
	return c
}

func (c *pgCluster) data(n *pgNode) string { return filepath.Join(c.dir, n.name) }

func (c *pgCluster) standby() *pgNode { return c.nodes[1-c.primary] }

// tool runs one of the PostgreSQL binaries to its end.
func (c *pgCluster) tool(name string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.Dir = c.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}

// start starts the server of n and waits until it accepts connections.
func (c *pgCluster) start(n *pgNode) {
	c.t.Helper()
	logFile, err := os.Create(filepath.Join(c.dir, n.name+".log"))
	if err != nil {
		c.t.Fatal(err)
	}
	n.cmd = exec.Command(filepath.Join(c.bin, "postgres"), "-D", c.data(n), "-p", strconv.Itoa(n.port))
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	// Its own process group: the kill takes every backend with it, as a
	// machine's death would.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); logFile.Close(); close(done) }(n.cmd, n.done)
	deadline := time.Now().Add(time.Minute)
	for {
		conn, err := c.connect(n)
		if err == nil {
			conn.Close(context.Background())
			return
		}
		select {
		case <-n.done:
			c.t.Fatalf("PostgreSQL %s exited at start: %v", n.name, n.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("PostgreSQL %s did not accept connections within a minute: %v", n.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *pgCluster) connect(n *pgNode) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, n.url())
}

// exec runs statements on n, failing the test on an error.
func (c *pgCluster) exec(n *pgNode, statements ...string) {
	c.t.Helper()
	conn, err := c.connect(n)
	if err != nil {
		c.t.Fatalf("connecting to PostgreSQL %s: %v", n.name, err)
	}
	defer conn.Close(context.Background())
	for _, sql := range statements {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			c.t.Fatalf("PostgreSQL %s: %s: %v", n.name, sql, err)
		}
	}
}

// startStandby makes n a copy of the primary that streams its changes,
// and starts it.
func (c *pgCluster) startStandby(n *pgNode) {
	c.t.Helper()
	os.RemoveAll(c.data(n))
	primary := c.nodes[c.primary]
	c.tool("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port), "-U", "postgres",
		"-D", c.data(n), "--write-recovery-conf", "--checkpoint=fast", "--wal-method=stream", "--no-sync")
	c.start(n)
}

// awaitSynchronous waits until the standby streams synchronously and has
// flushed every change the primary had written when asked.
func (c *pgCluster) awaitSynchronous() {
	c.t.Helper()
	conn, err := c.connect(c.nodes[c.primary])
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	ctx := context.Background()
	var written string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&written); err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var caughtUp bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync' AND flush_lsn >= $1::pg_lsn)`, written).Scan(&caughtUp)
		if err != nil {
			c.t.Fatal(err)
		}
		if caughtUp {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the standby did not stream synchronously within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killPrimary kills the primary's server and all its backends with
// SIGKILL, and returns when it did.
func (c *pgCluster) killPrimary() time.Time {
	c.t.Helper()
	n := c.nodes[c.primary]
	killed := time.Now()
	n.kill()
	return killed
}

func (n *pgNode) kill() {
	if n.cmd == nil {
		return
	}
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.done
	n.cmd = nil
}

// promoteStandby promotes the standby to primary. With no standby of its
// own yet, it stops waiting for one to acknowledge its commits until
// rebuildStandby gives it one, as a failover manager does: else it could
// commit nothing meanwhile.
func (c *pgCluster) promoteStandby() {
	c.t.Helper()
	n := c.standby()
	c.exec(n, `ALTER SYSTEM SET synchronous_standby_names = ''`, `SELECT pg_reload_conf()`, `SELECT pg_promote(true, 60)`)
	c.primary = 1 - c.primary
}

// rebuildStandby makes the dead primary's node a standby of the new one,
// from a new copy (as for a machine replaced), and makes the primary wait
// for it again.
func (c *pgCluster) rebuildStandby() {
	c.t.Helper()
	c.startStandby(c.standby())
	c.exec(c.nodes[c.primary], `ALTER SYSTEM SET synchronous_standby_names = '*'`, `SELECT pg_reload_conf()`)
}

// logTails logs the end of each server's log.
func (c *pgCluster) logTails() {
	for _, n := range c.nodes {
		b, err := os.ReadFile(filepath.Join(c.dir, n.name+".log"))
		if err != nil {
			continue
		}
		lines := strings.Split(string(b), "\n")
		c.t.Logf("PostgreSQL %s's log, the end:\n%s", n.name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
