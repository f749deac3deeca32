package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/web"
)

// client is a customer at its own address: on Linux every 127.x.y.z is
// this machine, so a test server at 127.0.0.1 sees each client apart.
type client struct {
	t    testing.TB
	s    *testServer
	http *http.Client
}

func (s *testServer) clientAt(t testing.TB, ip string) *client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}}
	t.Cleanup(transport.CloseIdleConnections)
	return &client{t: t, s: s, http: &http.Client{Transport: transport, Timeout: 60 * time.Second}}
}

type answer struct {
	status     int
	body       string
	retryAfter string
}

func (c *client) post(path, body string, header ...string) answer {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.s.URL+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, body: string(b), retryAfter: resp.Header.Get("Retry-After")}
}

// buy starts a checkout of quantity of product under key.
func (c *client) buy(key string, product, quantity int) answer {
	c.t.Helper()
	return c.post("/checkout/"+key, fmt.Sprintf(`{"product_id": %d, "quantity": %d}`, product, quantity))
}

// mustRefuse fails the test unless a is a 429 with a JSON error and a
// Retry-After of 1 to most seconds.
func mustRefuse(t testing.TB, what string, a answer, most int) {
	t.Helper()
	var e struct{ Error string }
	if a.status != http.StatusTooManyRequests || json.Unmarshal([]byte(a.body), &e) != nil || e.Error == "" {
		t.Errorf("%s: %d %s, want 429 with a JSON error", what, a.status, a.body)
		return
	}
	if secs, err := strconv.Atoi(a.retryAfter); err != nil || secs < 1 || secs > most {
		t.Errorf("%s: Retry-After %q, want 1 to %d seconds", what, a.retryAfter, most)
	}
}

func mustBuy(t testing.TB, what string, a answer) string {
	t.Helper()
	if a.status != 200 || !strings.HasPrefix(a.body, "pay_") {
		t.Fatalf("%s: %d %s, want 200 and a payment id", what, a.status, a.body)
	}
	return a.body
}

// limited is testConfig with a limit of pending units per client.
func limited(cfg checkout.Config, units int) checkout.Config {
	cfg.PendingUnitsPerClient = units
	return cfg
}

// TestFloodingClientLeavesStockToOthers: one client floods the checkout of
// a product with 10 in stock from many goroutines, with new keys; it gets
// at most what the limits allow, and the honest buyers at other addresses
// buy the rest meanwhile.
func TestFloodingClientLeavesStockToOthers(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		limits := web.CheckoutLimits{PerMinute: 30, PaymentWindow: testConfig.PaymentTimeout}
		s := newTestServerWith(t, url, limited(testConfig, 4), web.Options{Limits: limits})
		flooder := s.clientAt(t, "127.0.0.2")
		const product = 3 // Widget Deluxe: 10 in stock

		var (
			mu      sync.Mutex
			won     []string // the flooder's payment ids
			refused int
			wg      sync.WaitGroup
		)
		stop := make(chan struct{})
		for g := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					a := flooder.buy(fmt.Sprintf("flood-%d-%d", g, i), product, 2)
					mu.Lock()
					switch a.status {
					case 200:
						won = append(won, a.body)
					case http.StatusTooManyRequests:
						refused++
					default:
						t.Errorf("the flooder's checkout: %d %s", a.status, a.body)
					}
					mu.Unlock()
				}
			})
		}
		// Honest buyers, one widget or three, while the flood goes on.
		for i, ip := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
			quantity := 1 + 2*(i%2)
			mustBuy(t, "an honest buyer at "+ip, s.clientAt(t, ip).buy("honest-"+ip, product, quantity))
		}
		time.Sleep(200 * time.Millisecond) // the flood goes on a little
		close(stop)
		wg.Wait()

		t.Logf("the flooder won %d checkouts, was refused %d", len(won), refused)
		if len(won) != 2 || refused == 0 {
			t.Errorf("the flooder won %d checkouts of 2 widgets, want 2 (4 units), and was refused %d times", len(won), refused)
		}
		// What is left: 10 - 4 (flooder) - 5 (honest).
		if a := s.clientAt(t, "127.0.0.6").buy("honest-last", product, 1); a.status != 200 {
			t.Errorf("the last widget: %d %s", a.status, a.body)
		}
		mustRefuse(t, "the flooder, holding 4", flooder.buy("flood-after", 1, 1), int(testConfig.PaymentTimeout.Seconds()))
	})
}

// TestPendingUnitsAreReleased: a client's held units come back to it when
// its checkouts are paid or refused; a retry of a key it already started,
// at its limit, answers as before; a key refused for the limit is used,
// and answers the same refusal again, changing nothing.
func TestPendingUnitsAreReleased(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		s := newTestServerWith(t, url, limited(testConfig, 4), web.Options{})
		c := s.clientAt(t, "127.0.0.2")
		first := mustBuy(t, "3 units", c.buy("first", 1, 3))
		mustRefuse(t, "2 more units", c.buy("second", 1, 2), int(testConfig.PaymentTimeout.Seconds()))
		second := mustBuy(t, "1 more unit", c.buy("second-smaller", 1, 1))
		third := c.buy("third", 1, 1)
		mustRefuse(t, "a 5th unit", third, int(testConfig.PaymentTimeout.Seconds()))
		if !strings.Contains(third.body, "hold 4 units") || !strings.Contains(third.body, "at most 4") {
			t.Errorf("the refusal says %s, want how many units the client holds and may hold", third.body)
		}
		if again := c.buy("first", 1, 3); again.status != 200 || again.body != first {
			t.Errorf("a retry of the first key at the limit: %d %s, want 200 %s", again.status, again.body, first)
		}
		before := s.snapshot(t)
		mustRefuse(t, "a 5th unit again", c.buy("third", 1, 1), int(testConfig.PaymentTimeout.Seconds()))
		if after := s.snapshot(t); after != before {
			t.Errorf("a refused checkout changed the shop:\nbefore %s\nafter  %s", before, after)
		}
		// Another client is not held to this one's units.
		mustBuy(t, "another client", s.clientAt(t, "127.0.0.3").buy("other", 1, 4))

		if a := c.post("/payment_webhook/"+first+"/paid", ""); a.status != 200 {
			t.Fatalf("paying the first: %d %s", a.status, a.body)
		}
		mustRefuse(t, "the refused key, once the first is paid", c.buy("third", 1, 1), int(testConfig.PaymentTimeout.Seconds()))
		mustBuy(t, "3 units once the first is paid", c.buy("third-again", 1, 3))
		if a := c.post("/payment_webhook/"+second+"/failed", ""); a.status != 200 {
			t.Fatalf("refusing the second: %d %s", a.status, a.body)
		}
		mustBuy(t, "1 unit once the second is refused", c.buy("fourth", 1, 1))
		mustRefuse(t, "a 5th unit", c.buy("fifth", 1, 1), int(testConfig.PaymentTimeout.Seconds()))
	})
}

// TestPendingUnitsReleasedByTimeout: a checkout that is never paid holds
// its units until it times out, and no longer; the refusals meanwhile say
// to wait until then.
func TestPendingUnitsReleasedByTimeout(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		cfg := checkout.Config{PaymentTimeout: 2 * time.Second, DispatchSteps: 1, DispatchInterval: time.Millisecond, PendingUnitsPerClient: 10}
		s := newTestServerWith(t, url, cfg, web.Options{})
		c := s.clientAt(t, "127.0.0.2")
		start := time.Now()
		mustBuy(t, "10 units", c.buy("unpaid", 1, 10))
		for i := 0; ; i++ {
			a := c.buy(fmt.Sprint("more-", i), 1, 1) // a refused key is used: each try has its own
			if a.status == 200 {
				break
			}
			mustRefuse(t, "one more, while the first awaits its payment", a, 2)
			if time.Since(start) > 30*time.Second {
				t.Fatalf("the units of a checkout timed out after %v are still held", cfg.PaymentTimeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if waited := time.Since(start); waited < cfg.PaymentTimeout {
			t.Errorf("the units came back after %v, before the checkout's %v payment window", waited, cfg.PaymentTimeout)
		}
	})
}

// TestCheckoutRate: a client may start so many checkouts a minute; its
// retries of a key are not new checkouts, and other clients are not
// slowed.
func TestCheckoutRate(t *testing.T) {
	s := newTestServerWith(t, dbtest.NewDatabase(t, "sqlite"), testConfig, web.Options{Limits: web.CheckoutLimits{PerMinute: 3}})
	c := s.clientAt(t, "127.0.0.2")
	var paid []string
	for i := range 3 {
		paid = append(paid, mustBuy(t, "a checkout within the rate", c.buy(fmt.Sprint("rate-", i), 1, 1)))
	}
	before := s.snapshot(t)
	mustRefuse(t, "a 4th checkout within the minute", c.buy("rate-3", 1, 1), 20)
	if after := s.snapshot(t); after != before {
		t.Errorf("a refused checkout changed the shop:\nbefore %s\nafter  %s", before, after)
	}
	for i, id := range paid {
		if again := c.buy(fmt.Sprint("rate-", i), 1, 1); again.status != 200 || again.body != id {
			t.Errorf("a retry of key rate-%d: %d %s, want 200 %s", i, again.status, again.body, id)
		}
	}
	if a := c.buy("bad key", 1, 1); a.status != 400 {
		t.Errorf("a malformed key over the rate: %d %s, want 400", a.status, a.body)
	}
	mustBuy(t, "another client", s.clientAt(t, "127.0.0.3").buy("other", 1, 1))
}

// TestBehindProxy: the client is the last X-Forwarded-For address with
// BehindProxy, and the connection's address without it.
func TestBehindProxy(t *testing.T) {
	forwarded := func(addrs string) []string { return []string{"X-Forwarded-For", addrs} }
	limits := web.CheckoutLimits{PerMinute: 1}

	s := newTestServerWith(t, dbtest.NewDatabase(t, "sqlite"), testConfig, web.Options{Limits: limits, BehindProxy: true})
	proxy := s.clientAt(t, "127.0.0.2")
	mustBuy(t, "a client behind the proxy", proxy.post("/checkout/a1", "", forwarded("203.0.113.1")...))
	mustBuy(t, "another client behind the proxy", proxy.post("/checkout/b1", "", forwarded("203.0.113.2")...))
	mustBuy(t, "a third client (IPv6)", proxy.post("/checkout/c1", "", forwarded("2001:db8:1:2::1")...))
	mustRefuse(t, "the first again", proxy.post("/checkout/a2", "", forwarded("203.0.113.1")...), 60)
	mustRefuse(t, "the first, naming another before the proxy's entry", proxy.post("/checkout/a3", "", forwarded("198.51.100.7, 203.0.113.1")...), 60)
	mustRefuse(t, "the third from another address of its /64", proxy.post("/checkout/c2", "", forwarded("2001:db8:1:2::99")...), 60)

	direct := newTestServerWith(t, dbtest.NewDatabase(t, "sqlite"), testConfig, web.Options{Limits: limits})
	c := direct.clientAt(t, "127.0.0.2")
	mustBuy(t, "a client", c.post("/checkout/a1", "", forwarded("203.0.113.1")...))
	mustRefuse(t, "the same client, claiming another address", c.post("/checkout/a2", "", forwarded("203.0.113.2")...), 60)
}
