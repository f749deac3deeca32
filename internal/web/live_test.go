package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/web"
)

type progressView struct {
	Status      string `json:"status"`
	Attempts    int    `json:"attempts"`
	Checkpoints []struct {
		Step int    `json:"step"`
		Name string `json:"name"`
	} `json:"checkpoints"`
	Order *orderView `json:"order"`
}

func (p progressView) has(name string) bool {
	for _, c := range p.Checkpoints {
		if c.Name == name {
			return true
		}
	}
	return false
}

// TestCheckoutProgress: a customer reads their checkout's checkpoints by
// its key, once and as a stream of server-sent events that follows the
// checkout to its end; a key of no checkout is not found.
func TestCheckoutProgress(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServer(t, url, testConfig)
		paymentID := s.do(t, "POST", "/checkout/progress-key", "").body

		r := s.do(t, "GET", "/api/checkouts/progress-key/progress", "")
		var p progressView
		if err := json.Unmarshal([]byte(r.body), &p); r.status != 200 || err != nil {
			t.Fatalf("GET progress: %d %s", r.status, r.body)
		}
		if p.Status != "PENDING" || !p.has("checkout.placeOrder") || p.Order == nil || p.Order.PaymentID != paymentID {
			t.Errorf("progress of a pending checkout: %+v", p)
		}
		if strings.Contains(r.body, `"output"`) || strings.Contains(r.body, "127.0.0.1") {
			t.Errorf("the customer's view carries step outputs or the client's address: %s", r.body)
		}
		for path, status := range map[string]int{
			"/api/checkouts/no-such-key/progress":                      404,
			"/api/checkouts/no-such-key/events":                        404,
			"/api/checkouts/" + strings.Repeat("k", 300) + "/progress": 400,
		} {
			if r := s.do(t, "GET", path, ""); r.status != status {
				t.Errorf("GET %s: %d %s, want %d", path, r.status, r.body, status)
			}
		}

		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/checkouts/progress-key/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("GET events: %s %s", resp.Status, resp.Header.Get("Content-Type"))
		}
		events := bufio.NewScanner(resp.Body)
		next := func() progressView {
			t.Helper()
			for events.Scan() {
				if data, ok := strings.CutPrefix(events.Text(), "data: "); ok {
					var p progressView
					if err := json.Unmarshal([]byte(data), &p); err != nil {
						t.Fatalf("an event's data: %v in %s", err, data)
					}
					return p
				}
			}
			t.Fatalf("the event stream ended: %v", events.Err())
			return progressView{}
		}
		if first := next(); !first.has("checkout.placeOrder") || first.Status != "PENDING" {
			t.Errorf("the first event: %+v", first)
		}
		if r := s.do(t, "POST", "/payment_webhook/"+paymentID+"/paid", ""); r.status != 200 {
			t.Fatalf("paying: %d %s", r.status, r.body)
		}
		// Each event differs from the one before; the last has the
		// dispatch: the checkout ends at the payment, as its order's row
		// says, and the sweep dispatches its order.
		for p = next(); p.Status != "SUCCESS" || p.Order == nil || p.Order.Status != "DISPATCHED"; p = next() {
		}
		if p.has("checkout.settlement") || p.has("checkout.markDispatched") || p.Order.PaidAt == nil {
			t.Errorf("the last event: %+v, want the order paid, and no step for its payment or its dispatch", p)
		}

	})
}

// TestDrainEndsLiveStreams: at the start of a shutdown the server's event
// streams end, so that they do not hold the shutdown up for their 45 s.
func TestDrainEndsLiveStreams(t *testing.T) {
	t.Parallel()
	var srv *web.Server
	s := newTestServerWrapped(t, dbtest.NewDatabase(t, "sqlite"), testConfig, web.Options{}, func(h http.Handler) http.Handler {
		srv = h.(*web.Server)
		return h
	})
	if r := s.do(t, "POST", "/checkout/drained", ""); r.status != 200 {
		t.Fatalf("checkout: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/checkouts/drained/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := bufio.NewScanner(resp.Body)
	for events.Scan() && !strings.HasPrefix(events.Text(), "data: ") {
	}
	srv.Drain()
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for events.Scan() {
		}
	}()
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the event stream went on 30 s after the drain began")
	}
}
