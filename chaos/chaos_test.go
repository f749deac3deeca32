// Package chaos_test runs the real widgetstore binary as a child process,
// kills it with SIGKILL at chosen and at random moments, starts it again,
// and checks that every order reaches its final state exactly once.
package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	_ "github.com/dbos-inc/dbos-transact-golang/dbos/driver/sqlite"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// audit fails the test unless the shop's books balance and it holds
// exactly wantOrders orders.
func (s *shop) audit(wantOrders int) {
	s.t.Helper()
	s.checkBooks()
	var orders []order
	if err := s.getJSON("/orders", &orders); err != nil {
		s.t.Fatal(err)
	}
	if len(orders) != wantOrders {
		s.t.Errorf("%d orders, want %d: %+v", len(orders), wantOrders, orders)
	}
}

// money is the shop's books of money (store.Money).
type money struct {
	Taken     int64 `json:"taken_cents"`
	Kept      int64 `json:"kept_cents"`
	Refunding int64 `json:"refunding_cents"`
	Refunded  int64 `json:"refunded_cents"`
	Owed      int64 `json:"owed_cents"`
}

// checkBooks fails the test unless the shop's books balance, its money
// included: every cent taken is kept by a paid order or owed back. It holds
// at any moment, purchases in flight or not, so the chaos tests check it
// after every kill. It returns the books of money.
func (s *shop) checkBooks() money {
	s.t.Helper()
	var audit struct {
		Breaches []string
		Money    money
	}
	if err := s.getJSON("/api/audit", &audit); err != nil {
		s.t.Fatal(err)
	}
	for _, b := range audit.Breaches {
		s.t.Errorf("audit: %s", b)
	}
	m := audit.Money
	if m.Taken != m.Kept+m.Refunding+m.Refunded+m.Owed {
		s.t.Errorf("money: %+v: taken is not kept plus owed back", m)
	}
	return m
}

func (s *shop) inventory(product int64) int {
	s.t.Helper()
	return s.product(product).Inventory
}

func (s *shop) price(product int64) int64 {
	s.t.Helper()
	return s.product(product).PriceCents
}

type product struct {
	ID         int64 `json:"product_id"`
	Inventory  int   `json:"inventory"`
	PriceCents int64 `json:"price_cents"`
}

func (s *shop) product(id int64) product {
	s.t.Helper()
	var products []product
	if err := s.getJSON("/api/products", &products); err != nil {
		s.t.Fatal(err)
	}
	for _, p := range products {
		if p.ID == id {
			return p
		}
	}
	s.t.Fatalf("no product %d", id)
	return product{}
}

func (s *shop) orderByPayment(paymentID string) order {
	s.t.Helper()
	var orders []order
	if err := s.getJSON("/orders", &orders); err != nil {
		s.t.Fatal(err)
	}
	for _, o := range orders {
		if o.PaymentID == paymentID {
			return o
		}
	}
	s.t.Fatalf("no order for payment %s", paymentID)
	return order{}
}

func isDispatched(o order) bool { return o.Status == "DISPATCHED" }
func isCancelled(o order) bool  { return o.Status == "CANCELLED" }

// TestKillWhileAwaitingPayment kills the shop while three checkouts wait
// for their payment. After the restart one is paid, one refused, and one
// left to time out: each must end as its payment says, exactly once.
func TestKillWhileAwaitingPayment(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newShop(t, url, "-payment-timeout", "8s", "-dispatch-steps", "3", "-dispatch-interval", "100ms")
		s.run()
		stock := s.inventory(1)
		payPaid := s.mustPost("/checkout/await-paid")
		payRefused := s.mustPost("/checkout/await-refused")
		payUnpaid := s.mustPost("/checkout/await-unpaid")

		s.kill()
		s.run()
		t.Logf("restart to serving: %v", time.Since(s.start).Round(time.Millisecond))

		if again := s.mustPost("/checkout/await-paid"); again != payPaid {
			t.Errorf("the same key after the restart answered payment id %s, want %s", again, payPaid)
		}
		paid := s.mustPost("/payment_webhook/" + payPaid + "/paid")
		refused := s.mustPost("/payment_webhook/" + payRefused + "/failed")
		s.awaitOrder(paid, "DISPATCHED", isDispatched)
		if o := s.order(refused); o.Status != "CANCELLED" || o.CancelReason != "payment refused" {
			t.Errorf("refused order: %+v", o)
		}
		unpaid := s.orderByPayment(payUnpaid)
		if o := s.awaitOrder(strconv.FormatInt(unpaid.ID, 10), "CANCELLED", isCancelled); o.CancelReason != "payment not received in time" {
			t.Errorf("unpaid order: %+v", o)
		}
		if got := s.inventory(1); got != stock-1 {
			t.Errorf("stock = %d, want %d: one widget sold", got, stock-1)
		}
		s.audit(3)
	})
}

// TestKillMidDispatch kills the shop in the middle of a dispatch; the
// restarted shop dispatches the order on time: the progress, counted from
// the durably recorded payment, never goes back across the kill, the order
// is dispatched once, no sooner than its dispatch allows (the audit) and
// within a second or two of its last step's being due (or of the restart,
// when it fell due while the shop was down), and the checkout's steps
// before the kill are not run again. The checkout itself ended at the
// payment: the restarted shop's dispatch sweep dispatches the order.
func TestKillMidDispatch(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		const interval = 10 * time.Millisecond
		s := newShop(t, url, "-dispatch-steps", "300", "-dispatch-interval", interval.String())
		s.run()
		pay := s.mustPost("/checkout/mid-dispatch")
		id := s.mustPost("/payment_webhook/" + pay + "/paid")
		before := s.awaitOrder(id, "mid-dispatch", func(o order) bool { return o.ProgressRemaining > 0 && o.ProgressRemaining <= 250 })
		// Its last step is due no later than this: it had at most
		// ProgressRemaining steps to go when it was read.
		due := time.Now().Add(time.Duration(before.ProgressRemaining) * interval)

		s.kill()
		s.run()
		restarted, healthy := s.start, time.Since(s.start)
		last := before.ProgressRemaining
		o := s.order(id)
		for ; !isDispatched(o); o = s.order(id) {
			if o.ProgressRemaining > last {
				t.Fatalf("progress went back from %d to %d steps to go", last, o.ProgressRemaining)
			}
			last = o.ProgressRemaining
			if time.Since(restarted) > time.Minute {
				t.Fatalf("not dispatched a minute after the restart: %+v", o)
			}
			time.Sleep(20 * time.Millisecond)
		}
		serving := restarted.Add(healthy)
		if serving.Before(due) {
			serving = due
		}
		if late := o.UpdatedAt.Sub(serving); late > 2*time.Second {
			t.Errorf("dispatched at %v, %v after its last step was due or the shop served again (%v): want within 2 s", o.UpdatedAt, late, serving)
		}
		s.audit(1)
		s.stop()

		// One step, and none for the placement's hand-off or the payment:
		// the checkout waits without a checkpoint, ends as its order's row
		// says, and no step of its dispatches the order.
		steps := workflowSteps(t, url, "mid-dispatch")
		var names []string
		for _, step := range steps {
			names = append(names, step.StepName)
		}
		want := []string{"checkout.placeOrder"}
		if !slices.Equal(names, want) {
			t.Fatalf("the checkout's steps are %q, want each once: %q", names, want)
		}
		t.Logf("restart to serving: %v", healthy.Round(time.Millisecond))
		// The order was placed before the kill: its record is the first
		// run's. (The checkout may end after the restart: the progress
		// counts from the payment itself.)
		for _, step := range steps[:1] {
			if step.CompletedAt.After(restarted) {
				t.Errorf("step %s completed after the restart: it ran again", step.StepName)
			}
		}
	})
}

// workflowSteps reads a workflow's recorded steps with a DBOS client, once
// the shop is stopped (one handle on a SQLite file at a time).
func workflowSteps(t *testing.T, url, workflowID string) []dbos.StepInfo {
	t.Helper()
	client, err := dbos.NewClient(context.Background(), dbos.ClientConfig{DatabaseURL: url, AppName: "widgetstore"})
	if err != nil {
		t.Fatal(err)
	}
	defer dbos.Shutdown(client, 10*time.Second)
	steps, err := dbos.GetWorkflowSteps(client, workflowID)
	if err != nil {
		t.Fatal(err)
	}
	return steps
}

// TestStopAndStart shuts the shop down cleanly (SIGTERM) while one order
// waits for its payment and another is being dispatched: a clean shutdown
// must leave both to the next start, not cancel them.
func TestStopAndStart(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newShop(t, url, "-dispatch-steps", "20", "-dispatch-interval", "50ms")
		s.run()
		waiting := s.mustPost("/checkout/stop-waiting")
		dispatching := s.mustPost("/payment_webhook/" + s.mustPost("/checkout/stop-dispatching") + "/paid")
		if o := s.awaitOrder(dispatching, "mid-dispatch", func(o order) bool { return o.ProgressRemaining < 20 }); o.ProgressRemaining == 0 {
			t.Fatal("the dispatch finished before the stop: the test proves nothing")
		}

		s.stop()
		s.run()
		paid := s.mustPost("/payment_webhook/" + waiting + "/paid")
		s.awaitOrder(paid, "DISPATCHED", isDispatched)
		s.awaitOrder(dispatching, "DISPATCHED", isDispatched)
		s.audit(2)
	})
}

// purchase is one customer's checkout and payment, retried with the same
// key and payment id while the shop is down, as a browser or a payment
// provider would.
type purchase struct {
	key, paymentID, orderID string
	pay                     bool
	retried                 bool // the shop was down at some point of it
	err                     error
}

// retry posts until the shop answers anything but a transport error.
func (s *shop) retry(p *purchase, path string, until time.Time) (int, string, error) {
	for {
		status, body, err := s.post(path)
		if err == nil {
			return status, body, nil
		}
		p.retried = true
		if time.Now().After(until) {
			return 0, "", fmt.Errorf("POST %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *shop) buy(p *purchase, until time.Time) {
	status, body, err := s.retry(p, "/checkout/"+p.key, until)
	if err == nil && status != 200 {
		err = fmt.Errorf("checkout %s: %d %s", p.key, status, body)
	}
	if err != nil {
		p.err = err
		return
	}
	p.paymentID = body
	outcome := "failed"
	if p.pay {
		outcome = "paid"
	}
	status, body, err = s.retry(p, "/payment_webhook/"+p.paymentID+"/"+outcome, until)
	if err == nil && status != 200 {
		err = fmt.Errorf("payment %s %s: %d %s", p.paymentID, outcome, status, body)
	}
	p.orderID, p.err = body, err
}

// chaosSeed is the seed of a test's random moments: CHAOS_SEED's when it
// is set, to replay a failure, else a new one. The test logs it, so a
// failure's output says how to replay it.
func chaosSeed(t *testing.T) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if env := os.Getenv("CHAOS_SEED"); env != "" {
		var err error
		if seed, err = strconv.ParseUint(env, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an unsigned integer: %v", env, err)
		}
	}
	t.Logf("random moments from seed %d; replay them with CHAOS_SEED=%d go test -run '^%s$' ./chaos", seed, seed, t.Name())
	return seed
}

// TestKillAtRandomMoments runs customers against the shop while it is
// killed five times at random moments. Every purchase must end as its
// customer paid, with one order per key and the books balanced. A seed
// replays the same moments (CHAOS_SEED), though not the same
// interleaving: the processes' timing is the machine's.
func TestKillAtRandomMoments(t *testing.T) {
	t.Parallel()
	seed := chaosSeed(t)
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		random := rand.New(rand.NewPCG(seed, 0))
		// Its customers all come from 127.0.0.1, faster than one client may.
		s := newShop(t, url, "-payment-timeout", "30s", "-dispatch-steps", "3", "-dispatch-interval", "50ms", "-checkouts-per-minute", "0")
		s.run()
		s.mustPost("/restock")
		stock := s.inventory(1)

		// Customers buy one widget after another until the kills are over,
		// or until they have bought what the stock can serve (and GET
		// /orders lists), pausing a moment between two purchases, as people
		// do: without the pauses the purchases, which take milliseconds,
		// could all be over before the first kill.
		const customers, most = 4, 25
		const pause = 150 * time.Millisecond // at most
		var (
			mu        sync.Mutex
			purchases []*purchase
			wg        sync.WaitGroup
			buying    atomic.Int32 // purchases under way
		)
		killsOver := make(chan struct{})
		until := time.Now().Add(2 * time.Minute)
		for c := range customers {
			pauses := rand.New(rand.NewPCG(seed, uint64(c)+1))
			wg.Go(func() {
				for i := range most {
					if i > 0 {
						time.Sleep(time.Duration(pauses.Int64N(int64(pause))))
					}
					select {
					case <-killsOver:
						return
					default:
					}
					p := &purchase{key: fmt.Sprintf("random-%d-%d", c, i), pay: i%3 != 2}
					buying.Add(1)
					s.buy(p, until)
					buying.Add(-1)
					mu.Lock()
					purchases = append(purchases, p)
					mu.Unlock()
				}
			})
		}
		for range 5 {
			time.Sleep(time.Duration(100+random.IntN(400)) * time.Millisecond)
			// The kill lands during a purchase, if one starts within a second.
			for waited := time.Now(); buying.Load() == 0 && time.Since(waited) < time.Second; {
				time.Sleep(time.Millisecond)
			}
			s.kill()
			s.run()
			s.checkBooks()
		}
		close(killsOver)
		wg.Wait()

		sold, retried := 0, 0
		for _, p := range purchases {
			if p.retried {
				retried++
			}
			if p.err != nil {
				t.Errorf("purchase %s: %v", p.key, p.err)
				continue
			}
			if p.pay {
				s.awaitOrder(p.orderID, "DISPATCHED", isDispatched)
				sold++
			} else if o := s.order(p.orderID); o.Status != "CANCELLED" || o.CancelReason != "payment refused" {
				t.Errorf("refused purchase %s: %+v", p.key, o)
			}
		}
		t.Logf("%d purchases, %d of them cut by a kill and retried", len(purchases), retried)
		if retried == 0 {
			t.Errorf("no kill landed during a purchase: the test proved nothing")
		}
		if got := s.inventory(1); got != stock-sold {
			t.Errorf("stock = %d, want %d - %d sold", got, stock, sold)
		}
		// Every payment taken was for a purchase that was dispatched: the
		// shop keeps exactly their price, and owes nothing back.
		if m, price := s.checkBooks(), s.price(1); m.Kept != int64(sold)*price || m.Taken != m.Kept {
			t.Errorf("money %+v, want %d sold at %d cents kept, and nothing owed back", m, sold, price)
		}
		s.audit(len(purchases))
	})
}

// TestSupervisorRestartsAfterCrash presses the crash button of a
// supervised shop: a new server process serves again by itself, and the
// order placed before the crash is paid and dispatched after it.
func TestSupervisorRestartsAfterCrash(t *testing.T) {
	t.Parallel()
	s := newShop(t, dbtest.NewDatabase(t, "sqlite"), "-dispatch-steps", "3", "-dispatch-interval", "50ms")
	s.startProcess() // supervised: the default
	s.awaitHealthy()
	pay := s.mustPost("/checkout/before-the-crash")

	if status, body, _ := s.post("/crash_application"); status != 202 {
		t.Fatalf("crash button: %d %s", status, body)
	}
	crashed := time.Now()
	// The supervisor logs the death once it has reaped the server: from
	// then on, whatever answers is a new server.
	for !strings.Contains(s.output(), "server died; restarting") {
		if time.Since(crashed) > 30*time.Second {
			t.Fatalf("the supervisor did not see the server die 30 s after the crash:\n%s", s.output())
		}
		time.Sleep(time.Millisecond)
	}
	s.http.CloseIdleConnections() // none to the dead server may be reused
	s.awaitHealthy()
	t.Logf("crash button to a new server serving: %v", time.Since(crashed).Round(time.Millisecond))

	id := s.mustPost("/payment_webhook/" + pay + "/paid")
	s.awaitOrder(id, "DISPATCHED", isDispatched)
	s.audit(1)
	s.stop()
}

// TestTwoInstancesShareOnePostgres runs two instances, each with its own
// executor id, on one PostgreSQL, as a deployment behind a load balancer
// would: a checkout started on one is paid through the other, and an
// instance killed mid-dispatch finishes its dispatch when it comes back.
func TestTwoInstancesShareOnePostgres(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t, "postgres")
	a := newShop(t, url, "-executor-id", "instance-a", "-dispatch-steps", "40", "-dispatch-interval", "25ms")
	b := newShop(t, url, "-executor-id", "instance-b", "-dispatch-steps", "40", "-dispatch-interval", "25ms")
	a.startProcess("-supervise=false") // both at once: migrations must not race
	b.startProcess("-supervise=false")
	a.awaitHealthy()
	b.awaitHealthy()

	payA := a.mustPost("/checkout/on-a")
	payB := b.mustPost("/checkout/on-b")
	if again := b.mustPost("/checkout/on-a"); again != payA {
		t.Errorf("the key of a checkout on A, sent to B, answered %s, want %s", again, payA)
	}
	onA := b.mustPost("/payment_webhook/" + payA + "/paid") // A's checkout, paid through B
	onB := a.mustPost("/payment_webhook/" + payB + "/paid")

	a.awaitOrder(onA, "mid-dispatch", func(o order) bool { return o.ProgressRemaining < 40 })
	a.kill()
	b.awaitOrder(onB, "DISPATCHED", isDispatched)
	a.run()
	b.awaitOrder(onA, "DISPATCHED", isDispatched)
	b.audit(2)
}

// TestSilentInstanceTakenOver runs two instances past the silence after
// which one takes over the other, then kills one for good: the other takes
// over its workflows, so its waiting checkout is paid and its dispatch
// finishes.
func TestSilentInstanceTakenOver(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t, "postgres")
	args := []string{"-takeover-after", "2s", "-heartbeat", "500ms", "-dispatch-steps", "200", "-dispatch-interval", "40ms"}
	a := newShop(t, url, append(args, "-executor-id", "instance-a")...)
	b := newShop(t, url, append(args, "-executor-id", "instance-b")...)
	a.run()
	b.run()

	waiting := a.mustPost("/checkout/left-waiting")
	dispatching := a.mustPost("/payment_webhook/" + a.mustPost("/checkout/left-dispatching") + "/paid")
	a.awaitOrder(dispatching, "mid-dispatch", func(o order) bool { return o.ProgressRemaining < 200 })
	// Live instances keep their heartbeats: nothing is taken over.
	time.Sleep(3 * time.Second)
	for _, s := range []*shop{a, b} {
		if strings.Contains(s.output(), "took over") {
			t.Fatalf("a live instance was taken over:\n%s", s.output())
		}
	}
	a.kill()
	killed := time.Now()
	if o := b.order(dispatching); o.ProgressRemaining == 0 {
		t.Fatalf("the dispatch finished before the kill: the test proves nothing")
	}

	paid := b.mustPost("/payment_webhook/" + waiting + "/paid")
	t.Logf("instance killed to its waiting checkout settled by the other: %v", time.Since(killed).Round(time.Millisecond))
	b.awaitOrder(paid, "DISPATCHED", isDispatched)
	b.awaitOrder(dispatching, "DISPATCHED", isDispatched)
	b.audit(2)
	if !strings.Contains(b.output(), "took over the workflows of a silent instance") {
		t.Errorf("instance b did not log the takeover")
	}
}
