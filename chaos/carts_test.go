package chaos_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/receipt/smtptest"
)

// cartOrder is what the cart API answers of an order.
type cartOrder struct {
	ID         int64  `json:"order_id"`
	Status     string `json:"status"`
	Refund     string `json:"refund"`
	TotalCents int64  `json:"total_cents"`
	PayURL     string `json:"pay_url"`
}

// cartPurchase is one customer's cart: paid in time, or late (after its
// checkout gave up, so that it is refunded).
type cartPurchase struct {
	key   string
	late  bool
	order cartOrder
	err   error
}

// postJSON posts body until the shop answers something other than a
// transport error or a 503 (it is down, or coming back), and returns that.
// It counts the requests a kill cut in s.cut.
func (s *shop) postJSON(path, body string, until time.Time) (int, string, error) {
	for {
		s.posting.Add(1)
		resp, err := s.http.Post(s.url()+path, "application/json", strings.NewReader(body))
		s.posting.Add(-1)
		if err != nil {
			s.cut.Add(1)
		}
		if err == nil {
			b, readErr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 503 && readErr == nil {
				return resp.StatusCode, string(b), nil
			}
		}
		if time.Now().After(until) {
			return 0, "", fmt.Errorf("POST %s: the shop did not answer in time (%v)", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cartOf reads the order of a checkout, waiting out a shop that is down.
func (s *shop) cartOf(key string, until time.Time) (cartOrder, error) {
	for {
		var o cartOrder
		err := s.getJSON("/api/checkouts/"+key, &o)
		if err == nil {
			return o, nil
		}
		if time.Now().After(until) {
			return o, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// buyCart checks a cart out and pays it on the demo provider's page: at
// once, or once its checkout has given up.
func (s *shop) buyCart(p *cartPurchase, until time.Time) {
	body := `{"lines": [{"product_id": 1, "quantity": 1}, {"product_id": 4, "quantity": 2}], "email": "` + p.key + `@example.com"}`
	status, answer, err := s.postJSON("/api/checkouts/"+p.key, body, until)
	if err == nil && status != 200 {
		err = fmt.Errorf("checkout %s: %d %s", p.key, status, answer)
	}
	if err == nil {
		err = json.Unmarshal([]byte(answer), &p.order)
	}
	if err != nil {
		p.err = err
		return
	}
	for p.late {
		o, err := s.cartOf(p.key, until)
		if err != nil {
			p.err = err
			return
		}
		if o.Status == "CANCELLED" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Late: as if the payment got in as the shop expired the intent (the
	// demo's switch), which is when a real provider may still take one.
	status, answer, err = s.postJSON(p.order.PayURL, fmt.Sprintf(`{"outcome": "succeed", "despite_expiry": %t}`, p.late), until)
	if err == nil && status != 200 {
		err = fmt.Errorf("paying %s: %d %s", p.order.PayURL, status, answer)
	}
	p.err = err
}

// TestKillCartsWithReceipts runs customers buying carts through the demo
// provider, some paying after their checkout gave up, while the shop is
// killed at random moments, and once right after a late payment was
// taken. Every cart paid in time is dispatched, every late payment is
// refunded once, the money taken is kept or refunded to the cent, and the
// SMTP server receives one receipt per order and stage.
func TestKillCartsWithReceipts(t *testing.T) {
	t.Parallel()
	seed := chaosSeed(t)
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		random := rand.New(rand.NewPCG(seed, 1))
		mail := smtptest.Start(t, smtptest.Options{})
		s := newShop(t, url, "-payment-timeout", "3s", "-dispatch-steps", "3", "-dispatch-interval", "50ms",
			"-checkouts-per-minute", "0", "-pending-units", "0")
		s.env = []string{"SMTP_URL=" + mail.URL("shop@example.com")}
		s.run()

		const customers, most = 3, 6
		var (
			mu        sync.Mutex
			purchases []*cartPurchase
			wg        sync.WaitGroup
		)
		until := time.Now().Add(3 * time.Minute)
		killsOver := make(chan struct{})
		for c := range customers {
			wg.Go(func() {
				for i := range most {
					select {
					case <-killsOver:
						return
					default:
					}
					p := &cartPurchase{key: fmt.Sprintf("cart-%d-%d", c, i), late: (c+i)%3 == 2}
					s.buyCart(p, until)
					mu.Lock()
					purchases = append(purchases, p)
					mu.Unlock()
				}
			})
		}
		for range 4 {
			time.Sleep(time.Duration(200+random.IntN(800)) * time.Millisecond)
			// The kill lands during a request, if one starts within 5 s:
			// longer than a late customer waits for its checkout to give up.
			for waited := time.Now(); s.posting.Load() == 0 && time.Since(waited) < 5*time.Second; {
				time.Sleep(time.Millisecond)
			}
			s.kill()
			s.run()
			s.checkBooks()
		}
		close(killsOver)
		wg.Wait()
		if s.cut.Load() == 0 {
			t.Errorf("no kill cut a request: the test proved nothing")
		}

		// And a kill right after the provider took a late payment: between
		// its success and the refund.
		last := &cartPurchase{key: "cart-late-kill", late: true}
		s.buyCart(last, until)
		s.kill()
		s.run()
		purchases = append(purchases, last)

		var kept, refunded int64
		want := map[string]bool{} // "order/stage" of every receipt due
		for _, p := range purchases {
			if p.err != nil {
				t.Errorf("purchase %s: %v", p.key, p.err)
				continue
			}
			o := s.awaitCart(p.key, until, func(o cartOrder) bool {
				return !p.late && o.Status == "DISPATCHED" || p.late && o.Refund == "refunded"
			})
			if p.late {
				refunded += o.TotalCents
				want[fmt.Sprintf("%d/%s", o.ID, receipt.StageRefunded)] = true
				if v := s.intent(strings.TrimPrefix(p.order.PayURL, "/demopay/pay/")); len(v.Refunds) != 1 || v.RefundedCents != o.TotalCents {
					t.Errorf("purchase %s: the provider refunded %d cents in %d refunds, want %d in one", p.key, v.RefundedCents, len(v.Refunds), o.TotalCents)
				}
			} else {
				kept += o.TotalCents
				want[fmt.Sprintf("%d/%s", o.ID, receipt.StagePaid)] = true
				want[fmt.Sprintf("%d/%s", o.ID, receipt.StageDispatched)] = true
			}
		}
		if m := s.checkBooks(); m.Kept != kept || m.Refunded != refunded || m.Taken != kept+refunded {
			t.Errorf("money %+v, want %d kept and %d refunded", m, kept, refunded)
		}

		// Receipts: one distinct message per order and stage. A kill between
		// the server's acceptance and the shop's mark sends the same message
		// again (the same Message-ID), which is counted apart.
		if _, err := mail.WaitForDistinct(len(want), 150*time.Second); err != nil {
			t.Error(err)
		}
		copies := 0
		got := map[string]bool{}
		for id, messages := range mail.ByMessageID() {
			order, stage, ok := receipt.ParseMessageID(id)
			key := fmt.Sprintf("%d/%s", order, stage)
			if !ok || !want[key] {
				t.Errorf("an unexpected receipt %s", id)
			}
			if got[key] {
				t.Errorf("two different receipts for %s", key)
			}
			got[key], copies = true, copies+len(messages)-1
		}
		if len(got) != len(want) {
			t.Errorf("%d receipts, want %d", len(got), len(want))
		}
		t.Logf("%d purchases, %d receipts, %d copies of one sent again after a kill", len(purchases), len(got), copies)
	})
}

// awaitCart polls a checkout's order until done says it is.
func (s *shop) awaitCart(key string, until time.Time, done func(cartOrder) bool) cartOrder {
	s.t.Helper()
	for {
		o, err := s.cartOf(key, until)
		if err == nil && done(o) {
			return o
		}
		if time.Now().After(until) {
			s.t.Fatalf("checkout %s: %+v, %v", key, o, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// intentView is what the demo provider shows of an intent.
type intentView struct {
	RefundedCents int64 `json:"refunded_cents"`
	Refunds       []any `json:"refunds"`
}

func (s *shop) intent(id string) intentView {
	s.t.Helper()
	var v intentView
	if err := s.getJSON("/demopay/intents/"+id, &v); err != nil {
		s.t.Fatal(err)
	}
	return v
}
