package store

import (
	"context"
	"fmt"
	"strings"
)

// dbosInternalQueue is the queue DBOS re-enqueues workflows on for
// recovery, whichever instance dequeues them (v1.8.0's
// models.InternalQueueName).
const dbosInternalQueue = "_dbos_internal_queue"

// AdoptWorkflows stamps with version the workflows of app, recorded under
// one of the older versions from, that an instance of version may finish
// and that no instance runs: those left PENDING by the executors named
// (dead: this instance starts under its id, or has taken it over), and
// those waiting on DBOS's recovery queue (ENQUEUED), whoever left them.
// DBOS recovers and dequeues only the workflows of its own version, so
// this is how a build that can replay older histories takes them on;
// instances of the older versions no longer see them. It returns how many
// it stamped.
//
// DBOS v1.8.0 moves workflows to a newer version only in its commercial
// auto-upgrade; this does it with one UPDATE of application_version on its
// workflow_status table, whose columns DBOS's SDKs and tools share.
//
// dbos.RewindWorkflow with WithRewindApplicationVersion restamps one
// workflow too, but it does not fit these: it refuses a PENDING or ENQUEUED
// workflow (only a terminal one is rewound, so it would first have to be
// cancelled), and it deletes every message the workflow has not consumed,
// among them a payment word waiting for a checkout whose instance died.
// The console's rewind of a failed checkout uses it (checkout.Rewind).
func (db *DB) AdoptWorkflows(ctx context.Context, app, version string, from, executorIDs []string) (int64, error) {
	if len(from) == 0 || len(executorIDs) == 0 {
		return 0, nil
	}
	// DBOS's tables share the shop's database: in the schema dbos on
	// PostgreSQL (the shop sets no other), beside the shop's on SQLite.
	table := "workflow_status"
	if db.Postgres != nil {
		table = "dbos.workflow_status"
	}
	args := []any{version, app, dbosInternalQueue}
	in := func(values []string) string {
		marks := make([]string, len(values))
		for i, v := range values {
			args = append(args, v)
			marks[i] = fmt.Sprintf("$%d", len(args))
		}
		return strings.Join(marks, ", ")
	}
	fromIn, executorsIn := in(from), in(executorIDs)
	// A row that an instance of an older version claims meanwhile is no
	// longer ENQUEUED when this statement gets its lock, and is left to it.
	result, err := db.Q().Exec(ctx, `
		UPDATE `+table+` SET application_version = $1
		WHERE (application_name = $2 OR application_name IS NULL)
		  AND application_version IN (`+fromIn+`)
		  AND (status = 'PENDING' AND executor_id IN (`+executorsIn+`)
		       OR status = 'ENQUEUED' AND queue_name = $3)`, args...)
	if err != nil {
		return 0, fmt.Errorf("adopting the workflows of versions %q: %w", from, err)
	}
	n, err := result.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("adopting the workflows of versions %q: %w", from, err)
	}
	return n, nil
}
