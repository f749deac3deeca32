package receipt

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
)

// claimLease is how long a Deliver holds a receipt against other
// deliverers. Longer than a send may take (sendTimeout), so that a
// deliverer still sending is never overtaken; a deliverer that died holds
// its receipts that long.
const claimLease = 2 * sendTimeout

// ErrInFlight is returned by Deliver when another deliverer holds the
// receipt: it is being sent, or its deliverer died less than the lease ago.
// Retry later.
var ErrInFlight = errors.New("the receipt is being delivered by another deliverer")

// ErrNotEnqueued is returned by Deliver for a receipt that was never
// enqueued, such as for an order placed without an email address.
var ErrNotEnqueued = errors.New("no such receipt was enqueued")

// Enqueue records r for delivery, as part of tx: call it in the transaction
// that moves order r.OrderID to r.Stage, then Deliver once it committed.
// It gives r its Message-ID. A second Enqueue of the same order and stage
// changes nothing (the first receipt stays, Message-ID and all) and
// reports false. An order without an email address gets no receipt: leave
// Enqueue and Deliver out for it.
//
// The Message-ID is <receipt-ORDER-STAGE.TOKEN@HOST>: HOST is OrderURL's
// host (else widgetstore.invalid), and TOKEN, random and stored with the
// receipt, keeps the id unique across databases: a shop whose database was
// recreated numbers its orders from 1 again, and a reused id would make
// deduplicating mailboxes drop a genuine receipt as a copy.
func Enqueue(ctx context.Context, tx dbos.Querier, r Receipt) (enqueued bool, err error) {
	if err := r.validate(); err != nil {
		return false, err
	}
	r.MessageID = fmt.Sprintf("<receipt-%d-%s.%s@%s>", r.OrderID, r.Stage, strings.ToLower(rand.Text()[:10]), messageIDHost(r.OrderURL))
	content, err := json.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("encoding the %s receipt of order %d: %w", r.Stage, r.OrderID, err)
	}
	res, err := tx.Exec(ctx, `INSERT INTO receipts (order_id, stage, recipient, message_id, content, enqueued_at_ms)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id, stage) DO NOTHING`,
		r.OrderID, string(r.Stage), r.To, r.MessageID, string(content), time.Now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("enqueueing the %s receipt of order %d: %w", r.Stage, r.OrderID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("enqueueing the %s receipt of order %d: %w", r.Stage, r.OrderID, err)
	}
	return n == 1, nil
}

// ParseMessageID reads the order and stage out of a receipt's Message-ID,
// as Enqueue makes it: for a test that counts, on the mail server's side,
// the receipts each order got.
func ParseMessageID(messageID string) (orderID int64, stage Stage, ok bool) {
	rest, found := strings.CutPrefix(messageID, "<receipt-")
	if !found {
		return 0, "", false
	}
	order, rest, found := strings.Cut(rest, "-")
	if !found {
		return 0, "", false
	}
	name, _, found := strings.Cut(rest, ".")
	if !found || !strings.HasSuffix(rest, ">") {
		return 0, "", false
	}
	orderID, err := strconv.ParseInt(order, 10, 64)
	if err != nil || orderID <= 0 {
		return 0, "", false
	}
	if stage, err = ParseStage(name); err != nil {
		return 0, "", false
	}
	return orderID, stage, true
}

// hostName is what a Message-ID's right side may be taken from: a dot-atom
// of letters, digits, hyphens and dots.
var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

// messageIDHost is the host of orderURL, if it makes a Message-ID's right
// side, else a name reserved never to resolve.
func messageIDHost(orderURL string) string {
	if u, err := url.Parse(orderURL); err == nil && hostName.MatchString(u.Hostname()) {
		return strings.ToLower(u.Hostname())
	}
	return "widgetstore.invalid"
}

// Deliver sends the receipt of order orderID for stage, unless it was sent
// already, and marks it sent once sender returned nil (the server's 250).
// It reports whether this call sent it: false with a nil error means an
// earlier one did. It returns ErrInFlight while another deliverer holds the
// receipt and ErrNotEnqueued when there is none; when sender fails, the
// receipt stays unsent and the error is returned, for a later Deliver.
//
// q runs each statement on its own (store.DB.Q()), never a transaction:
// none stays open while the mail server is talked to, and on SQLite, whose
// one connection a transaction would hold, Deliver would wait on itself.
// Call it from a DBOS step after the Enqueue's transaction committed; a
// step may leave an ErrInFlight to the watcher of Pending rather than
// retry through the lease. See the top of this file for the one window in
// which a receipt can be sent twice.
func Deliver(ctx context.Context, q dbos.Querier, sender Sender, orderID int64, stage Stage) (sent bool, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("delivering the %s receipt of order %d: %w", stage, orderID, err)
		}
	}()
	claim := rand.Text()
	now := time.Now()
	res, err := q.Exec(ctx, `UPDATE receipts SET claim = $1, claimed_until_ms = $2, attempts = attempts + 1
		WHERE order_id = $3 AND stage = $4 AND sent_at_ms IS NULL AND claimed_until_ms <= $5`,
		claim, now.Add(claimLease).UnixMilli(), orderID, string(stage), now.UnixMilli())
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, err
	} else if n == 0 {
		return false, whyUnclaimed(ctx, q, orderID, stage)
	}

	var content string
	if err := q.QueryRow(ctx, `SELECT content FROM receipts WHERE order_id = $1 AND stage = $2`,
		orderID, string(stage)).Scan(&content); err != nil {
		return false, err
	}
	var r Receipt
	if err := json.Unmarshal([]byte(content), &r); err != nil {
		return false, fmt.Errorf("decoding the stored receipt: %w", err)
	}
	if sendErr := sender.Send(ctx, r); sendErr != nil {
		// Released for the next Deliver, unless the lease ran out and
		// another deliverer holds it now. On a cancelled ctx too.
		if _, err := q.Exec(context.WithoutCancel(ctx), `UPDATE receipts SET claim = '', claimed_until_ms = 0, last_error = $1
			WHERE order_id = $2 AND stage = $3 AND claim = $4`,
			sendErr.Error(), orderID, string(stage), claim); err != nil {
			return false, errors.Join(sendErr, fmt.Errorf("releasing the claim: %w", err))
		}
		return false, sendErr
	}
	// Marked whatever happened to the claim meanwhile: the server has the
	// message, and a mark lost here is the window of a duplicate.
	if _, err := q.Exec(context.WithoutCancel(ctx), `UPDATE receipts SET sent_at_ms = $1, claim = '', claimed_until_ms = 0, last_error = ''
		WHERE order_id = $2 AND stage = $3 AND sent_at_ms IS NULL`,
		time.Now().UnixMilli(), orderID, string(stage)); err != nil {
		return true, fmt.Errorf("the server took the message, but marking it sent failed, so it will be sent again: %w", err)
	}
	return true, nil
}

// whyUnclaimed tells why Deliver could not claim a receipt: nil when it
// was sent already.
func whyUnclaimed(ctx context.Context, q dbos.Querier, orderID int64, stage Stage) error {
	var sentAtMs sql.NullInt64
	var claimedUntilMs int64
	err := q.QueryRow(ctx, `SELECT sent_at_ms, claimed_until_ms FROM receipts WHERE order_id = $1 AND stage = $2`,
		orderID, string(stage)).Scan(&sentAtMs, &claimedUntilMs)
	switch {
	case errors.Is(err, dbos.ErrNoRows) || errors.Is(err, sql.ErrNoRows):
		return ErrNotEnqueued
	case err != nil:
		return err
	case sentAtMs.Valid:
		return nil
	default:
		return fmt.Errorf("%w, until %s", ErrInFlight, time.UnixMilli(claimedUntilMs).UTC().Format(time.RFC3339))
	}
}

// Unsent is an enqueued receipt not sent yet, as Pending lists it.
type Unsent struct {
	OrderID    int64
	Stage      Stage
	To         string
	EnqueuedAt time.Time
	// Attempts counts the Delivers that claimed it; LastError is the
	// latest one's failure.
	Attempts  int
	LastError string
}

// Pending lists the receipts enqueued before enqueuedBefore and not sent
// yet, oldest first, at most limit, leaving out those a deliverer holds:
// what a crash or a failing mail server left, for a watcher to Deliver
// again. Give enqueuedBefore some age (a minute ago, say), so that the
// watcher does not race the ordinary delivery that follows each Enqueue.
func Pending(ctx context.Context, q dbos.Querier, enqueuedBefore time.Time, limit int) ([]Unsent, error) {
	rows, err := q.Query(ctx, `SELECT order_id, stage, recipient, enqueued_at_ms, attempts, last_error FROM receipts
		WHERE sent_at_ms IS NULL AND enqueued_at_ms < $1 AND claimed_until_ms <= $2
		ORDER BY enqueued_at_ms LIMIT $3`,
		enqueuedBefore.UnixMilli(), time.Now().UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("listing unsent receipts: %w", err)
	}
	defer rows.Close()
	unsent := []Unsent{}
	for rows.Next() {
		var u Unsent
		var stage string
		var enqueuedAtMs int64
		if err := rows.Scan(&u.OrderID, &stage, &u.To, &enqueuedAtMs, &u.Attempts, &u.LastError); err != nil {
			return nil, fmt.Errorf("listing unsent receipts: %w", err)
		}
		u.Stage, u.EnqueuedAt = Stage(stage), time.UnixMilli(enqueuedAtMs)
		unsent = append(unsent, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing unsent receipts: %w", err)
	}
	return unsent, nil
}
