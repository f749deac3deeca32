package store

import (
	"context"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// RefusalStreak reads the latest n orders that client placed since since
// and says whether they were all refused by the payment provider: a card
// tester's trail, card after card declined. When they were, until is when
// the oldest of them leaves the window that began at since, window being
// how long one lasts; otherwise until is the zero time.
func RefusalStreak(ctx context.Context, q dbos.Querier, client string, n int, since time.Time, window time.Duration) (until time.Time, err error) {
	rows, err := q.Query(ctx, `
		SELECT status, cancel_reason, created_at_ms FROM orders
		WHERE client = $1 AND created_at_ms >= $2
		ORDER BY created_at_ms DESC LIMIT $3`, client, since.UnixMilli(), n)
	if err != nil {
		return until, fmt.Errorf("reading the latest orders of client %s: %w", client, err)
	}
	defer rows.Close()
	refused := 0
	var oldestMs int64
	for rows.Next() {
		var status, reason string
		if err := rows.Scan(&status, &reason, &oldestMs); err != nil {
			return until, fmt.Errorf("reading the latest orders of client %s: %w", client, err)
		}
		if status == string(shop.StatusCancelled) && reason == shop.ReasonPaymentFailed {
			refused++
		}
	}
	if err := rows.Err(); err != nil {
		return until, fmt.Errorf("reading the latest orders of client %s: %w", client, err)
	}
	if refused < n {
		return until, nil
	}
	return time.UnixMilli(oldestMs).Add(window).UTC(), nil
}
