package chaos_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestKeyRetriedOnAnotherInstance runs two instances on one PostgreSQL and
// sends every key to both at once: the one that starts the checkout is
// handed its placement, the other reads it from DBOS's records while the
// checkout places on the first, or after, and both answer the same payment
// id, at once. The same key is answered the same again on the instance
// that did not start it while its checkout awaits the payment, on the one
// that did once killed and restarted (its checkouts recovered before any
// request came for them), and on both once the checkout has ended; the key
// for another purchase is a conflict.
func TestKeyRetriedOnAnotherInstance(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t, "postgres")
	args := []string{"-pending-units", "0", "-checkouts-per-minute", "0", "-payment-timeout", "2m", "-dispatch-steps", "2", "-dispatch-interval", "10ms"}
	a := newShop(t, url, append(args, "-executor-id", "instance-a")...)
	b := newShop(t, url, append(args, "-executor-id", "instance-b")...)
	a.run()
	b.run()

	type answer struct {
		status int
		body   string
		err    error
		took   time.Duration
	}
	const n = 20
	keys := make([]string, n)
	answers := make([][2]answer, n) // A's and B's
	var sending sync.WaitGroup
	for i := range keys {
		keys[i] = fmt.Sprintf("both-%d", i)
		for j, s := range []*shop{a, b} {
			sending.Go(func() {
				began := time.Now()
				status, body, err := s.post("/checkout/" + keys[i])
				answers[i][j] = answer{status, body, err, time.Since(began)}
			})
		}
	}
	sending.Wait()
	paymentIDs := make(map[string]string, n) // by key
	var slowest time.Duration
	for i, key := range keys {
		onA, onB := answers[i][0], answers[i][1]
		if onA.err != nil || onB.err != nil || onA.status != 200 || onB.status != 200 || onA.body != onB.body {
			t.Errorf("key %s sent to both: A %d %q %v, B %d %q %v; want the same payment id", key,
				onA.status, onA.body, onA.err, onB.status, onB.body, onB.err)
		}
		paymentIDs[key] = onA.body
		slowest = max(slowest, onA.took, onB.took)
	}
	t.Logf("%d keys sent to both instances at once: the slowest answer took %v", n, slowest.Round(time.Millisecond))
	if slowest > 5*time.Second {
		t.Errorf("a key sent to both instances took %v to answer, want the placement's time, not a wait for a timeout", slowest)
	}

	started := a.mustPost("/checkout/started-on-a")
	paymentIDs["started-on-a"] = started
	if again := b.mustPost("/checkout/started-on-a"); again != started {
		t.Errorf("a key started on A, sent to B while its checkout awaits the payment: %q, want %q", again, started)
	}

	a.kill()
	a.run()
	for key, paymentID := range paymentIDs {
		if again := a.mustPost("/checkout/" + key); again != paymentID {
			t.Errorf("key %s sent to A after its restart: %q, want %q", key, again, paymentID)
		}
	}

	var orders []string
	for _, paymentID := range paymentIDs {
		orders = append(orders, b.mustPost("/payment_webhook/"+paymentID+"/paid"))
	}
	for _, id := range orders {
		a.awaitOrder(id, "DISPATCHED", isDispatched)
	}
	for key, paymentID := range paymentIDs {
		for _, s := range []*shop{a, b} {
			if again := s.mustPost("/checkout/" + key); again != paymentID {
				t.Errorf("key %s sent again after its checkout ended: %q, want %q", key, again, paymentID)
			}
		}
	}
	if status, body, err := b.postJSON("/checkout/started-on-a", `{"product_id": 2, "quantity": 1}`, time.Now().Add(30*time.Second)); status != 409 {
		t.Errorf("the key of a purchase for another: %d %s %v, want 409", status, body, err)
	}
	a.audit(len(paymentIDs))
	a.stop()
	b.stop()
}
