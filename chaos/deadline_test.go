package chaos_test

import (
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestPaymentBeforeDeadlineSurvivesKill kills the shop right after it
// answered a payment, and starts it again only after the payment deadline
// has passed: the payment, answered before the deadline, is honoured (the
// order is dispatched, not cancelled as unpaid), and its redelivery
// answers the same order.
func TestPaymentBeforeDeadlineSurvivesKill(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		const timeout = 2 * time.Second
		s := newShop(t, url, "-payment-timeout", timeout.String(), "-dispatch-steps", "3", "-dispatch-interval", "50ms")
		s.run()
		paymentID := s.mustPost("/checkout/paid-then-killed")
		placed := time.Now()
		orderID := s.mustPost("/payment_webhook/" + paymentID + "/paid")
		s.kill()

		time.Sleep(time.Until(placed.Add(timeout + time.Second)))
		s.run()
		if again := s.mustPost("/payment_webhook/" + paymentID + "/paid"); again != orderID {
			t.Errorf("the redelivered payment answered order %s, want %s", again, orderID)
		}
		s.awaitOrder(orderID, "DISPATCHED", isDispatched)
		s.audit(1)
	})
}
