package receipt_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/emersion/go-smtp"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/receipt/smtptest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// outbox is what each outbox test needs: a migrated database, an SMTP
// server and a sender to it.
type outbox struct {
	db     *store.DB
	server *smtptest.Server
	sender receipt.SMTP
}

func newOutbox(t *testing.T, databaseURL string) outbox {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx, dbtest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	server := smtptest.Start(t, smtptest.Options{})
	config, err := receipt.ParseSMTPURL(server.URL("shop@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	return outbox{db: db, server: server, sender: receipt.SMTP{Config: config}}
}

// enqueue enqueues r in a transaction of its own, as the order's change
// would, and reports whether it was new.
func (o outbox) enqueue(t *testing.T, r receipt.Receipt) bool {
	t.Helper()
	var enqueued bool
	err := o.db.InTx(context.Background(), func(tx dbos.Tx) error {
		var err error
		enqueued, err = receipt.Enqueue(context.Background(), tx, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return enqueued
}

func (o outbox) deliver(orderID int64, stage receipt.Stage) (bool, error) {
	return receipt.Deliver(context.Background(), o.db.Q(), o.sender, orderID, stage)
}

func TestDeliverSendsOnce(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, databaseURL string) {
		o := newOutbox(t, databaseURL)
		r := paidReceipt()
		r.MessageID = "" // Enqueue's to give
		if !o.enqueue(t, r) {
			t.Fatal("Enqueue reported its first receipt as not new")
		}
		changed := r
		changed.To = "someone.else@example.com"
		if o.enqueue(t, changed) {
			t.Error("a second Enqueue of order 42's paid receipt reported it new")
		}
		dispatched := r
		dispatched.Stage = receipt.StageDispatched
		if !o.enqueue(t, dispatched) {
			t.Error("the dispatched receipt of the paid order 42 was not enqueued")
		}

		for attempt := 1; attempt <= 3; attempt++ {
			sent, err := o.deliver(42, receipt.StagePaid)
			if err != nil || sent != (attempt == 1) {
				t.Errorf("Deliver #%d = %v, %v; want %v, nil", attempt, sent, err, attempt == 1)
			}
		}
		messages := o.server.Messages()
		if len(messages) != 1 {
			t.Fatalf("the server got %d messages, want 1", len(messages))
		}
		m := messages[0]
		if m.To[0] != "ann@example.com" || m.Header.Get("Subject") != "Receipt for your order #42" {
			t.Errorf("sent to %v with subject %q, want the first receipt enqueued", m.To, m.Header.Get("Subject"))
		}
		if !strings.HasPrefix(m.MessageID, "<receipt-42-paid.") || !strings.HasSuffix(m.MessageID, "@shop.example.com>") {
			t.Errorf("Message-ID %q, want <receipt-42-paid.TOKEN@shop.example.com>", m.MessageID)
		}
		if orderID, stage, ok := receipt.ParseMessageID(m.MessageID); !ok || orderID != 42 || stage != receipt.StagePaid {
			t.Errorf("ParseMessageID(%q) = %d, %q, %v; want 42, paid, true", m.MessageID, orderID, stage, ok)
		}

		if sent, err := o.deliver(42, receipt.StageDispatched); err != nil || !sent {
			t.Fatalf("Deliver of the dispatched receipt = %v, %v; want true, nil", sent, err)
		}
		messages = o.server.Messages()
		if len(messages) != 2 || messages[1].Header.Get("Subject") != "Your order #42 is on its way" || messages[1].MessageID == m.MessageID {
			t.Errorf("after the dispatched receipt the server has %d messages, the last %q %q; want 2, of their own Message-IDs",
				len(messages), messages[len(messages)-1].Header.Get("Subject"), messages[len(messages)-1].MessageID)
		}
		pending, err := receipt.Pending(context.Background(), o.db.Q(), time.Now().Add(time.Hour), 10)
		if err != nil || len(pending) != 0 {
			t.Errorf("Pending after both were sent = %+v, %v; want none", pending, err)
		}
	})
}

func TestEnqueueGoesWithItsTransaction(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, databaseURL string) {
		o := newOutbox(t, databaseURL)
		stateChangeFailed := errors.New("the order's change failed")
		err := o.db.InTx(context.Background(), func(tx dbos.Tx) error {
			if _, err := receipt.Enqueue(context.Background(), tx, paidReceipt()); err != nil {
				return err
			}
			return stateChangeFailed
		})
		if !errors.Is(err, stateChangeFailed) {
			t.Fatalf("InTx = %v, want the change's failure", err)
		}
		if sent, err := o.deliver(42, receipt.StagePaid); sent || !errors.Is(err, receipt.ErrNotEnqueued) {
			t.Errorf("Deliver after the rolled back Enqueue = %v, %v; want false, ErrNotEnqueued", sent, err)
		}
		if n := len(o.server.Messages()); n != 0 {
			t.Errorf("the server got %d messages, want none", n)
		}
	})
}

func TestEnqueueRefusesAnIncompleteReceipt(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, databaseURL string) {
		o := newOutbox(t, databaseURL)
		tests := []struct {
			change func(*receipt.Receipt)
			says   string
		}{
			{func(r *receipt.Receipt) { r.OrderID = 0 }, "order id must be positive"},
			{func(r *receipt.Receipt) { r.Stage = "shipped" }, `unknown receipt stage "shipped"`},
			{func(r *receipt.Receipt) { r.To = "ann@example.com\r\nBcc: x@example.com" }, "control character"},
			{func(r *receipt.Receipt) { r.To = "" }, "not one bare email address"},
			{func(r *receipt.Receipt) { r.To = "Ann <ann@example.com>" }, "not one bare email address"},
			{func(r *receipt.Receipt) { r.To = "ann@example.com, bob@example.com" }, "not one bare email address"},
			{func(r *receipt.Receipt) { r.At = time.Time{} }, "no time"},
		}
		for _, test := range tests {
			r := paidReceipt()
			test.change(&r)
			err := o.db.InTx(context.Background(), func(tx dbos.Tx) error {
				_, err := receipt.Enqueue(context.Background(), tx, r)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), test.says) {
				t.Errorf("Enqueue(%+v) = %v, want an error saying %q", r, err, test.says)
			}
		}
		if pending, err := receipt.Pending(context.Background(), o.db.Q(), time.Now().Add(time.Hour), 10); err != nil || len(pending) != 0 {
			t.Errorf("Pending after refused Enqueues = %+v, %v; want none", pending, err)
		}
	})
}

// TestEnqueueTakesWhatACheckoutTook: an address that an earlier rule of
// the API took but ValidateAddress would not must not fail the order's
// change that enqueues its receipt.
func TestEnqueueTakesWhatACheckoutTook(t *testing.T) {
	t.Parallel()
	o := newOutbox(t, dbtest.NewDatabase(t, "sqlite"))
	for i, address := range []string{"ann@localhost", "anné@example.com", strings.Repeat("a", 70) + "@example.com"} {
		if _, err := receipt.ValidateAddress(address); err == nil {
			t.Fatalf("ValidateAddress takes %q; this test wants addresses it refuses", address)
		}
		r := paidReceipt()
		r.OrderID, r.To = int64(100+i), address
		if !o.enqueue(t, r) {
			t.Errorf("the receipt to %q was not enqueued", address)
		}
	}
}

func TestDeliverAfterTheServerRefused(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, databaseURL string) {
		o := newOutbox(t, databaseURL)
		o.enqueue(t, paidReceipt())
		refusals := []*smtp.SMTPError{
			{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"},
			{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "refused by policy"},
		}
		for i, refusal := range refusals {
			o.server.Refuse(refusal)
			sent, err := o.deliver(42, receipt.StagePaid)
			if sent || err == nil || !strings.Contains(err.Error(), refusal.Message) {
				t.Fatalf("Deliver while the server refuses with %d = %v, %v; want false and its error", refusal.Code, sent, err)
			}
			pending, err := receipt.Pending(context.Background(), o.db.Q(), time.Now().Add(time.Hour), 10)
			if err != nil || len(pending) != 1 {
				t.Fatalf("Pending after a refusal = %+v, %v; want the receipt", pending, err)
			}
			if p := pending[0]; p.OrderID != 42 || p.Stage != receipt.StagePaid || p.To != "ann@example.com" ||
				p.Attempts != i+1 || !strings.Contains(p.LastError, refusal.Message) {
				t.Errorf("Pending lists %+v; want order 42's paid receipt, %d attempts, failed with %q", p, i+1, refusal.Message)
			}
		}
		if pending, err := receipt.Pending(context.Background(), o.db.Q(), time.Now().Add(-time.Hour), 10); err != nil || len(pending) != 0 {
			t.Errorf("Pending of receipts enqueued over an hour ago = %+v, %v; want none", pending, err)
		}

		o.server.Refuse(nil)
		if sent, err := o.deliver(42, receipt.StagePaid); err != nil || !sent {
			t.Fatalf("Deliver once the server accepts = %v, %v; want true, nil", sent, err)
		}
		if sent, err := o.deliver(42, receipt.StagePaid); err != nil || sent {
			t.Errorf("Deliver after it was sent = %v, %v; want false, nil", sent, err)
		}
		if n := len(o.server.Messages()); n != 1 {
			t.Errorf("the server kept %d messages, want 1", n)
		}
	})
}

// TestDeliverWaitsForAHeldClaim leaves a claim as a deliverer killed
// mid-send would: the receipt is not sent again until its lease ends.
func TestDeliverWaitsForAHeldClaim(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, databaseURL string) {
		o := newOutbox(t, databaseURL)
		o.enqueue(t, paidReceipt())
		ctx := context.Background()
		if _, err := o.db.Q().Exec(ctx, `UPDATE receipts SET claim = 'killed', claimed_until_ms = $1`,
			time.Now().Add(time.Hour).UnixMilli()); err != nil {
			t.Fatal(err)
		}
		if sent, err := o.deliver(42, receipt.StagePaid); sent || !errors.Is(err, receipt.ErrInFlight) {
			t.Errorf("Deliver of a claimed receipt = %v, %v; want false, ErrInFlight", sent, err)
		}
		if pending, err := receipt.Pending(ctx, o.db.Q(), time.Now().Add(time.Hour), 10); err != nil || len(pending) != 0 {
			t.Errorf("Pending lists a claimed receipt: %+v, %v", pending, err)
		}
		if _, err := o.db.Q().Exec(ctx, `UPDATE receipts SET claimed_until_ms = $1`, time.Now().Add(-time.Second).UnixMilli()); err != nil {
			t.Fatal(err)
		}
		if pending, err := receipt.Pending(ctx, o.db.Q(), time.Now().Add(time.Hour), 10); err != nil || len(pending) != 1 {
			t.Errorf("Pending once the claim expired = %+v, %v; want the receipt", pending, err)
		}
		if sent, err := o.deliver(42, receipt.StagePaid); err != nil || !sent {
			t.Errorf("Deliver once the claim expired = %v, %v; want true, nil", sent, err)
		}
		if n := len(o.server.Messages()); n != 1 {
			t.Errorf("the server got %d messages, want 1", n)
		}
	})
}

func TestConcurrentDeliversSendOnce(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, databaseURL string) {
		o := newOutbox(t, databaseURL)
		o.enqueue(t, paidReceipt())
		const deliverers = 8
		var wg sync.WaitGroup
		results := make(chan error, deliverers)
		for range deliverers {
			wg.Go(func() {
				_, err := o.deliver(42, receipt.StagePaid)
				results <- err
			})
		}
		wg.Wait()
		close(results)
		for err := range results {
			if err != nil && !errors.Is(err, receipt.ErrInFlight) {
				t.Errorf("a concurrent Deliver failed: %v", err)
			}
		}
		if n := len(o.server.Messages()); n != 1 {
			t.Errorf("%d concurrent Delivers sent %d messages, want 1", deliverers, n)
		}
	})
}

func TestParseMessageIDRefusesOthers(t *testing.T) {
	for _, id := range []string{
		"", "<x@example.com>", "<receipt-42@h>", "<receipt-42-paid@h>", "<receipt-0-paid.t@h>",
		"<receipt-x-paid.t@h>", "<receipt-42-shipped.t@h>", "<receipt-42-paid.t@h",
	} {
		if orderID, stage, ok := receipt.ParseMessageID(id); ok {
			t.Errorf("ParseMessageID(%q) = %d, %q, true; want false", id, orderID, stage)
		}
	}
}

func TestValidateAddressErrorIsForTheClient(t *testing.T) {
	_, err := receipt.ValidateAddress("not an address")
	var clientErr *shop.Error
	if !errors.As(err, &clientErr) || clientErr.Kind != shop.ErrInvalid {
		t.Errorf("ValidateAddress's error %v is not a *shop.Error of kind ErrInvalid", err)
	}
}

// The environment of a deliverer that TestKillBeforeTheMark runs as a
// process of its own: the database and the SMTP_URL.
const (
	childDatabaseEnv = "RECEIPT_TEST_CHILD_DATABASE_URL"
	childSMTPEnv     = "RECEIPT_TEST_CHILD_SMTP_URL"
)

// TestDeliverAsAChild is the deliverer that TestKillBeforeTheMark kills;
// run by anything else, it does nothing.
func TestDeliverAsAChild(t *testing.T) {
	databaseURL := os.Getenv(childDatabaseEnv)
	if databaseURL == "" {
		return
	}
	ctx := context.Background()
	db, err := store.Open(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := receipt.NewSender(os.Getenv(childSMTPEnv), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = receipt.Deliver(ctx, db.Q(), sender, 42, receipt.StagePaid)
	t.Fatalf("Deliver returned (%v) where it should have been killed waiting for the server's answer", err)
}

// TestKillBeforeTheMark shows the one window of a duplicate, with a real
// process killed by SIGKILL: the server has taken the message, and the
// deliverer dies before it marks the receipt sent. The receipt stays
// claimed for the lease, then goes again, as the same message.
func TestKillBeforeTheMark(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, databaseURL string) {
		o := newOutbox(t, databaseURL)
		o.enqueue(t, paidReceipt())
		arrived, release := o.server.Stall()
		defer release()
		child := exec.Command(os.Args[0], "-test.run=^TestDeliverAsAChild$", "-test.count=1")
		child.Env = append(os.Environ(), childDatabaseEnv+"="+databaseURL, childSMTPEnv+"="+o.server.URL("shop@example.com"))
		var output bytes.Buffer
		child.Stdout, child.Stderr = &output, &output
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- child.Wait() }()
		select {
		case <-arrived:
		case err := <-exited:
			t.Fatalf("the deliverer exited (%v) before its message arrived:\n%s", err, output.String())
		case <-time.After(time.Minute):
			child.Process.Kill()
			t.Fatalf("no message arrived from the deliverer in a minute:\n%s", output.String())
		}
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-exited
		release()
		messages, err := o.server.WaitFor(1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}

		// The dead deliverer's claim holds the receipt for the lease.
		if sent, err := o.deliver(42, receipt.StagePaid); sent || !errors.Is(err, receipt.ErrInFlight) {
			t.Errorf("Deliver after the kill = %v, %v; want false, ErrInFlight", sent, err)
		}
		// The lease runs out, here without the wait.
		if _, err := o.db.Q().Exec(context.Background(), `UPDATE receipts SET claimed_until_ms = 0`); err != nil {
			t.Fatal(err)
		}
		pending, err := receipt.Pending(context.Background(), o.db.Q(), time.Now().Add(time.Hour), 10)
		if err != nil || len(pending) != 1 || pending[0].Attempts != 1 {
			t.Fatalf("Pending after the kill = %+v, %v; want the receipt, tried once", pending, err)
		}
		if sent, err := o.deliver(42, receipt.StagePaid); err != nil || !sent {
			t.Fatalf("Deliver after the lease = %v, %v; want true, nil", sent, err)
		}
		if sent, err := o.deliver(42, receipt.StagePaid); err != nil || sent {
			t.Errorf("Deliver once marked = %v, %v; want false, nil", sent, err)
		}
		byID := o.server.ByMessageID()
		if len(byID) != 1 || len(byID[messages[0].MessageID]) != 2 {
			t.Errorf("the server has %d Message-IDs, %d copies of %s; want the same message twice",
				len(byID), len(byID[messages[0].MessageID]), messages[0].MessageID)
		}
	})
}

// TestDeliverIntoTheLog is a shop without SMTP_URL: the receipt is logged
// once, and marked sent like a mailed one.
func TestDeliverIntoTheLog(t *testing.T) {
	t.Parallel()
	o := newOutbox(t, dbtest.NewDatabase(t, "sqlite"))
	o.enqueue(t, paidReceipt())
	var logged bytes.Buffer
	sender, err := receipt.NewSender("", slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		if sent, err := receipt.Deliver(context.Background(), o.db.Q(), sender, 42, receipt.StagePaid); err != nil || sent != (attempt == 1) {
			t.Errorf("Deliver #%d into the log = %v, %v; want %v, nil", attempt, sent, err, attempt == 1)
		}
	}
	if n := strings.Count(logged.String(), "receipt (no SMTP_URL"); n != 1 {
		t.Errorf("the log has %d receipts, want 1:\n%s", n, logged.String())
	}
}
