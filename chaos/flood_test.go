package chaos_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// clientAt is an HTTP client at its own loopback address: on Linux every
// 127.x.y.z is this machine, so the shop sees each such client apart.
func clientAt(t testing.TB, ip string) *http.Client {
	transport := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}
}

// postAs sends a request from client and returns status and body; a
// transport error (the shop is down) is returned as err.
func (s *shop) postAs(client *http.Client, path, body string) (int, string, error) {
	resp, err := client.Post(s.url()+path, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// retryAs posts from client, again with the same request while the shop is
// down, as a browser or a payment provider would, until it answers, the
// deadline passes or stop is closed.
func (s *shop) retryAs(client *http.Client, path, body string, until time.Time, stop <-chan struct{}) (int, string, error) {
	for {
		status, answer, err := s.postAs(client, path, body)
		if err == nil || time.Now().After(until) {
			return status, answer, err
		}
		select {
		case <-stop:
			return status, answer, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestFlooderHeldAcrossRestart: one client floods product 2 (50 in stock)
// with checkouts of 10 units under new keys, never paying, while three
// honest clients buy and pay; the shop is killed and started again in the
// middle. The units a client may hold awaiting payment are counted in the
// database, so the restart gives the flooder no new allowance: it holds
// its limit of 20 units and never more, and the honest buyers get their
// widgets.
func TestFlooderHeldAcrossRestart(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		const (
			product      = 2
			limit, flood = 20, 10 // units: the flooder may hold two of its checkouts
			honestBuys   = 3      // per honest client, of 3 units each
		)
		// The payment window outlasts the test: the flooder's checkouts
		// hold their units throughout.
		s := newShop(t, url, "-pending-units", fmt.Sprint(limit), "-checkouts-per-minute", "30",
			"-payment-timeout", "5m", "-dispatch-steps", "3", "-dispatch-interval", "50ms")
		s.run()
		stock := s.inventory(product)
		until := time.Now().Add(2 * time.Minute)

		var (
			mu               sync.Mutex
			restarted        bool
			won              int // the flooder's checkouts answered 200
			heldAfterRestart int // its refusals after the restart for the units it holds
			rateAfterRestart int // and for its rate
			flooding, buying sync.WaitGroup
		)
		// stop ends the flood, and the honest clients' retries when the
		// test gives up; stopAll waits for every client to be done.
		stop := make(chan struct{})
		stopAll := sync.OnceFunc(func() {
			close(stop)
			flooding.Wait()
			buying.Wait()
		})
		defer stopAll()
		flooder := clientAt(t, "127.0.0.2")
		for g := range 2 {
			flooding.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					status, body, err := s.postAs(flooder, fmt.Sprintf("/checkout/flood-%d-%d", g, i), fmt.Sprintf(`{"product_id": %d, "quantity": %d}`, product, flood))
					mu.Lock()
					switch {
					case err != nil:
						// The shop is down: the flood goes on with new keys.
					case status == 200:
						won++
					case status == http.StatusTooManyRequests && restarted && strings.Contains(body, fmt.Sprintf("hold %d units", limit)):
						heldAfterRestart++
					case status == http.StatusTooManyRequests && restarted:
						rateAfterRestart++
					case status == http.StatusTooManyRequests:
					default:
						t.Errorf("the flooder's checkout: %d %s", status, body)
					}
					mu.Unlock()
				}
			})
		}

		// Three honest clients buy one after another, paying each; the
		// kill lands among their purchases.
		var honestOrders []string
		bought := make(chan struct{}, 3*honestBuys)
		for c, ip := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
			client := clientAt(t, ip)
			buying.Go(func() {
				for i := range honestBuys {
					key := fmt.Sprintf("honest-%d-%d", c, i)
					status, paymentID, err := s.retryAs(client, "/checkout/"+key, fmt.Sprintf(`{"product_id": %d, "quantity": 3}`, product), until, stop)
					if err != nil || status != 200 {
						t.Errorf("honest checkout %s: %d %s %v", key, status, paymentID, err)
						return
					}
					status, orderID, err := s.retryAs(client, "/payment_webhook/"+paymentID+"/paid", "", until, stop)
					if err != nil || status != 200 {
						t.Errorf("paying honest checkout %s: %d %s %v", key, status, orderID, err)
						return
					}
					mu.Lock()
					honestOrders = append(honestOrders, orderID)
					mu.Unlock()
					bought <- struct{}{}
					time.Sleep(300 * time.Millisecond)
				}
			})
		}

		// Kill once the flooder holds its limit and an honest client has
		// bought, and start the shop again.
		select {
		case <-bought:
		case <-time.After(time.Until(until)):
			t.Fatal("no honest client bought anything")
		}
		for {
			mu.Lock()
			full := won*flood >= limit
			mu.Unlock()
			if full {
				break
			}
			if time.Now().After(until) {
				t.Fatalf("the flooder never got to its limit of %d units", limit)
			}
			time.Sleep(10 * time.Millisecond)
		}
		s.kill()
		mu.Lock()
		restarted = true
		mu.Unlock()
		s.run()

		buying.Wait()
		// The flood goes on until the restarted shop has refused it for
		// the units it holds a few times.
		for deadline := time.Now().Add(30 * time.Second); ; {
			mu.Lock()
			refused := heldAfterRestart
			mu.Unlock()
			if refused >= 5 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the restarted shop refused the flooder %d times for the units it holds, want 5", refused)
			}
			time.Sleep(10 * time.Millisecond)
		}
		stopAll()

		t.Logf("the flooder won %d checkouts; after the restart it was refused %d times for the units it holds, %d for its rate",
			won, heldAfterRestart, rateAfterRestart)
		var orders []order
		if err := s.getJSON("/orders", &orders); err != nil {
			t.Fatal(err)
		}
		held := 0
		for _, o := range orders {
			if o.ProductID == product && o.Quantity == flood && o.Status == "PENDING" {
				held += o.Quantity
			}
		}
		if held != limit || won*flood != limit {
			t.Errorf("the flooder holds %d units in pending orders and won %d checkouts of %d: want %d units, no more across the restart",
				held, won, flood, limit)
		}
		if len(honestOrders) != 3*honestBuys {
			t.Fatalf("the honest clients bought %d times, want %d", len(honestOrders), 3*honestBuys)
		}
		for _, id := range honestOrders {
			s.awaitOrder(id, "DISPATCHED", isDispatched)
		}
		if got, want := s.inventory(product), stock-limit-3*honestBuys*3; got != want {
			t.Errorf("stock of product %d = %d, want %d", product, got, want)
		}
		s.audit(won + len(honestOrders))
	})
}
