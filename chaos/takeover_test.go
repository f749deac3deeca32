package chaos_test

import (
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestDifferentlyConfiguredInstancesLeaveEachOtherAlone runs two
// instances on one PostgreSQL, one beating every 2 s and one that takes
// over an instance silent for 1 s. Before each instance recorded its own
// heartbeat interval, the quick one took the slow one for dead between two
// of its beats; now it waits for 3 of the slow one's beats to be missed,
// which a live instance does not miss. The checkout started on the slow
// one is paid and dispatched there, and nothing is taken over.
func TestDifferentlyConfiguredInstancesLeaveEachOtherAlone(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t, "postgres")
	slow := newShop(t, url, "-executor-id", "slow", "-heartbeat", "2s", "-takeover-after", "6s")
	quick := newShop(t, url, "-executor-id", "quick", "-heartbeat", "200ms", "-takeover-after", "1s")
	slow.run()
	quick.run()
	paymentID := slow.mustPost("/checkout/on-the-slow-one")
	// Long enough for the quick one to be steady for its 1 s, and for the
	// slow one to leave several 2 s gaps between its beats.
	time.Sleep(7 * time.Second)
	for _, s := range []*shop{slow, quick} {
		if strings.Contains(s.output(), "took over") {
			t.Fatalf("a live instance was taken over:\n%s", s.output())
		}
	}
	orderID := quick.mustPost("/payment_webhook/" + paymentID + "/paid")
	slow.awaitOrder(orderID, "DISPATCHED", isDispatched)
	slow.checkBooks()
	slow.stop()
	quick.stop()
}
