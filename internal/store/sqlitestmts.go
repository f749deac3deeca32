package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync"

	"modernc.org/sqlite"
)

// The SQLite driver compiles every statement it is given anew: it keeps no
// statement cache, and DBOS and the shop run the same few dozen statements
// again and again. Measured under load, compiling took about a fifth of
// the shop's CPU on SQLite (docs/performance.md). stmtCacheConnector wraps
// the driver so each connection keeps its compiled statements by their
// text and runs them again.

// stmtCacheSize bounds the statements one connection keeps. DBOS writes
// some statements with one placeholder per item of a list, so their texts
// vary; past the bound the cache starts over.
const stmtCacheSize = 256

// stmtCacheConnector opens SQLite connections that keep their statements.
type stmtCacheConnector struct{ dsn string }

// Connect opens a connection with the driver's zero value, which is the
// registered one less the functions and hooks the shop never registers.
func (c stmtCacheConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := (&sqlite.Driver{}).Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &stmtCacheConn{conn: conn.(sqliteConn), stmts: make(map[string]*cachedStmt)}, nil
}

func (c stmtCacheConnector) Driver() driver.Driver { return &sqlite.Driver{} }

// sqliteConn is what the driver's connections offer.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// stmtCacheConn is a connection that keeps its statements. It is used by
// one goroutine at a time (the turns of sqliteLine), so the map needs no lock;
// the mutex of a cachedStmt only guards its use by rows still open.
type stmtCacheConn struct {
	conn  sqliteConn
	stmts map[string]*cachedStmt
}

// cachedStmt is a compiled statement; busy while rows read from it are
// open, when the same text is compiled once more for another use.
type cachedStmt struct {
	stmt driver.Stmt
	mu   sync.Mutex
	busy bool
}

// stmt returns the compiled statement for query, and whether it is the
// cached one (false: a fresh one the caller must close).
func (c *stmtCacheConn) stmt(ctx context.Context, query string) (*cachedStmt, bool, error) {
	if s, ok := c.stmts[query]; ok {
		s.mu.Lock()
		free := !s.busy
		s.mu.Unlock()
		if free {
			return s, true, nil
		}
		fresh, err := c.conn.PrepareContext(ctx, query)
		return &cachedStmt{stmt: fresh}, false, err
	}
	prepared, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, false, err
	}
	if len(c.stmts) >= stmtCacheSize {
		c.closeStmts()
	}
	s := &cachedStmt{stmt: prepared}
	c.stmts[query] = s
	return s, true, nil
}

func (c *stmtCacheConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, cached, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if !cached {
		defer s.stmt.Close()
	}
	return s.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *stmtCacheConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, cached, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := s.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		if !cached {
			s.stmt.Close()
		}
		return nil, err
	}
	s.mu.Lock()
	s.busy = true
	s.mu.Unlock()
	return &cachedRows{Rows: rows, stmt: s, cached: cached}, nil
}

// cachedRows frees its statement for the next use when closed.
type cachedRows struct {
	driver.Rows
	stmt   *cachedStmt
	cached bool
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if !r.cached {
		return errors.Join(err, r.stmt.stmt.Close())
	}
	r.stmt.mu.Lock()
	r.stmt.busy = false
	r.stmt.mu.Unlock()
	return err
}

// closeStmts closes every kept statement.
func (c *stmtCacheConn) closeStmts() error {
	var errs []error
	for query, s := range c.stmts {
		errs = append(errs, s.stmt.Close())
		delete(c.stmts, query)
	}
	return errors.Join(errs...)
}

func (c *stmtCacheConn) Close() error {
	return errors.Join(c.closeStmts(), c.conn.Close())
}

func (c *stmtCacheConn) Prepare(query string) (driver.Stmt, error) { return c.conn.Prepare(query) }
func (c *stmtCacheConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.conn.PrepareContext(ctx, query)
}

func (c *stmtCacheConn) Begin() (driver.Tx, error) { return c.conn.Begin() }
func (c *stmtCacheConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.conn.BeginTx(ctx, opts)
}
func (c *stmtCacheConn) Ping(ctx context.Context) error         { return c.conn.Ping(ctx) }
func (c *stmtCacheConn) ResetSession(ctx context.Context) error { return c.conn.ResetSession(ctx) }
func (c *stmtCacheConn) IsValid() bool                          { return c.conn.IsValid() }
