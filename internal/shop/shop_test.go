package shop_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/widgetstore/widgetstore/internal/shop"
)

func TestValidateKey(t *testing.T) {
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

func TestParsePaymentStatus(t *testing.T) {
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
	// The seed's clients read these integers.
	want := map[shop.OrderStatus]int{shop.StatusPending: 0, shop.StatusDispatched: 1, shop.StatusPaid: 2, shop.StatusCancelled: -1}
	for status, code := range want {
		if got := status.LegacyCode(); got != code {
			t.Errorf("%s.LegacyCode() = %d, want %d", status, got, code)
		}
	}
}
