package store

import (
	"context"
	"database/sql"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The adapters below let the same query functions run on a transaction that
// DBOS hands a step (a dbos.Tx) and, for reads, straight on the handle.

// sqlExecer is what *sql.DB and *sql.Tx share.
type sqlExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type sqlQuerier struct{ db sqlExecer }

func (q sqlQuerier) Exec(ctx context.Context, query string, args ...any) (dbos.Result, error) {
	return q.db.ExecContext(ctx, query, args...)
}

func (q sqlQuerier) Query(ctx context.Context, query string, args ...any) (dbos.Rows, error) {
	return q.db.QueryContext(ctx, query, args...)
}

func (q sqlQuerier) QueryRow(ctx context.Context, query string, args ...any) dbos.Row {
	return q.db.QueryRowContext(ctx, query, args...)
}

// sqlTx is a *sql.Tx as a dbos.Tx.
type sqlTx struct {
	sqlQuerier
	tx *sql.Tx
}

func (t sqlTx) Commit(context.Context) error   { return t.tx.Commit() }
func (t sqlTx) Rollback(context.Context) error { return t.tx.Rollback() }

// pgxExecer is what *pgxpool.Pool and pgx.Tx share.
type pgxExecer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type pgxQuerier struct{ db pgxExecer }

func (q pgxQuerier) Exec(ctx context.Context, query string, args ...any) (dbos.Result, error) {
	tag, err := q.db.Exec(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgxResult(tag.RowsAffected()), nil
}

func (q pgxQuerier) Query(ctx context.Context, query string, args ...any) (dbos.Rows, error) {
	rows, err := q.db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgxRows{rows}, nil
}

func (q pgxQuerier) QueryRow(ctx context.Context, query string, args ...any) dbos.Row {
	return q.db.QueryRow(ctx, query, args...)
}

// pgxTx is a pgx.Tx as a dbos.Tx.
type pgxTx struct {
	pgxQuerier
	tx pgx.Tx
}

func (t pgxTx) Commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t pgxTx) Rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }

type pgxResult int64

func (r pgxResult) RowsAffected() (int64, error) { return int64(r), nil }

type pgxRows struct{ pgx.Rows }

func (r pgxRows) Close() error { r.Rows.Close(); return nil }
