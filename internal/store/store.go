// Package store holds the application tables' SQL for SQLite and PostgreSQL,
// and the one database handle that the app and DBOS share.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	// Registers modernc.org/sqlite with database/sql and with DBOS.
	_ "github.com/dbos-inc/dbos-transact-golang/dbos/driver/sqlite"
)

//go:embed migrations
var migrations embed.FS

// DB is the single handle on the database. Exactly one of SQLite and
// Postgres is set. DBOS gets the same handle (Config.SQLiteSystemDB or
// Config.SystemDBPool, and NewDataSource), so an app write and its workflow
// checkpoint commit in one transaction; a second handle on one SQLite file
// would also make the two contend for its lock.
type DB struct {
	SQLite   *sql.DB
	Postgres *pgxpool.Pool
	// URL is what the handle was opened from; dbos.Migrate needs it.
	URL string
}

// defaultPoolSize is the PostgreSQL pool's size unless the URL sets
// pool_max_conns. pgxpool's own default, four connections on two cores, of
// which DBOS's notification listener holds one for good, starved the shop:
// under load some 150 goroutines queued for a connection while the database
// idled (see docs/performance.md). Twenty keeps every workflow's short
// transactions flowing and stays far below PostgreSQL's max_connections
// (100 by default) for a few instances.
const defaultPoolSize = 20

// sqliteIdleHandles is how many idle handles on SQLite's one connection
// database/sql keeps (sqliteLine): about as many as wait for it at once
// under load, so that it rarely makes new ones.
const sqliteIdleHandles = 64

// Open opens the database that url names: a postgres:// or postgresql://
// URL, or a SQLite file as sqlite:PATH or a plain path.
func Open(ctx context.Context, url string) (*DB, error) {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		config, err := pgxpool.ParseConfig(url)
		if err != nil {
			return nil, fmt.Errorf("opening postgres: %w", err)
		}
		if !strings.Contains(url, "pool_max_conns=") {
			config.MaxConns = defaultPoolSize
		}
		pool, err := pgxpool.NewWithConfig(ctx, config)
		if err != nil {
			return nil, fmt.Errorf("opening postgres: %w", err)
		}
		err = pool.Ping(ctx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InvalidCatalogName {
			// The database does not exist yet: create it, if the role may.
			err = createDatabase(ctx, config.ConnConfig)
			if err == nil {
				err = pool.Ping(ctx)
			}
		}
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("connecting to postgres: %w", err)
		}
		return &DB{Postgres: pool, URL: url}, nil
	}
	path, err := sqlitePath(url)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating the database directory: %w", err)
	}
	// _txlock=immediate takes the write lock at BEGIN, so a writer from
	// another process (the sqlite3 shell, a DBOS client) waits on
	// busy_timeout instead of failing with SQLITE_BUSY at its first write;
	// WAL lets such readers run beside the shop's writes. synchronous=FULL
	// syncs every commit: with NORMAL a power cut can take back the last
	// commits, such as a payment whose webhook was already answered 200,
	// which the provider would then never send again. On this project's
	// shared disk it costs much (cmd/loadgen at 50/s: checkout p50 5 ms to
	// 73 ms); PostgreSQL, the production engine, syncs every commit anyway.
	dsn := "file:" + path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	// One connection: SQLite runs one writer at a time anyway, and queueing
	// for the connection in Go hands it over at once, where writers that
	// contend for the file lock sleep in SQLite's busy handler, up to 100 ms
	// a try. Measured with cmd/loadgen at 50 checkouts/s: twice the
	// throughput, and a thirtieth of the p99 latency. DBOS v1.8.0 runs each
	// of its transactions on the connection it began on and takes no second
	// one meanwhile, so one connection cannot deadlock it. Checkpoints of
	// the WAL also always complete, with no reader to hold them back. The
	// queue is sqliteLine's, first come first served (sqliteturns.go);
	// database/sql's own would serve its waiters at random. database/sql
	// makes a handle on the line for each goroutine that wants one (they
	// cost a few words), and keeps idle ones for the next.
	db := sql.OpenDB(newSQLiteLine(dsn))
	db.SetMaxIdleConns(sqliteIdleHandles)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening sqlite %s: %w", path, err)
	}
	return &DB{SQLite: db, URL: "sqlite:" + path}, nil
}

// sqlitePath is the file of a sqlite: URL (sqlite:PATH or sqlite://PATH).
func sqlitePath(url string) (string, error) {
	if scheme, _, ok := strings.Cut(url, "://"); ok && scheme != "sqlite" {
		return "", fmt.Errorf("unsupported database %q: want a postgres://, postgresql:// or sqlite: URL", scheme)
	}
	path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "//")
	if path == "" {
		return "", errors.New("empty database path")
	}
	return path, nil
}

// createDatabase creates the database that config names, connected to the
// server's maintenance database "postgres". Instances starting at once may
// race to create it: the loser finds it there.
func createDatabase(ctx context.Context, config *pgx.ConnConfig) error {
	maintenance := config.Copy()
	maintenance.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, maintenance)
	if err != nil {
		return fmt.Errorf("creating database %s: %w", config.Database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{config.Database}.Sanitize())
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == pgerrcode.DuplicateDatabase) {
		return fmt.Errorf("creating database %s: %w", config.Database, err)
	}
	return nil
}

// Close closes the handle. Call it after DBOS has shut down.
func (db *DB) Close() {
	if db.SQLite != nil {
		db.SQLite.Close()
	}
	if db.Postgres != nil {
		db.Postgres.Close()
	}
}

// Engine names the engine, as migrations/ does: "sqlite" or "postgres".
func (db *DB) Engine() string {
	if db.Postgres != nil {
		return "postgres"
	}
	return "sqlite"
}

// Q returns a Querier that runs each statement on its own, outside any
// workflow: for reads, and for the operator's restock.
func (db *DB) Q() dbos.Querier {
	if db.Postgres != nil {
		return pgxQuerier{db.Postgres}
	}
	return sqlQuerier{db.SQLite}
}

// migrationLock is the Postgres advisory lock key that serializes the
// migrations of instances starting at once. Any constant will do.
const migrationLock = 7263849150

// Migrate brings the database up to date before DBOS launches on it: on
// PostgreSQL DBOS's system tables first (on SQLite DBOS migrates them
// itself, on the shared handle, at launch), then the shop's tables, whose
// applied versions are recorded in app_migrations. Instances starting at
// once take turns: on PostgreSQL under an advisory lock, since DBOS's own
// migration races on CREATE SCHEMA; on SQLite under the file's write lock.
func (db *DB) Migrate(ctx context.Context, logger *slog.Logger) error {
	if db.Postgres != nil {
		unlock, err := db.takeMigrationLock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		if err := dbos.Migrate(ctx, db.URL, dbos.WithMigrateLogger(logger)); err != nil {
			return fmt.Errorf("migrating the DBOS system tables: %w", err)
		}
	}
	files, err := migrationFiles(db.Engine())
	if err != nil {
		return err
	}
	return db.inTx(ctx, func(tx dbos.Querier) error { return applyMigrations(ctx, tx, files) })
}

// takeMigrationLock takes the PostgreSQL advisory lock migrationLock on a
// connection of its own; unlock gives the lock back and the connection.
func (db *DB) takeMigrationLock(ctx context.Context) (unlock func(), err error) {
	conn, err := db.Postgres.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	// Polled, not waited for in one statement: a session waiting in a
	// statement holds a snapshot, and DBOS's CREATE INDEX CONCURRENTLY
	// in the lock holder's migration waits for every such snapshot to
	// go, a deadlock that PostgreSQL does not detect.
	for locked := false; !locked; {
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, migrationLock).Scan(&locked); err != nil {
			conn.Release()
			return nil, fmt.Errorf("taking the migration lock: %w", err)
		}
		if !locked {
			select {
			case <-ctx.Done():
				conn.Release()
				return nil, fmt.Errorf("taking the migration lock: %w", ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return func() {
		conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
		conn.Release()
	}, nil
}

// applyMigrations applies, in tx, the files not recorded in app_migrations
// yet, in order, and records each.
func applyMigrations(ctx context.Context, tx dbos.Querier, files []migration) error {
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS app_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return fmt.Errorf("creating app_migrations: %w", err)
	}
	// Every file not applied yet, in order, and not only those above
	// the highest applied: a build that numbered its migration higher
	// may have migrated the database before a lower one was merged.
	versions, err := QueryAll(ctx, tx, func(row dbos.Row) (v int, err error) { return v, row.Scan(&v) },
		`SELECT version FROM app_migrations`)
	if err != nil {
		return fmt.Errorf("reading the applied migrations: %w", err)
	}
	applied := map[int]bool{}
	for _, v := range versions {
		applied[v] = true
	}
	for _, m := range files {
		if applied[m.version] {
			continue
		}
		text, err := fs.ReadFile(migrations, m.path)
		if err != nil {
			return err
		}
		// One Exec runs the whole file: both drivers take several
		// statements when there are no arguments, and so a ';' in a
		// string or a comment needs no parsing here.
		if _, err := tx.Exec(ctx, string(text)); err != nil {
			return fmt.Errorf("migration %s: %w", m.path, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO app_migrations (version) VALUES ($1)`, m.version); err != nil {
			return fmt.Errorf("recording migration %s: %w", m.path, err)
		}
	}
	return nil
}

// migration is one numbered file of migrations/.
type migration struct {
	version int
	path    string
}

// migrationFiles lists the migrations of an engine in the order they apply:
// those of migrations/shared, whose SQL both engines run, and those of
// migrations/<engine>, where the DDL differs. Each number is used once.
func migrationFiles(engine string) ([]migration, error) {
	var files []migration
	seen := map[int]string{}
	for _, dir := range []string{"migrations/shared", "migrations/" + engine} {
		entries, err := fs.ReadDir(migrations, dir)
		if err != nil {
			return nil, fmt.Errorf("reading migrations: %w", err)
		}
		for _, e := range entries {
			path := dir + "/" + e.Name()
			version, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
			if err != nil {
				return nil, fmt.Errorf("migration %s: the name must start with its number", path)
			}
			if other, ok := seen[version]; ok {
				return nil, fmt.Errorf("migrations %s and %s have the same number", other, path)
			}
			seen[version] = path
			files = append(files, migration{version, path})
		}
	}
	slices.SortFunc(files, func(a, b migration) int { return a.version - b.version })
	return files, nil
}

// InTx runs fn in one transaction outside any workflow, and commits it when
// fn returns nil. The transaction is also a dbos.Tx on the handle DBOS
// shares, so a DBOS call given it (dbos.WithSendTransaction) commits
// with the shop's writes; fn must not commit or roll it back itself.
func (db *DB) InTx(ctx context.Context, fn func(tx dbos.Tx) error) error {
	if db.Postgres != nil {
		return pgx.BeginFunc(ctx, db.Postgres, func(tx pgx.Tx) error { return fn(pgxTx{pgxQuerier{tx}, tx}) })
	}
	tx, err := db.SQLite.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(sqlTx{sqlQuerier{tx}, tx}); err != nil {
		return err
	}
	return tx.Commit()
}

// inTx is InTx for the store's own writes, which need only a Querier.
func (db *DB) inTx(ctx context.Context, fn func(tx dbos.Querier) error) error {
	return db.InTx(ctx, func(tx dbos.Tx) error { return fn(tx) })
}

// QueryAll runs a query and returns its rows, each read by scan.
func QueryAll[T any](ctx context.Context, q dbos.Querier, scan func(dbos.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	all := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		all = append(all, v)
	}
	return all, rows.Err()
}

// scanString reads a row of one text column.
func scanString(row dbos.Row) (string, error) {
	var s string
	err := row.Scan(&s)
	return s, err
}

// IsNoRows reports whether err says a query matched no row, on either engine.
func IsNoRows(err error) bool {
	return errors.Is(err, dbos.ErrNoRows) || errors.Is(err, sql.ErrNoRows)
}
