package shop_test

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/shop"
)

func TestValidateKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"550e8400-e29b-41d4-a716-446655440000", true},
		{"Order_1.retry", true},
		{strings.Repeat("k", shop.MaxKeyLength), true},
		{"", false},
		{strings.Repeat("k", shop.MaxKeyLength+1), false},
		{"has space", false},
		{"payment:x", false}, // ':' is kept for the shop's own workflow ids
		{"a/b", false},
		{"ключ", false},
		{".", false}, // a URL path's "this directory"
		{"..", false},
		{"...", true},
		{".hidden", true},
		{"k\x00", false},
		{"k\xff", false}, // invalid UTF-8
	}
	for _, tt := range tests {
		err := shop.ValidateKey(tt.key)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok %v", tt.key, err, tt.ok)
		}
		if err != nil && !errors.Is(err, shop.ErrInvalid) {
			t.Errorf("ValidateKey(%q) = %v, want kind ErrInvalid", tt.key, err)
		}
	}
}

func TestValidatePaymentID(t *testing.T) {
	t.Parallel()
	issued := "pay_" + rand.Text() // as the checkout makes them
	tests := []struct {
		id string
		ok bool
	}{
		{issued, true},
		{"pay_ABCDEFGHIJKLMNOPQRSTUVWXYZ", true},
		{"pay_23456723456723456723456723", true},
		{"", false},
		{"pay_", false},
		{"pay_nope", false},
		{issued[:len(issued)-1], false},
		{issued + "A", false},
		{"PAY_" + issued[4:], false},
		{"pay_abcdefghijklmnopqrstuvwxyz", false}, // lower case
		{"pay_ABCDEFGHIJKLMNOPQRSTUVWXY1", false}, // 1 is not base32
		{"pay_ABCDEFGHIJKLMNOPQRSTUVWXY\x00", false},
		{"pay_ABCDEFGHIJKLMNOPQRSTUVWX\xc3\xa9", false}, // é: 26 bytes, 25 runes
		{"pay_ABCDEFGHIJKLMNOPQRSTUVWXY\xff", false},    // invalid UTF-8
		{"pay_ABCDEFGHIJKLMNOPQRSTUVWXY'", false},
	}
	for _, tt := range tests {
		err := shop.ValidatePaymentID(tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("ValidatePaymentID(%q) = %v, want ok %v", tt.id, err, tt.ok)
		}
		if err != nil && !errors.Is(err, shop.ErrInvalid) {
			t.Errorf("ValidatePaymentID(%q) = %v, want kind ErrInvalid", tt.id, err)
		}
	}
}

func TestParsePaymentStatus(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"paid", "failed"} {
		if got, err := shop.ParsePaymentStatus(s); err != nil || string(got) != s {
			t.Errorf("ParsePaymentStatus(%q) = %q, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "PAID", "refunded"} {
		if _, err := shop.ParsePaymentStatus(s); !errors.Is(err, shop.ErrInvalid) {
			t.Errorf("ParsePaymentStatus(%q) = %v, want kind ErrInvalid", s, err)
		}
	}
}

func TestLegacyCodes(t *testing.T) {
	t.Parallel()
	// The seed's clients read these integers.
	want := map[shop.OrderStatus]int{shop.StatusPending: 0, shop.StatusDispatched: 1, shop.StatusPaid: 2, shop.StatusCancelled: -1}
	for status, code := range want {
		if got := status.LegacyCode(); got != code {
			t.Errorf("%s.LegacyCode() = %d, want %d", status, got, code)
		}
	}
}

func TestProgressRemaining(t *testing.T) {
	t.Parallel()
	paid := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	order := shop.Order{Status: shop.StatusPaid, PaidAt: paid, DispatchSteps: 10, DispatchInterval: time.Second}
	tests := []struct {
		status shop.OrderStatus
		after  time.Duration // since the payment
		want   int
	}{
		{shop.StatusPending, 0, 10},
		{shop.StatusCancelled, time.Hour, 10},
		{shop.StatusPaid, -time.Second, 10}, // a clock behind the payer's
		{shop.StatusPaid, 0, 10},
		{shop.StatusPaid, 999 * time.Millisecond, 10},
		{shop.StatusPaid, time.Second, 9},
		{shop.StatusPaid, 9500 * time.Millisecond, 1},
		{shop.StatusPaid, time.Hour, 1}, // the last step is the checkout's to take
		{shop.StatusDispatched, 10 * time.Second, 0},
	}
	for _, tt := range tests {
		o := order
		o.Status = tt.status
		if got := o.ProgressRemaining(paid.Add(tt.after)); got != tt.want {
			t.Errorf("%s, %v after payment: %d steps to go, want %d", tt.status, tt.after, got, tt.want)
		}
	}
	order.UpdatedAt = paid
	if got := order.LastUpdate(paid.Add(3500 * time.Millisecond)); !got.Equal(paid.Add(3 * time.Second)) {
		t.Errorf("LastUpdate 3.5 s after payment = %v, want the third step's time, 3 s after", got)
	}
	if done := order.DispatchDone(); !done.Equal(paid.Add(10 * time.Second)) {
		t.Errorf("DispatchDone = %v, want 10 s after the payment", done)
	}
}
