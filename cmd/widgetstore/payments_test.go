package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/widgetstore/widgetstore/internal/payment/stripe/stripemock"
)

// TestStripeConfigRefusals: a Stripe configuration that cannot work stops
// the start with a message that says what is wrong, and shows no secret.
func TestStripeConfigRefusals(t *testing.T) {
	t.Parallel()
	const key, secret = "sk_test_0123456789abcdef", "whsec_0123456789abcdef"
	tests := []struct {
		env  map[string]string
		args []string
		want string // in the error; "" for none
	}{
		{env: map[string]string{}},
		{env: map[string]string{"STRIPE_SECRET_KEY": key, "STRIPE_WEBHOOK_SECRET": secret, "WIDGETSTORE_PUBLIC_URL": "https://shop.example"}},
		{env: map[string]string{"STRIPE_WEBHOOK_SECRET": secret, "WIDGETSTORE_PUBLIC_URL": "https://shop.example"}, args: []string{"-stripe-secret-key", key}},
		{env: map[string]string{"STRIPE_SECRET_KEY": "pk_test_0123456789abcdef", "STRIPE_WEBHOOK_SECRET": secret, "WIDGETSTORE_PUBLIC_URL": "https://shop.example"}, want: "publishable key"},
		{env: map[string]string{"STRIPE_SECRET_KEY": secret, "STRIPE_WEBHOOK_SECRET": secret, "WIDGETSTORE_PUBLIC_URL": "https://shop.example"}, want: "webhook signing secret"},
		{env: map[string]string{"STRIPE_SECRET_KEY": key, "STRIPE_WEBHOOK_SECRET": key, "WIDGETSTORE_PUBLIC_URL": "https://shop.example"}, want: "STRIPE_WEBHOOK_SECRET"},
		{env: map[string]string{"STRIPE_SECRET_KEY": key, "WIDGETSTORE_PUBLIC_URL": "https://shop.example"}, want: "without STRIPE_WEBHOOK_SECRET"},
		{env: map[string]string{"STRIPE_SECRET_KEY": key, "STRIPE_WEBHOOK_SECRET": secret}, want: "-public-url"},
		{env: map[string]string{"STRIPE_WEBHOOK_SECRET": secret}, want: "without STRIPE_SECRET_KEY"},
	}
	for _, tt := range tests {
		_, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v %q: %v, want it accepted", tt.env, tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: %v, want an error saying %q", tt.env, err, tt.want)
		case err != nil && (strings.Contains(err.Error(), key) || strings.Contains(err.Error(), secret)):
			t.Errorf("%v: the error shows a secret: %v", tt.env, err)
		}
	}
}

// TestRunPaysThroughStripe: with STRIPE_SECRET_KEY the shop's carts are
// paid on Stripe's page (here stripe-mock's), and with the API out of
// reach a cart answers 503 with Retry-After, having charged nothing.
func TestRunPaysThroughStripe(t *testing.T) {
	t.Parallel()
	mock := stripemock.Start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	for api, want := range map[string]int{mock.URL: 200, down: 503} {
		r := startRun(t, map[string]string{"STRIPE_SECRET_KEY": stripemock.TestKey, "STRIPE_WEBHOOK_SECRET": "whsec_test0123456789",
			"STRIPE_API_URL": api, "WIDGETSTORE_PUBLIC_URL": "http://shop.example"})
		resp, err := http.Post("http://"+r.addr+"/api/checkouts/stripe-run", "application/json", strings.NewReader(`{"lines": [{"product_id": 1, "quantity": 1}]}`))
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			PayURL string `json:"pay_url"`
			Error  string
		}
		json.NewDecoder(resp.Body).Decode(&body) //nolint:errcheck // checked below
		resp.Body.Close()
		switch {
		case resp.StatusCode != want:
			t.Errorf("API %s: %d %+v, want %d", api, resp.StatusCode, body, want)
		case want == 200 && !strings.HasPrefix(body.PayURL, "https://checkout.stripe.com/"):
			t.Errorf("pay_url %q, want Stripe's", body.PayURL)
		case want == 503 && (resp.Header.Get("Retry-After") == "" || !strings.Contains(body.Error, "nothing was charged")):
			t.Errorf("API down: Retry-After %q, %+v; want Retry-After and nothing charged", resp.Header.Get("Retry-After"), body)
		}
		if err := r.stop(); err != nil {
			t.Error(err)
		}
	}
	if n := len(mock.Requests("/v1/checkout/sessions")); n != 1 {
		t.Errorf("%d requests to create a session, want 1", n)
	}
}
