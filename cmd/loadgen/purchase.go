package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// outcome is how one purchase ended.
type outcome int

const (
	bought     outcome = iota
	outOfStock         // the checkout was answered 409
	failed             // an error, recorded, or ctx ended
)

// buy makes one purchase as the seed's clients do: a checkout of one
// product under a new key ("POST /checkout/{key}", answered its payment
// id), then the payment provider's report that the payment is verdict,
// paid or failed ("POST /payment_webhook/{id}/{verdict}", answered the
// order id). Both loops buy with it, and s counts what happened.
func buy(ctx context.Context, shop *shopClient, product int64, verdict string, s *purchaseStats) outcome {
	key := "load-" + rand.Text()
	t0 := time.Now()
	status, answer, err := shop.checkout(ctx, key, product)
	checkoutTook := time.Since(t0)
	switch {
	case err != nil:
		s.failed(ctx, "checkout", err)
		return failed
	case status == http.StatusConflict:
		s.add(func() { s.nOutOfStock++ })
		return outOfStock
	case status != http.StatusOK:
		s.record(fmt.Sprintf("checkout: HTTP %d", status), errorMessage(answer))
		return failed
	}
	paymentID := strings.TrimSpace(string(answer))
	if paymentID == "" {
		s.record("checkout: bad answer", "an empty payment id")
		return failed
	}

	t1 := time.Now()
	status, answer, err = shop.payment(ctx, paymentID, verdict)
	done := time.Now()
	switch {
	case err != nil:
		s.failed(ctx, "webhook", err)
		return failed
	case status != http.StatusOK:
		s.record(fmt.Sprintf("webhook: HTTP %d", status), errorMessage(answer))
		return failed
	}
	if _, err := strconv.ParseInt(strings.TrimSpace(string(answer)), 10, 64); err != nil {
		s.record("webhook: bad answer", fmt.Sprintf("order id %q is not a number", truncate(string(answer))))
		return failed
	}
	s.purchased(verdict == "paid", checkoutTook, done.Sub(t1), done.Sub(t0), done)
	return bought
}

// purchaseStats gathers the outcome of the purchases of one run.
type purchaseStats struct {
	mu                 sync.Mutex
	windowEnd          time.Time // purchases done by then are in the window; zero: all are
	nCompleted         int
	nCompletedInWindow int
	nPaid              int // of the completed, those reported paid; the others were refused
	nOutOfStock        int
	nRestocks          int
	nErrors            int
	nInterrupted       int // cut short when ctx ended
	checkout           []time.Duration
	webhook            []time.Duration
	purchase           []time.Duration // checkout sent to webhook answered
	errors             map[string]*errorKind
}

func newPurchaseStats(windowEnd time.Time) *purchaseStats {
	return &purchaseStats{windowEnd: windowEnd, errors: map[string]*errorKind{}}
}

func (s *purchaseStats) add(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *purchaseStats) purchased(paid bool, checkout, webhook, purchase time.Duration, done time.Time) {
	s.add(func() {
		s.nCompleted++
		if paid {
			s.nPaid++
		}
		if s.windowEnd.IsZero() || !done.After(s.windowEnd) {
			s.nCompletedInWindow++
		}
		s.checkout = append(s.checkout, checkout)
		s.webhook = append(s.webhook, webhook)
		s.purchase = append(s.purchase, purchase)
	})
}

// failed records a call that got no answer: interrupted when ctx ended,
// else a timeout or a transport error.
func (s *purchaseStats) failed(ctx context.Context, call string, err error) {
	if ctx.Err() != nil {
		s.add(func() { s.nInterrupted++ })
		return
	}
	kind := call + ": transport error"
	if errors.Is(err, context.DeadlineExceeded) {
		kind = call + ": timeout"
	}
	s.record(kind, err.Error())
}

func (s *purchaseStats) record(kind, example string) {
	s.add(func() {
		s.nErrors++
		countError(s.errors, kind, example, 1)
	})
}

// errorKind counts the errors of one kind, with the first one's message.
type errorKind struct {
	Count   int    `json:"count"`
	Example string `json:"example"`
}

// countError adds n errors of kind to kinds, keeping the first example.
func countError(kinds map[string]*errorKind, kind, example string, n int) {
	e := kinds[kind]
	if e == nil {
		e = &errorKind{Example: example}
		kinds[kind] = e
	}
	e.Count += n
}

// printErrorKinds writes one line per kind of error, sorted.
func printErrorKinds(b *strings.Builder, kinds map[string]*errorKind) {
	names := slices.Sorted(maps.Keys(kinds))
	width := 0
	for _, k := range names {
		width = max(width, len(k))
	}
	for _, k := range names {
		fmt.Fprintf(b, "  %-*s %6d  e.g. %s\n", width, k, kinds[k].Count, kinds[k].Example)
	}
}
