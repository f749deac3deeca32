package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgCounters reads PostgreSQL's side of a run: the server's CPU, and the
// commits, WAL and statements of the run's database. Other databases on
// the same server add to its CPU and WAL, not to the database's commits.
type pgCounters struct {
	conn         *pgx.Conn // to the admin database, so that its queries do not count in the run's
	dbConn       *pgx.Conn // to the run's database, for pg_stat_statements
	walConn      *pgx.Conn // to the run's database, for the WAL reader; nil without pg_walinspect
	wal          *walReader
	database     string
	version      int  // server_version_num
	postmaster   int  // 0 when the server's processes are not visible here
	statementsOn bool // pg_stat_statements is loaded
	// ownCommits are the transactions loadgen's own queries committed in
	// the run's database since the first snapshot: not the shop's.
	ownCommits int64
	notes      []string // what could not be measured as it should
}

// pgSnapshot is what PostgreSQL's counters say at one moment.
type pgSnapshot struct {
	serverCPU   time.Duration
	backendCPU  map[int]time.Duration // the run database's backends, the shop's
	commits     int64
	rollbacks   int64
	otherDBs    map[uint32]int64 // xact_commit of every other database, by oid
	walLSN      uint64
	checkpoints int64
}

func newPGCounters(ctx context.Context, adminURL, dbURL, database string) (_ *pgCounters, err error) {
	c := &pgCounters{database: database}
	defer func() {
		if err != nil {
			c.close(ctx)
		}
	}()
	if c.conn, err = connectPG(ctx, adminURL); err != nil {
		return nil, err
	}
	var backend int
	if err := c.conn.QueryRow(ctx, "SELECT pg_backend_pid(), current_setting('server_version_num')::int").Scan(&backend, &c.version); err != nil {
		return nil, fmt.Errorf("finding the postmaster: %w", err)
	}
	// A backend's parent is the postmaster; if its process is not in our
	// /proc (another machine's, a container's), the server's CPU is unknown.
	if st, err := readProcStat(backend); err == nil {
		if pm, err := readProcStat(st.ppid); err == nil && strings.HasPrefix(pm.comm, "postgres") {
			c.postmaster = st.ppid
		}
	}
	if c.dbConn, err = connectPG(ctx, dbURL); err != nil {
		return nil, err
	}
	if c.statementsOn, err = enableStatements(ctx, c.dbConn); err != nil {
		return nil, err
	}
	// pg_walinspect (PostgreSQL 15 and later) needs no preloading, only a
	// superuser; without it the database's own WAL is unknown.
	if _, err := c.dbConn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_walinspect"); err == nil {
		if c.walConn, err = connectPG(ctx, dbURL); err != nil {
			return nil, err
		}
		c.keepWAL(ctx)
	}
	return c, nil
}

// keepWAL creates a temporary replication slot on the WAL reader's
// connection: the server then keeps the WAL from here on until that
// connection closes, checkpoints or not. Without it (no privilege, no slot
// free) the reader may find the WAL gone.
func (c *pgCounters) keepWAL(ctx context.Context) {
	slot := "loadgen_" + strings.ToLower(rand.Text()[:16])
	if _, err := c.walConn.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true, true)", slot); err != nil {
		c.notes = append(c.notes, fmt.Sprintf("no replication slot to keep the WAL until it is read: %v", err))
	}
}

func (c *pgCounters) close(ctx context.Context) {
	c.closeDatabaseConns(ctx)
	if c.conn != nil {
		c.conn.Close(context.WithoutCancel(ctx))
	}
}

// closeDatabaseConns closes loadgen's connections to the run's database:
// their backends then publish their counts, which ownCommits subtracts.
func (c *pgCounters) closeDatabaseConns(ctx context.Context) {
	for _, conn := range []*pgx.Conn{c.dbConn, c.walConn} {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}
}

// startWAL starts reading the run database's WAL from the position from,
// if pg_walinspect is there.
func (c *pgCounters) startWAL(ctx context.Context, from uint64) error {
	if c.walConn == nil {
		return nil
	}
	var err error
	c.wal, err = startWALReader(ctx, c.walConn, from)
	return err
}

// finishWAL reads the run database's WAL up to end; nil without
// pg_walinspect.
func (c *pgCounters) finishWAL(end uint64) (*walBytes, error) {
	if c.wal == nil {
		return nil, nil
	}
	wal, queries, err := c.wal.finish(end)
	c.ownCommits += queries
	if err != nil {
		return nil, err
	}
	return &wal, nil
}

// snapshot reads the counters. The statistics are read in a fresh
// snapshot (pg_stat_clear_snapshot); the backends' pending statistics are
// another matter: see commitsAfterExit.
func (c *pgCounters) snapshot(ctx context.Context) (pgSnapshot, error) {
	var s pgSnapshot
	if c.postmaster != 0 {
		var err error
		if s.serverCPU, err = serverCPU(c.postmaster); err != nil {
			return s, err
		}
	}
	pids, err := c.backends(ctx)
	if err != nil {
		return s, err
	}
	s.backendCPU = pidsCPU(slices.DeleteFunc(pids, c.ours))
	if _, err := c.conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return s, fmt.Errorf("clearing the statistics snapshot: %w", err)
	}
	rows, err := c.conn.Query(ctx, "SELECT datid, datname, xact_commit, xact_rollback FROM pg_stat_database WHERE datname IS NOT NULL")
	if err != nil {
		return s, fmt.Errorf("reading pg_stat_database: %w", err)
	}
	s.otherDBs = map[uint32]int64{}
	for rows.Next() {
		var (
			oid                uint32
			name               string
			commits, rollbacks int64
		)
		if err := rows.Scan(&oid, &name, &commits, &rollbacks); err != nil {
			return s, fmt.Errorf("reading pg_stat_database: %w", err)
		}
		if name == c.database {
			s.commits, s.rollbacks = commits, rollbacks
		} else {
			s.otherDBs[oid] = commits
		}
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("reading pg_stat_database: %w", err)
	}
	// PostgreSQL 17 moved the checkpoints to a view of their own.
	checkpoints := "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
	if c.version >= 170000 {
		checkpoints = "SELECT num_timed + num_requested FROM pg_stat_checkpointer"
	}
	if err := c.conn.QueryRow(ctx, checkpoints).Scan(&s.checkpoints); err != nil {
		return s, fmt.Errorf("counting the checkpoints: %w", err)
	}
	var lsn string
	if err := c.conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return s, fmt.Errorf("reading the WAL position: %w", err)
	}
	s.walLSN, err = parseLSN(lsn)
	return s, err
}

// ours says whether a backend of the run's database is loadgen's own.
func (c *pgCounters) ours(pid int) bool {
	for _, conn := range []*pgx.Conn{c.dbConn, c.walConn} {
		if conn != nil && uint32(pid) == conn.PgConn().PID() {
			return true
		}
	}
	return false
}

// backends are the pids of the run database's backends.
func (c *pgCounters) backends(ctx context.Context) ([]int, error) {
	rows, err := c.conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1", c.database)
	if err != nil {
		return nil, fmt.Errorf("listing the database's backends: %w", err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("listing the database's backends: %w", err)
	}
	return pids, nil
}

// commitsAfterExit reads the database's commits and rollbacks once the
// shop has exited and its backends, and loadgen's, are gone; less
// loadgen's own. A backend publishes its
// counts at most once a second while busy, and an idle one only after 10 s
// (PostgreSQL 15's PGSTAT_IDLE_INTERVAL; measured);
// pg_stat_force_next_flush() flushes only the caller's. A backend that
// exits publishes all of them first, so after the exit the counts are
// whole.
func (c *pgCounters) commitsAfterExit(ctx context.Context) (commits, rollbacks int64, err error) {
	const gone = 10 * time.Second
	deadline := time.Now().Add(gone)
	for {
		pids, err := c.backends(ctx)
		if err != nil {
			return 0, 0, err
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("the shop's %d backends were still there %s after it exited", len(pids), gone)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := c.conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return 0, 0, fmt.Errorf("clearing the statistics snapshot: %w", err)
	}
	err = c.conn.QueryRow(ctx, "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1", c.database).
		Scan(&commits, &rollbacks)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the database's commits: %w", err)
	}
	return commits - c.ownCommits, rollbacks, nil
}

// otherCommits is how many transactions the server's other databases
// committed between two snapshots: a sign that others shared the server
// (and its CPU and WAL) during the run. Databases dropped in between are
// missed.
func otherCommits(before, after pgSnapshot) int64 {
	var n int64
	for oid, commits := range after.otherDBs {
		n += commits - before.otherDBs[oid]
	}
	return n
}

// parseLSN reads a WAL position as PostgreSQL prints it, "16/B374D848":
// the high and low 32 bits in hex.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed WAL position %q", s)
	}
	return h<<32 | l, nil
}

// formatLSN writes a WAL position as PostgreSQL does.
func formatLSN(lsn uint64) string { return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn)) }

// enableStatements turns pg_stat_statements on in the run's database if
// the server has it loaded (shared_preload_libraries), and says whether it
// did. It is never required.
func enableStatements(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var libs string
	if err := conn.QueryRow(ctx, "SELECT current_setting('shared_preload_libraries')").Scan(&libs); err != nil {
		return false, fmt.Errorf("reading shared_preload_libraries: %w", err)
	}
	for _, lib := range strings.Split(libs, ",") {
		if strings.TrimSpace(lib) == "pg_stat_statements" {
			if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
				return false, fmt.Errorf("creating pg_stat_statements in the run's database: %w", err)
			}
			return true, nil
		}
	}
	return false, nil
}

// statement is one statement's count over a run, from pg_stat_statements.
type statement struct {
	Query    string `json:"query"`
	Calls    int64  `json:"calls"`
	Rows     int64  `json:"rows"`
	WALBytes int64  `json:"wal_bytes"`
}

// resetStatements clears pg_stat_statements for the run's database only.
func (c *pgCounters) resetStatements(ctx context.Context) error {
	if !c.statementsOn {
		return nil
	}
	_, err := c.dbConn.Exec(ctx, "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)")
	c.ownCommits++
	if err != nil {
		return fmt.Errorf("resetting pg_stat_statements: %w", err)
	}
	return nil
}

// statements reads the run database's statements since resetStatements,
// most called first, leaving out loadgen's own; nil without
// pg_stat_statements.
func (c *pgCounters) statements(ctx context.Context) ([]statement, error) {
	if !c.statementsOn {
		return nil, nil
	}
	rows, err := c.dbConn.Query(ctx, `
		SELECT query, calls, rows, wal_bytes::bigint
		FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND query NOT LIKE '%pg_stat_statements%'
		ORDER BY calls DESC, query`)
	c.ownCommits++
	if err != nil {
		return nil, fmt.Errorf("reading pg_stat_statements: %w", err)
	}
	stmts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (s statement, err error) {
		return s, row.Scan(&s.Query, &s.Calls, &s.Rows, &s.WALBytes)
	})
	if err != nil {
		return nil, fmt.Errorf("reading pg_stat_statements: %w", err)
	}
	return stmts, nil
}
