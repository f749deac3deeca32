package web_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/demopay"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/store"
	"github.com/widgetstore/widgetstore/internal/web"
)

// customerOrder is GET /api/checkouts/{key}'s answer.
type customerOrder struct {
	Key    string `json:"checkout_key"`
	ID     int64  `json:"order_id"`
	Status string `json:"status"`
	Reason string `json:"cancel_reason"`
	Refund string `json:"refund"`
	Lines  []struct {
		ProductID int64 `json:"product_id"`
		Quantity  int   `json:"quantity"`
		UnitCents int64 `json:"unit_price_cents"`
	} `json:"lines"`
	TotalCents int64     `json:"total_cents"`
	PaymentID  string    `json:"payment_id"`
	PayURL     string    `json:"pay_url"`
	Deadline   time.Time `json:"payment_deadline"`
}

// cart checks out a cart through the API, and returns its order.
func (s *testServer) cart(t testing.TB, key, body string) customerOrder {
	t.Helper()
	r := s.do(t, "POST", "/api/checkouts/"+key, body)
	if r.status != 200 {
		t.Fatalf("POST /api/checkouts/%s: %d %s", key, r.status, r.body)
	}
	var o customerOrder
	if err := json.Unmarshal([]byte(r.body), &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// awaitCheckout polls the checkout's order until ok says it is done.
func (s *testServer) awaitCheckout(t testing.TB, key string, ok func(customerOrder) bool) customerOrder {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var o customerOrder
		r := s.do(t, "GET", "/api/checkouts/"+key, "")
		if r.status == 200 && json.Unmarshal([]byte(r.body), &o) == nil && ok(o) {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkout %s: %d %s", key, r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// intent reads an intent at the demo provider.
func (s *testServer) intent(t testing.TB, id string) demopay.IntentView {
	t.Helper()
	var v demopay.IntentView
	r := s.do(t, "GET", "/demopay/intents/"+id, "")
	if r.status != 200 || json.Unmarshal([]byte(r.body), &v) != nil {
		t.Fatalf("GET /demopay/intents/%s: %d %s", id, r.status, r.body)
	}
	return v
}

// books reads the money of the audit, failing on any breach.
func (s *testServer) books(t testing.TB) store.Money {
	t.Helper()
	var audit struct {
		Breaches []string
		Money    store.Money
	}
	r := s.do(t, "GET", "/api/audit", "")
	if r.status != 200 || json.Unmarshal([]byte(r.body), &audit) != nil {
		t.Fatalf("GET /api/audit: %d %s", r.status, r.body)
	}
	for _, b := range audit.Breaches {
		t.Errorf("audit: %s", b)
	}
	return audit.Money
}

func intentOf(t testing.TB, o customerOrder) string {
	t.Helper()
	id, ok := strings.CutPrefix(o.PayURL, "/demopay/pay/")
	if !ok {
		t.Fatalf("pay_url %q, want /demopay/pay/<intent>", o.PayURL)
	}
	return id
}

// TestCartPaidThroughTheProvider: a cart of three lines is checked out,
// paid on the demo provider's page, whose signed event settles it, and
// dispatched; the shop keeps exactly its total.
func TestCartPaidThroughTheProvider(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServer(t, url, testConfig)
		body := `{"lines": [{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 2}, {"product_id": 4, "quantity": 3}], "email": "ada@example.com"}`
		o := s.cart(t, "cart-paid", body)
		if want := int64(9999 + 2*2499 + 3*1299); o.TotalCents != want || o.Status != "PENDING" || len(o.Lines) != 3 {
			t.Fatalf("order %+v, want PENDING, 3 lines, %d cents", o, want)
		}
		if again := s.cart(t, "cart-paid", body); again.ID != o.ID || again.PayURL != o.PayURL {
			t.Errorf("the same key again: %+v, want order %d paid at %s", again, o.ID, o.PayURL)
		}
		if r := s.do(t, "POST", "/api/checkouts/cart-paid", `{"lines": [{"product_id": 1, "quantity": 1}]}`); r.status != 409 {
			t.Errorf("the key for another cart: %d %s, want 409", r.status, r.body)
		}
		if page := s.do(t, "GET", o.PayURL, ""); page.status != 200 || !strings.Contains(page.body, fmt.Sprintf("%.2f", float64(o.TotalCents)/100)) {
			t.Errorf("the pay page: %d, want 200 showing the amount:\n%s", page.status, page.body)
		}
		if r := s.do(t, "POST", o.PayURL, `{"outcome": "succeed"}`, "Content-Type", "application/json"); r.status != 200 {
			t.Fatalf("paying: %d %s", r.status, r.body)
		}
		done := s.awaitCheckout(t, "cart-paid", func(o customerOrder) bool { return o.Status == "DISPATCHED" })
		if done.Refund != "" || done.PayURL != "" {
			t.Errorf("dispatched order %+v, want no refund and nothing to pay", done)
		}
		if m := s.books(t); m.KeptCents != o.TotalCents || m.TakenCents != o.TotalCents {
			t.Errorf("money %+v, want %d taken and kept", m, o.TotalCents)
		}
	})
}

// TestCartOutOfStockNamesTheLines: a cart one line of which is short is
// refused with 409, naming that line, and reserves nothing.
func TestCartOutOfStockNamesTheLines(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServer(t, url, testConfig)
		r := s.do(t, "POST", "/api/checkouts/cart-short", `{"lines": [{"product_id": 1, "quantity": 1}, {"product_id": 3, "quantity": 10}, {"product_id": 3, "quantity": 1}]}`)
		var answer struct {
			Error       string
			Unavailable []struct {
				ProductID int64 `json:"product_id"`
				Product   string
				Wanted    int
				Available int
			}
		}
		if err := json.Unmarshal([]byte(r.body), &answer); err != nil || r.status != 400 {
			t.Errorf("11 of one product: %d %s, want 400 (at most 10 a line)", r.status, r.body)
		}
		r = s.do(t, "POST", "/api/checkouts/cart-short", `{"lines": [{"product_id": 1, "quantity": 1}, {"product_id": 3, "quantity": 6}, {"product_id": 3, "quantity": 4}]}`)
		if r.status != 200 {
			t.Fatalf("10 of product 3: %d %s", r.status, r.body)
		}
		before := s.do(t, "GET", "/api/products", "").body
		r = s.do(t, "POST", "/api/checkouts/cart-short-2", `{"lines": [{"product_id": 2, "quantity": 1}, {"product_id": 3, "quantity": 1}]}`)
		if err := json.Unmarshal([]byte(r.body), &answer); err != nil || r.status != 409 {
			t.Fatalf("a cart with product 3 sold out: %d %s, want 409", r.status, r.body)
		}
		if len(answer.Unavailable) != 1 || answer.Unavailable[0].ProductID != 3 || answer.Unavailable[0].Available != 0 ||
			!strings.Contains(answer.Error, "Widget Deluxe") {
			t.Errorf("answer %+v, want product 3 (Widget Deluxe) alone unavailable", answer)
		}
		if after := s.do(t, "GET", "/api/products", "").body; after != before {
			t.Errorf("stock changed:\n%s\n%s", before, after)
		}
		for _, bad := range []string{`{"lines": []}`, `{"lines": [{"product_id": 99, "quantity": 1}]}`, `{"lines": [{"product_id": 1, "quantity": 1}], "email": "Eve <eve@example.com>"}`, `{"items": []}`} {
			if r := s.do(t, "POST", "/api/checkouts/cart-bad", bad); r.status/100 != 4 || !strings.Contains(r.body, `"error"`) {
				t.Errorf("%s: %d %s, want a 4xx JSON error", bad, r.status, r.body)
			}
		}
		s.books(t)
	})
}

// The late payment and the refused refund: flow_test.go, for both providers.

// TestProviderEventsVerified: the shop takes an event signed with any of
// its secrets (one is rotated in beside the other), applies it once
// however often it comes, and refuses a forged, expired or unsigned one
// without a change.
func TestProviderEventsVerified(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServerWith(t, url, testConfig, web.Options{WebhookSecrets: [][]byte{[]byte("whsec_old")}})
		o := s.cart(t, "cart-events", `{"lines": [{"product_id": 1, "quantity": 1}]}`)
		event := func(id string) []byte {
			return []byte(fmt.Sprintf(`{"id": %q, "object": "event", "type": "payment_intent.succeeded", "created": %d,
				"data": {"object": {"id": %q, "object": "payment_intent", "amount": %d, "currency": "usd", "metadata": {"checkout_id": "cart-events"}}}}`,
				id, time.Now().Unix(), intentOf(t, o), o.TotalCents))
		}
		post := func(payload []byte, signature string) response {
			return s.do(t, "POST", "/api/payment_events", string(payload), "Content-Type", "application/json", payment.SignatureHeader, signature)
		}
		snapshot := s.snapshot(t)
		for name, r := range map[string]response{
			"forged":   post(event("evt_forged"), payment.Sign("whsec_someone_else", event("evt_forged"), time.Now())),
			"expired":  post(event("evt_old"), payment.Sign("whsec_old", event("evt_old"), time.Now().Add(-10*time.Minute))),
			"unsigned": post(event("evt_unsigned"), ""),
			"tampered": post(event("evt_tampered"), payment.Sign("whsec_old", event("evt_other"), time.Now())),
		} {
			if r.status/100 != 4 || !strings.Contains(r.body, `"error"`) {
				t.Errorf("%s event: %d %s, want a 4xx JSON error", name, r.status, r.body)
			}
		}
		if after := s.snapshot(t); after != snapshot {
			t.Errorf("refused events changed the shop:\n%s\n%s", snapshot, after)
		}
		// Signed with the old secret, still taken; then replayed.
		first := post(event("evt_1"), payment.Sign("whsec_old", event("evt_1"), time.Now()))
		replay := post(event("evt_1"), payment.Sign("whsec_test", event("evt_1"), time.Now()))
		if first.status != 200 || replay.status != 200 || !strings.Contains(replay.body, `"replayed":true`) {
			t.Fatalf("event, then its replay: %d %s; %d %s", first.status, first.body, replay.status, replay.body)
		}
		s.awaitCheckout(t, "cart-events", func(o customerOrder) bool { return o.Status == "DISPATCHED" })
		if m := s.books(t); m.TakenCents != o.TotalCents || m.KeptCents != o.TotalCents {
			t.Errorf("money %+v, want %d taken once and kept", m, o.TotalCents)
		}
	})
}

// TestReceiptsSentOncePerStage: a customer who gave an email address, to a
// cart's checkout or the seed's, gets one receipt when the order is paid
// and one when it is dispatched, and one when a late payment is refunded,
// each on a real SMTP server.
func TestReceiptsSentOncePerStage(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		cfg := testConfig
		cfg.PaymentTimeout = 2 * time.Second
		s, mail := newTestServerMailing(t, url, cfg)
		paid := s.cart(t, "cart-mail", `{"lines": [{"product_id": 1, "quantity": 1}, {"product_id": 4, "quantity": 2}], "email": "ada@example.com"}`)
		late := s.cart(t, "cart-mail-late", `{"lines": [{"product_id": 2, "quantity": 1}], "email": "bob@example.com"}`)
		// The seed's checkout takes an address too, and its webhook pays.
		seed := s.do(t, "POST", "/checkout/seed-mail", `{"product_id": 3, "quantity": 1, "email": "cy@example.com"}`)
		if seed.status != 200 {
			t.Fatalf("seed checkout: %d %s", seed.status, seed.body)
		}
		if r := s.do(t, "POST", "/payment_webhook/"+seed.body+"/paid", ""); r.status != 200 {
			t.Fatalf("seed payment: %d %s", r.status, r.body)
		}
		seedOrder := s.awaitCheckout(t, "seed-mail", func(o customerOrder) bool { return o.Status == "DISPATCHED" })
		if r := s.do(t, "POST", paid.PayURL, `{"outcome": "succeed"}`, "Content-Type", "application/json"); r.status != 200 {
			t.Fatalf("paying: %d %s", r.status, r.body)
		}
		s.awaitCheckout(t, "cart-mail", func(o customerOrder) bool { return o.Status == "DISPATCHED" })
		s.awaitCheckout(t, "cart-mail-late", func(o customerOrder) bool { return o.Status == "CANCELLED" })
		if r := s.do(t, "POST", late.PayURL, `{"outcome": "succeed", "despite_expiry": true}`, "Content-Type", "application/json"); r.status != 200 {
			t.Fatalf("paying late: %d %s", r.status, r.body)
		}
		s.awaitCheckout(t, "cart-mail-late", func(o customerOrder) bool { return o.Refund == "refunded" })
		if _, err := mail.WaitFor(5, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // a duplicate would come now
		messages := mail.Messages()
		want := map[string]string{ // Message-ID's order and stage -> recipient
			fmt.Sprintf("%d/paid", paid.ID): "ada@example.com", fmt.Sprintf("%d/dispatched", paid.ID): "ada@example.com",
			fmt.Sprintf("%d/refunded", late.ID):  "bob@example.com",
			fmt.Sprintf("%d/paid", seedOrder.ID): "cy@example.com", fmt.Sprintf("%d/dispatched", seedOrder.ID): "cy@example.com",
		}
		got := map[string]string{}
		for _, m := range messages {
			order, stage, ok := receipt.ParseMessageID(m.MessageID)
			if !ok || len(m.To) != 1 {
				t.Errorf("a message %q to %v", m.MessageID, m.To)
				continue
			}
			key := fmt.Sprintf("%d/%s", order, stage)
			if _, dup := got[key]; dup {
				t.Errorf("a second receipt for %s", key)
			}
			got[key] = m.To[0]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("receipts %v, want %v", got, want)
		}
	})
}
