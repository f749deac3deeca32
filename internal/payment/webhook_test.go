package payment_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/shop"
)

// succeeded is an event as Stripe sends it, with fields the shop ignores.
const succeeded = `{"id":"evt_1","object":"event","type":"payment_intent.succeeded","created":1700000000,` +
	`"api_version":"2019-02-19","livemode":false,"pending_webhooks":1,` +
	`"data":{"object":{"id":"pi_1","object":"payment_intent","amount":4998,"currency":"usd",` +
	`"status":"succeeded","metadata":{"checkout_id":"co-1"}}}}`

func newVerifier(t *testing.T, secrets ...string) *payment.Verifier {
	t.Helper()
	v, err := payment.NewVerifier(secrets, 0)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyReadsTheEvent(t *testing.T) {
	v := newVerifier(t, "whsec_a")
	got, err := v.Verify([]byte(succeeded), payment.Sign("whsec_a", []byte(succeeded), time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	want := payment.Event{ID: "evt_1", Type: payment.EventSucceeded, Created: time.Unix(1700000000, 0),
		IntentID: "pi_1", AmountCents: 4998, Currency: "usd", CheckoutID: "co-1"}
	if got != want {
		t.Errorf("Verify = %+v, want %+v", got, want)
	}

	refunded := `{"id":"evt_2","object":"event","type":"charge.refunded","created":1700000100,"api_version":"2019-02-19",` +
		`"data":{"object":{"id":"ch_1","object":"charge","amount":4998,"amount_refunded":1000,"currency":"usd",` +
		`"payment_intent":"pi_1","metadata":{"checkout_id":"co-1"}}}}`
	got, err = v.Verify([]byte(refunded), payment.Sign("whsec_a", []byte(refunded), time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	want = payment.Event{ID: "evt_2", Type: payment.EventRefunded, Created: time.Unix(1700000100, 0),
		IntentID: "pi_1", AmountCents: 1000, Currency: "usd", CheckoutID: "co-1"}
	if got != want {
		t.Errorf("Verify = %+v, want %+v", got, want)
	}
}

// A secret is rotated by accepting the new one beside the old: events
// signed with either pass, as do Stripe's headers that carry both
// signatures during its rollover; any other secret is refused.
func TestVerifyRotatedSecrets(t *testing.T) {
	v := newVerifier(t, "whsec_new", "whsec_old")
	payload := []byte(succeeded)
	for _, secret := range []string{"whsec_old", "whsec_new"} {
		if _, err := v.Verify(payload, payment.Sign(secret, payload, time.Now())); err != nil {
			t.Errorf("signed with %s: %v", secret, err)
		}
	}
	now := time.Now()
	both := payment.Sign("whsec_third", payload, now) + "," + strings.SplitN(payment.Sign("whsec_old", payload, now), ",", 2)[1]
	if _, err := v.Verify(payload, both); err != nil {
		t.Errorf("two signatures, one of them good: %v", err)
	}
	_, err := v.Verify(payload, payment.Sign("whsec_third", payload, time.Now()))
	wantRefusal(t, err, payment.ErrBadSignature, shop.ErrDenied)
}

func TestVerifyRefuses(t *testing.T) {
	v := newVerifier(t, "whsec_a")
	payload := []byte(succeeded)
	now := time.Now()
	tests := []struct {
		name    string
		payload string
		header  string
		reason  error
		kind    error
	}{
		{"unsigned", succeeded, "", payment.ErrNotSigned, shop.ErrDenied},
		{"forged", succeeded, payment.Sign("whsec_guess", payload, now), payment.ErrBadSignature, shop.ErrDenied},
		{"signature not hex", succeeded, fmt.Sprintf("t=%d,v1=zz", now.Unix()), payment.ErrBadSignature, shop.ErrDenied},
		{"tampered payload", strings.Replace(succeeded, "4998", "1", 1), payment.Sign("whsec_a", payload, now), payment.ErrBadSignature, shop.ErrDenied},
		{"tampered time", succeeded, strings.Replace(payment.Sign("whsec_a", payload, now), fmt.Sprint(now.Unix()), fmt.Sprint(now.Unix()-1), 1), payment.ErrBadSignature, shop.ErrDenied},
		{"expired", succeeded, payment.Sign("whsec_a", payload, now.Add(-6*time.Minute)), payment.ErrOutOfTolerance, shop.ErrDenied},
		{"future beyond tolerance", succeeded, payment.Sign("whsec_a", payload, now.Add(6*time.Minute)), payment.ErrOutOfTolerance, shop.ErrDenied},
		{"no timestamp", succeeded, "v1=" + strings.SplitN(payment.Sign("whsec_a", payload, now), "v1=", 2)[1], payment.ErrMalformedHeader, shop.ErrDenied},
		{"timestamp not a number", succeeded, "t=soon,v1=00", payment.ErrMalformedHeader, shop.ErrDenied},
		{"not key=value", succeeded, fmt.Sprintf("t=%d,garbage", now.Unix()), payment.ErrMalformedHeader, shop.ErrDenied},
		{"no signature", succeeded, fmt.Sprintf("t=%d", now.Unix()), payment.ErrBadSignature, shop.ErrDenied},
		{"signed, not JSON", "not json", payment.Sign("whsec_a", []byte("not json"), now), payment.ErrMalformedEvent, shop.ErrInvalid},
		{"signed, no data", `{"id":"evt_1","type":"payment_intent.succeeded"}`, "", payment.ErrMalformedEvent, shop.ErrInvalid},
		{"signed, no intent", `{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"object":"payment_intent"}}}`, "", payment.ErrMalformedEvent, shop.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := tt.header
			if header == "" && tt.reason != payment.ErrNotSigned {
				header = payment.Sign("whsec_a", []byte(tt.payload), now)
			}
			_, err := v.Verify([]byte(tt.payload), header)
			wantRefusal(t, err, tt.reason, tt.kind)
		})
	}
}

// Within the tolerance, either way, an event passes: clocks differ a little.
func TestVerifyWithinTolerance(t *testing.T) {
	v, err := payment.NewVerifier([]string{"whsec_a"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(succeeded)
	for _, skew := range []time.Duration{-50 * time.Second, 50 * time.Second} {
		if _, err := v.Verify(payload, payment.Sign("whsec_a", payload, time.Now().Add(skew))); err != nil {
			t.Errorf("signed %s from now: %v", skew, err)
		}
	}
	_, err = v.Verify(payload, payment.Sign("whsec_a", payload, time.Now().Add(-2*time.Minute)))
	wantRefusal(t, err, payment.ErrOutOfTolerance, shop.ErrDenied)
}

// An event type the shop does not act on verifies, with only its identity.
func TestVerifyOtherType(t *testing.T) {
	v := newVerifier(t, "whsec_a")
	other := `{"id":"evt_9","object":"event","type":"customer.created","created":1700000000,"data":{"object":{"id":"cus_1","object":"customer"}}}`
	got, err := v.Verify([]byte(other), payment.Sign("whsec_a", []byte(other), time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if want := (payment.Event{ID: "evt_9", Type: "customer.created", Created: time.Unix(1700000000, 0)}); got != want {
		t.Errorf("Verify = %+v, want %+v", got, want)
	}
}

func TestNewVerifierRefusesNoSecret(t *testing.T) {
	for _, secrets := range [][]string{nil, {"whsec_a", ""}} {
		if _, err := payment.NewVerifier(secrets, 0); err == nil {
			t.Errorf("NewVerifier(%q) took it", secrets)
		}
	}
}

// wantRefusal checks that err says why (reason) and has the shop error
// kind that the web layer answers with, with a message for the client.
func wantRefusal(t *testing.T, err, reason, kind error) {
	t.Helper()
	if !errors.Is(err, reason) || !errors.Is(err, kind) {
		t.Fatalf("error %v: want %v, of kind %v", err, reason, kind)
	}
	var shopErr *shop.Error
	if !errors.As(err, &shopErr) || !strings.Contains(shopErr.Message, reason.Error()) {
		t.Errorf("client's message %q does not say %q", shopErr.Message, reason)
	}
}

// TestVerifyReadsCheckoutSessions: a Checkout Session's events are read
// for the session's PaymentIntent, total and checkout, and say whether
// they settle its payment (Outcome): completed and paid, or paid or
// failed later for a bank debit; completed and unpaid settles nothing yet.
func TestVerifyReadsCheckoutSessions(t *testing.T) {
	v := newVerifier(t, "whsec_a")
	tests := []struct {
		typ, paymentStatus string
		want               shop.PaymentStatus
	}{
		{payment.EventSessionCompleted, "paid", shop.PaymentPaid},
		{payment.EventSessionCompleted, "unpaid", ""},
		{payment.EventSessionAsyncSucceeded, "paid", shop.PaymentPaid},
		{payment.EventSessionAsyncFailed, "unpaid", shop.PaymentFailed},
		{payment.EventSucceeded, "", shop.PaymentPaid},
		{payment.EventFailed, "", shop.PaymentFailed},
		{payment.EventRefunded, "", ""},
		{"checkout.session.expired", "unpaid", ""},
	}
	for _, tt := range tests {
		var object string
		switch tt.typ {
		case payment.EventSucceeded, payment.EventFailed:
			object = `{"id":"pi_9","object":"payment_intent","amount":1299,"currency":"eur","metadata":{"checkout_id":"co-9"}}`
		case payment.EventRefunded:
			object = `{"id":"ch_9","object":"charge","amount_refunded":1299,"currency":"eur","payment_intent":"pi_9","metadata":{"checkout_id":"co-9"}}`
		default:
			object = fmt.Sprintf(`{"id":"cs_9","object":"checkout.session","amount_total":1299,"currency":"eur","payment_intent":"pi_9",`+
				`"payment_status":%q,"status":"complete","metadata":{"checkout_id":"co-9"}}`, tt.paymentStatus)
		}
		payload := fmt.Sprintf(`{"id":"evt_9","object":"event","type":%q,"created":1700000000,"data":{"object":%s}}`, tt.typ, object)
		e, err := v.Verify([]byte(payload), payment.Sign("whsec_a", []byte(payload), time.Now()))
		if err != nil {
			t.Errorf("%s: %v", tt.typ, err)
			continue
		}
		if e.Outcome() != tt.want {
			t.Errorf("%s (%s): outcome %q, want %q", tt.typ, tt.paymentStatus, e.Outcome(), tt.want)
		}
		if tt.typ != "checkout.session.expired" && (e.IntentID != "pi_9" || e.AmountCents != 1299 || e.Currency != "eur" || e.CheckoutID != "co-9") {
			t.Errorf("%s: %+v, want pi_9's 1299 eur for co-9", tt.typ, e)
		}
	}
}
