package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// walReadInterval is how often the WAL reader reads what was written
// since it last did.
const walReadInterval = 500 * time.Millisecond

// walReader adds up the run database's own WAL records as they are
// written, with pg_walinspect: those that change its pages, and the
// commit records of the transactions that did; other databases' records
// and the server's own (checkpoints and the like) are left out. It reads
// as the run goes, so that the last read is short and, should the
// replication slot be missing (see keepWAL), the WAL is read before the
// next checkpoint removes it: on a shared server every DROP DATABASE
// forces one.
type walReader struct {
	conn    *pgx.Conn // to the run's database, where pg_walinspect is; the reader's own
	pattern string    // how the database's pages appear in block_ref: "rel <tablespace>/<oid>/<relfilenode>"
	next    uint64    // where the next read starts: the end of the last record read
	ours    map[string]bool
	total   walBytes
	queries int64 // transactions the reader committed in the run's database

	stop chan uint64 // the last position to read
	done chan error
}

// walBytes are WAL bytes of the run's database; fpi the full-page images
// among them, which follow the checkpoints more than the workload.
type walBytes struct {
	all, fpi int64
}

// startWALReader starts reading the run database's WAL from the position
// from, on conn, which it then owns.
func startWALReader(ctx context.Context, conn *pgx.Conn, from uint64) (*walReader, error) {
	w := &walReader{conn: conn, next: from, ours: map[string]bool{},
		stop: make(chan uint64, 1), done: make(chan error, 1)}
	err := conn.QueryRow(ctx, "SELECT '%/' || oid || '/%' FROM pg_database WHERE datname = current_database()").Scan(&w.pattern)
	if err != nil {
		return nil, fmt.Errorf("finding the database's oid: %w", err)
	}
	w.queries++
	go w.loop(ctx)
	return w, nil
}

func (w *walReader) loop(ctx context.Context) {
	ticker := time.NewTicker(walReadInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			if _, err := w.read(ctx, 0); err != nil {
				w.done <- err
				return
			}
		case end := <-w.stop:
			w.done <- w.readTo(ctx, end)
			return
		case <-ctx.Done():
			w.done <- ctx.Err()
			return
		}
	}
}

// finish reads the WAL up to end and returns the run database's share,
// and how many transactions the reader committed in it.
func (w *walReader) finish(end uint64) (walBytes, int64, error) {
	w.stop <- end
	err := <-w.done
	return w.total, w.queries, err
}

// readTo reads until end, which may not have been flushed yet: once the
// server has flushed past it, every record that ends before it is read.
func (w *walReader) readTo(ctx context.Context, end uint64) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		to, err := w.read(ctx, end)
		if err != nil || to >= end {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the WAL up to %s was not flushed within 10 s", formatLSN(end))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// read reads the records from w.next to what the server has flushed
// (pg_walinspect reads no further), and to end if it is not 0, and
// returns where it read to. A record that crosses that point is read the
// next time, in full.
func (w *walReader) read(ctx context.Context, end uint64) (uint64, error) {
	var flushed string
	if err := w.conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&flushed); err != nil {
		return 0, fmt.Errorf("reading the WAL flush position: %w", err)
	}
	w.queries++
	to, err := parseLSN(flushed)
	if err != nil {
		return 0, err
	}
	if end != 0 {
		to = min(to, end)
	}
	if to <= w.next {
		return to, nil
	}
	rows, err := w.conn.Query(ctx, `
		SELECT xid::text,
			bool_or(block_ref LIKE $3),
			coalesce(sum(record_length) FILTER (WHERE block_ref LIKE $3), 0),
			coalesce(sum(fpi_length) FILTER (WHERE block_ref LIKE $3), 0),
			coalesce(sum(record_length) FILTER (WHERE block_ref IS NULL OR block_ref NOT LIKE $3), 0),
			max(end_lsn)::text
		FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn)
		GROUP BY xid`, formatLSN(w.next), formatLSN(to), w.pattern)
	if err != nil {
		return 0, fmt.Errorf("reading the WAL with pg_walinspect: %w", err)
	}
	w.queries++
	var last uint64
	for rows.Next() {
		var (
			xid, lastLSN         string
			ours                 bool
			oursLen, fpi, others int64
		)
		if err := rows.Scan(&xid, &ours, &oursLen, &fpi, &others, &lastLSN); err != nil {
			return 0, fmt.Errorf("reading the WAL with pg_walinspect: %w", err)
		}
		w.count(xid, ours, oursLen, fpi, others)
		if lsn, err := parseLSN(lastLSN); err == nil {
			last = max(last, lsn)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reading the WAL with pg_walinspect: %w", err)
	}
	if last > w.next {
		w.next = last
	}
	return to, nil
}

// count adds one transaction's records of one read: those on the
// database's pages always, the others (its commit record) when the
// transaction changed the database's pages, in this read or an earlier
// one. Records without a transaction (xid 0) count only on its pages.
func (w *walReader) count(xid string, ours bool, oursLen, fpi, others int64) {
	if ours && xid != "0" {
		w.ours[xid] = true
	}
	w.total.all += oursLen
	w.total.fpi += fpi
	if w.ours[xid] {
		w.total.all += others
	}
}
