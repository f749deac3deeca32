package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync"
)

// The shop's SQLite file has one connection (store.Open says why), and
// every goroutine that wants it waits its turn. database/sql hands a
// freed connection to a waiter picked at random, not to the one that has
// waited longest (database/sql's connRequestSet.TakeRandom), so with a
// few dozen waiters some wait many turns longer than the rest: under
// cmd/loadgen at C = 32 a purchase's p99 was seven to eight times its p50
// on SQLite, against about twice on PostgreSQL, whose pool queues in
// order. So the one connection is shared here, in order: database/sql
// holds as many handles on it as it likes (sqliteHandle), cheap ones,
// and each handle waits for its turn on the one connection (sqliteLine)
// in the order the waits began, for a transaction from its BEGIN to its
// COMMIT or ROLLBACK, or for one statement outside any. It is still one
// connection on the file, running one thing at a time.

// sqliteLine is the one connection and the queue for it.
type sqliteLine struct {
	connector stmtCacheConnector
	// turn holds a token while a handle has the connection. A channel's
	// blocked senders are served in the order they came, so the turns go
	// in order of arrival.
	turn chan struct{}
	conn *stmtCacheConn // the connection; nil before the first turn, or after it went bad
}

func newSQLiteLine(dsn string) *sqliteLine {
	return &sqliteLine{connector: stmtCacheConnector{dsn}, turn: make(chan struct{}, 1)}
}

// take waits for the line's turn and returns the connection, opened if
// need be; give ends the turn.
func (l *sqliteLine) take(ctx context.Context) (*stmtCacheConn, error) {
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if l.conn == nil {
		conn, err := l.connector.Connect(ctx)
		if err != nil {
			<-l.turn
			return nil, err
		}
		l.conn = conn.(*stmtCacheConn)
	}
	return l.conn, nil
}

// give ends the turn. A connection the driver no longer finds usable (a
// statement was interrupted) is closed, as database/sql would discard it,
// and the next turn opens a new one.
func (l *sqliteLine) give() {
	if l.conn != nil && !l.conn.conn.IsValid() {
		l.conn.Close()
		l.conn = nil
	}
	<-l.turn
}

// Connect returns a new handle on the line's connection, for database/sql.
func (l *sqliteLine) Connect(context.Context) (driver.Conn, error) {
	return &sqliteHandle{line: l}, nil
}

func (l *sqliteLine) Driver() driver.Driver { return l.connector.Driver() }

// Close closes the connection when database/sql closes the database (a
// Connector that is an io.Closer). A handle still holding its turn then
// would be a leak; the connection is left to it.
func (l *sqliteLine) Close() error {
	select {
	case l.turn <- struct{}{}:
	default:
		return nil
	}
	defer func() { <-l.turn }()
	if l.conn == nil {
		return nil
	}
	err := l.conn.Close()
	l.conn = nil
	return err
}

// sqliteHandle is database/sql's view of the line's connection. It holds
// the turn through a transaction, and for each statement outside one, the
// rows of a query until they are closed. database/sql uses a handle from
// one goroutine at a time.
type sqliteHandle struct {
	line *sqliteLine
	tx   driver.Tx // the transaction holding the turn, if any
}

func (h *sqliteHandle) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	conn, err := h.line.take(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		h.line.give()
		return nil, err
	}
	h.tx = tx
	return handleTx{h}, nil
}

func (h *sqliteHandle) Begin() (driver.Tx, error) {
	return h.BeginTx(context.Background(), driver.TxOptions{})
}

// handleTx ends its handle's turn when it ends.
type handleTx struct{ h *sqliteHandle }

func (t handleTx) Commit() error   { return t.end(t.h.tx.Commit) }
func (t handleTx) Rollback() error { return t.end(t.h.tx.Rollback) }

func (t handleTx) end(f func() error) error {
	err := f()
	t.h.tx = nil
	t.h.line.give()
	return err
}

func (h *sqliteHandle) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if h.tx != nil {
		return h.line.conn.ExecContext(ctx, query, args)
	}
	conn, err := h.line.take(ctx)
	if err != nil {
		return nil, err
	}
	defer h.line.give()
	return conn.ExecContext(ctx, query, args)
}

func (h *sqliteHandle) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if h.tx != nil {
		return h.line.conn.QueryContext(ctx, query, args)
	}
	conn, err := h.line.take(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, query, args)
	if err != nil {
		h.line.give()
		return nil, err
	}
	return &turnRows{Rows: rows, give: sync.OnceFunc(h.line.give)}, nil
}

// turnRows ends the turn of a query outside a transaction once its rows
// are closed.
type turnRows struct {
	driver.Rows
	give func()
}

func (r *turnRows) Close() error {
	defer r.give()
	return r.Rows.Close()
}

// errPrepareOutsideTx: a statement prepared outside a transaction would
// need the turn for as long as it lives. Neither DBOS nor the shop
// prepares one; both run their statements with Exec and Query.
var errPrepareOutsideTx = errors.New("store: SQLite statements are prepared only inside a transaction")

func (h *sqliteHandle) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if h.tx == nil {
		return nil, errPrepareOutsideTx
	}
	return h.line.conn.PrepareContext(ctx, query)
}

func (h *sqliteHandle) Prepare(query string) (driver.Stmt, error) {
	return h.PrepareContext(context.Background(), query)
}

func (h *sqliteHandle) Ping(ctx context.Context) error {
	conn, err := h.line.take(ctx)
	if err != nil {
		return err
	}
	defer h.line.give()
	return conn.Ping(ctx)
}

// Close closes the handle, not the connection (the line's Close does).
func (h *sqliteHandle) Close() error { return nil }
