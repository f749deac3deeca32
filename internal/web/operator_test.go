package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/web"
)

// TestOperatorResumesACancelledCheckout: a checkout cancelled in DBOS by
// mistake shows in the operator's list, and resumed, it takes its payment
// and dispatches as if nothing had happened.
func TestOperatorResumesACancelledCheckout(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServer(t, url, testConfig)
		paymentID := s.do(t, "POST", "/checkout/cancelled-by-mistake", "").body
		if err := s.co.Cancel(context.Background(), "cancelled-by-mistake"); err != nil {
			t.Fatal(err)
		}

		var listed []struct {
			ID     string `json:"workflow_id"`
			Name   string `json:"name"`
			Status string `json:"status"`
		}
		r := s.do(t, "GET", "/api/workflows?status=CANCELLED,ERROR", "")
		if err := json.Unmarshal([]byte(r.body), &listed); err != nil || r.status != 200 {
			t.Fatalf("GET /api/workflows: %d %s", r.status, r.body)
		}
		if len(listed) != 1 || listed[0].ID != "cancelled-by-mistake" || listed[0].Name != "checkout.Checkout" || listed[0].Status != "CANCELLED" {
			t.Fatalf("cancelled workflows: %+v, want the one checkout", listed)
		}

		if r := s.do(t, "POST", "/api/workflows/cancelled-by-mistake/resume", ""); r.status != http.StatusAccepted {
			t.Fatalf("resume: %d %s", r.status, r.body)
		}
		// An operator's decision, logged as such: not a warning.
		if logged := s.logs.Lines("resumed"); len(logged) != 1 || !strings.Contains(logged[0], "level=INFO") ||
			!strings.Contains(logged[0], "workflow=cancelled-by-mistake") {
			t.Errorf("the resume's log: %q, want one line at INFO naming the workflow", logged)
		}
		orderID := s.do(t, "POST", "/payment_webhook/"+paymentID+"/paid", "")
		if orderID.status != 200 {
			t.Fatalf("payment after the resume: %d %s", orderID.status, orderID.body)
		}
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(s.do(t, "GET", "/order/"+orderID.body, "").body, `"DISPATCHED"`) {
			if time.Now().After(deadline) {
				t.Fatalf("the resumed checkout's order was not dispatched: %s", s.do(t, "GET", "/order/"+orderID.body, "").body)
			}
			time.Sleep(20 * time.Millisecond)
		}

		for _, tt := range []struct {
			method, path string
			status       int
		}{
			{"POST", "/api/workflows/cancelled-by-mistake/resume", 409}, // it finished
			{"POST", "/api/workflows/no-such-workflow/resume", 404},
			{"GET", "/api/workflows?status=BROKEN", 400},
		} {
			if r := s.do(t, tt.method, tt.path, ""); r.status != tt.status || !strings.Contains(r.body, `"error"`) {
				t.Errorf("%s %s: %d %s, want %d with a JSON error", tt.method, tt.path, r.status, r.body, tt.status)
			}
		}
		if m := s.books(t); m.KeptCents != m.TakenCents || m.TakenCents == 0 {
			t.Errorf("money %+v, want the payment taken and kept", m)
		}
	})
}

// TestOperatorToken: with a token, the operator's requests need it; the
// customer's do not.
func TestOperatorToken(t *testing.T) {
	t.Parallel()
	s := newTestServerWith(t, dbtest.NewDatabase(t, "sqlite"), testConfig, web.Options{OperatorToken: []byte("s3cret")})
	before := s.snapshot(t)
	for _, path := range []string{"/restock", "/crash_application", "/api/workflows/x/resume"} {
		for _, auth := range []string{"", "Bearer wrong", "s3cret"} {
			if r := s.do(t, "POST", path, "", "Authorization", auth); r.status != http.StatusUnauthorized {
				t.Errorf("POST %s with %q: %d %s, want 401", path, auth, r.status, r.body)
			}
		}
	}
	for _, path := range []string{"/api/workflows", "/api/audit"} {
		if r := s.do(t, "GET", path, ""); r.status != http.StatusUnauthorized {
			t.Errorf("GET %s: %d, want 401", path, r.status)
		}
	}
	select {
	case <-s.crashed:
		t.Error("the crash button worked without the token")
	default:
	}
	if after := s.snapshot(t); after != before {
		t.Errorf("refused requests changed the shop")
	}

	if r := s.do(t, "POST", "/restock", "", "Authorization", "Bearer s3cret"); r.status != 200 {
		t.Errorf("restock with the token: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/api/workflows", "", "Authorization", "Bearer s3cret"); r.status != 200 {
		t.Errorf("workflows with the token: %d %s", r.status, r.body)
	}
	if r := s.do(t, "POST", "/checkout/customer", ""); r.status != 200 {
		t.Errorf("a customer's checkout: %d %s", r.status, r.body)
	}
}
