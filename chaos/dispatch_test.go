package chaos_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/receipt/smtptest"
)

// TestDispatchedReceiptSentAfterKill: an order's dispatched receipt,
// enqueued by the dispatch sweep in the transaction that dispatched the
// order while the mail server refused every message, is sent after the
// shop is killed (SIGKILL) and started again, once, and soon: the
// restarted shop sends the receipts its previous run left unsent at its
// first sweep, not a minute later.
func TestDispatchedReceiptSentAfterKill(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		mail := smtptest.Start(t, smtptest.Options{})
		mail.Refuse(&smtp.SMTPError{Code: 451, Message: "try again later"})
		s := newShop(t, url, "-dispatch-steps", "3", "-dispatch-interval", "50ms")
		s.env = []string{"SMTP_URL=" + mail.URL("shop@example.com")}
		s.run()
		status, body, err := s.postJSON("/checkout/receipt-kill", `{"product_id": 1, "quantity": 1, "email": "buyer@example.com"}`, time.Now().Add(time.Minute))
		if err != nil || status != 200 {
			t.Fatalf("checkout: %d %s %v", status, body, err)
		}
		id := s.mustPost("/payment_webhook/" + strings.TrimSpace(body) + "/paid")
		s.awaitOrder(id, "DISPATCHED", isDispatched)
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(s.runOutput(), "stage=dispatched"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the refused dispatched receipt was not logged in 30 s:\n%s", s.runOutput())
			}
		}
		if n := len(mail.Messages()); n != 0 {
			t.Fatalf("the refusing server took %d messages", n)
		}

		s.kill()
		mail.Refuse(nil)
		s.run()
		restarted := time.Now()
		if _, err := mail.WaitForDistinct(2, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(restarted); took > 20*time.Second {
			t.Errorf("the receipts came %v after the restart, want them at its first sweeps", took)
		}
		time.Sleep(time.Second) // for a receipt sent twice to show
		got := map[string]int{}
		for messageID, messages := range mail.ByMessageID() {
			order, stage, ok := receipt.ParseMessageID(messageID)
			if !ok || fmt.Sprint(order) != id {
				t.Errorf("an unexpected receipt %s", messageID)
			}
			got[string(stage)] += len(messages)
		}
		if got[string(receipt.StagePaid)] != 1 || got[string(receipt.StageDispatched)] != 1 || len(got) != 2 {
			t.Errorf("receipts sent, by stage: %v; want the paid and the dispatched one, once each", got)
		}
		s.audit(1)
	})
}
