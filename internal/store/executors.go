package store

import (
	"context"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
)

// The executors table exists on PostgreSQL only: on SQLite one process at a
// time runs the shop.

const dbNowMs = `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`

// HeartbeatMargin is how many of an instance's own heartbeat intervals it
// must miss, at least, before another instance may take it over: one late
// beat is a busy database or a pause of the process, not a death.
const HeartbeatMargin = 3

// silentSince is the SQL condition on an executors row that it has been
// silent for longer than the silence in milliseconds given as $2, and for
// longer than HeartbeatMargin of its own recorded heartbeat intervals: an
// instance that beats more slowly than the one asking is not taken for
// dead between two of its beats.
var silentSince = `heartbeat_at_ms < ` + dbNowMs + ` - GREATEST($2, ` + fmt.Sprint(HeartbeatMargin) + ` * heartbeat_every_ms)`

// Heartbeat records that the instance executorID is alive now, and that it
// beats every interval.
func Heartbeat(ctx context.Context, q dbos.Querier, executorID string, interval time.Duration) error {
	_, err := q.Exec(ctx, `
		INSERT INTO executors (executor_id, heartbeat_at_ms, heartbeat_every_ms) VALUES ($1, `+dbNowMs+`, $2)
		ON CONFLICT (executor_id) DO UPDATE SET heartbeat_at_ms = EXCLUDED.heartbeat_at_ms, heartbeat_every_ms = EXCLUDED.heartbeat_every_ms`,
		executorID, interval.Milliseconds())
	if err != nil {
		return fmt.Errorf("recording the heartbeat of %s: %w", executorID, err)
	}
	return nil
}

// SilentExecutors lists the instances other than self whose last heartbeat
// is older than silence, and older than HeartbeatMargin times the interval
// each recorded.
func SilentExecutors(ctx context.Context, q dbos.Querier, self string, silence time.Duration) ([]string, error) {
	ids, err := QueryAll(ctx, q, scanString, `
		SELECT executor_id FROM executors
		WHERE executor_id <> $1 AND `+silentSince+`
		ORDER BY executor_id`, self, silence.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("listing silent executors: %w", err)
	}
	return ids, nil
}

// ForgetExecutor removes a silent instance once its workflows are taken
// over, unless it has spoken again meanwhile (silent as SilentExecutors
// says).
func ForgetExecutor(ctx context.Context, q dbos.Querier, executorID string, silence time.Duration) error {
	_, err := q.Exec(ctx, `DELETE FROM executors WHERE executor_id = $1 AND `+silentSince,
		executorID, silence.Milliseconds())
	if err != nil {
		return fmt.Errorf("forgetting executor %s: %w", executorID, err)
	}
	return nil
}

// ProbeWrite writes this instance's row of write_probe: it fails when the
// database refuses writes. It runs on SQLite too.
func ProbeWrite(ctx context.Context, q dbos.Querier, executorID string) error {
	_, err := q.Exec(ctx, `
		INSERT INTO write_probe (executor_id, written_ms) VALUES ($1, $2)
		ON CONFLICT (executor_id) DO UPDATE SET written_ms = EXCLUDED.written_ms`, executorID, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("writing to the database: %w", err)
	}
	return nil
}
