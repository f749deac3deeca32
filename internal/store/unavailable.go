package store

import (
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// ErrSlow says the database did not answer in the time a request may wait
// for it; IsUnavailable counts it.
var ErrSlow = errors.New("the database did not answer in time")

// IsUnavailable reports whether err says the database is out of reach for
// a moment rather than that the request or the shop is wrong: PostgreSQL
// restarting, failing over or refusing connections, a connection cut, a
// SQLite file that is locked or whose disk is full, or ErrSlow. A client
// may retry the same request after a short while.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrSlow) {
		return true
	}
	var connectErr *pgconn.ConnectError
	// pgx 5.13 answers a statement on a connection it closed already (the
	// server cut it: a failover) with ErrConnClosed, not safe to retry as
	// pgx counts it, since the statement might have run; the database is
	// out of reach all the same (chaos/TestDatabaseFailover's webhooks).
	if errors.As(err, &connectErr) || pgconn.SafeToRetry(err) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 is a connection exception; 57P01-57P03 the server
		// shutting down or starting; 53300 too many connections; 25006 a
		// write on a standby that has not been promoted yet.
		return strings.HasPrefix(pgErr.Code, "08") || slices.Contains([]string{"57P01", "57P02", "57P03", "53300", "25006"}, pgErr.Code)
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		switch sqliteErr.Code() & 0xff { // the primary result code
		case 5, 6, 10, 13: // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
