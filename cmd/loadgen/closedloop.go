package main

import (
	"context"
	"sync"
	"time"
)

// errorPause is how long a customer waits after an error before its next
// purchase: a shop that is down answers at once, and a customer looping on
// it would count nothing but errors, as fast as it can.
const errorPause = 50 * time.Millisecond

// restockEvery is how many checkouts the closed loop starts between two
// restocks. Each restock tops the stock up to restockLevel and each
// checkout holds one, so the shelf keeps at least restockLevel -
// restockEvery - C: never empty at any number of customers loadgen runs,
// and should it be, the customer who finds it empty restocks and buys
// again.
const restockEvery = 10_000

// closedLoop is C customers, each buying one widget after another: a
// checkout with a new key, then the paid webhook for its payment id.
type closedLoop struct {
	shop    *shopClient
	product int64
	restock bool // keep the shelf stocked (see restockEvery)
	// pending counts what the shop has still to do for the purchases
	// made (shopClient.unfinished), for the waits for the dispatches.
	pending func(context.Context) (int, error)
}

// run runs customers until each has made perCustomer purchases (0: no
// limit) or until the time until (zero: none) has passed, whichever comes
// first. A purchase that has started always goes on to its webhook, even
// past until: a checkout left unpaid would wait for its payment long after
// the run. It returns when every customer has stopped.
func (l *closedLoop) run(ctx context.Context, customers, perCustomer int, until time.Time) *purchaseStats {
	s := newPurchaseStats(until)
	stock := &restocker{shop: l.shop, stats: s, off: !l.restock}
	// Topped up before the first customer buys: a shop starts with 100
	// of each product.
	stock.restockNow(ctx)
	var wg sync.WaitGroup
	for range customers {
		wg.Go(func() { l.customer(ctx, s, stock, perCustomer, until) })
	}
	wg.Wait()
	stock.wait()
	return s
}

func (l *closedLoop) customer(ctx context.Context, s *purchaseStats, stock *restocker, perCustomer int, until time.Time) {
	for n := 0; perCustomer == 0 || n < perCustomer; n++ {
		if ctx.Err() != nil || (!until.IsZero() && !time.Now().Before(until)) {
			return
		}
		if !l.purchase(ctx, s, stock) {
			select {
			case <-time.After(errorPause):
			case <-ctx.Done():
			}
		}
	}
}

// purchase buys one widget, and says whether it went without an error.
func (l *closedLoop) purchase(ctx context.Context, s *purchaseStats, stock *restocker) bool {
	stock.checkoutStarting(ctx)
	switch buy(ctx, l.shop, l.product, "paid", s) {
	case bought:
		return true
	case outOfStock:
		return stock.restockNow(ctx)
	}
	return false
}

// restocker keeps the shelf stocked for a closed loop: it restocks every
// restockEvery checkouts without holding anyone up, and at once when a
// customer finds the shelf empty. One restock runs at a time.
type restocker struct {
	shop  *shopClient
	stats *purchaseStats
	off   bool

	mu      sync.Mutex
	since   int           // checkouts started since the last restock began
	running chan struct{} // closed when the restock under way ends; nil if none
	wg      sync.WaitGroup
}

// checkoutStarting counts a checkout, and starts a restock every
// restockEvery of them.
func (r *restocker) checkoutStarting(ctx context.Context) {
	if r.off {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.since++
	if r.since >= restockEvery && r.running == nil {
		r.startLocked(ctx)
	}
}

// restockNow waits for a restock (the one under way, or a new one), as a
// customer who finds the shelf empty does, and says whether it worked.
func (r *restocker) restockNow(ctx context.Context) bool {
	if r.off {
		return false
	}
	r.mu.Lock()
	if r.running == nil {
		r.startLocked(ctx)
	}
	done := r.running
	r.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return false
	}
	r.stats.mu.Lock()
	defer r.stats.mu.Unlock()
	return r.stats.errors["restock"] == nil
}

func (r *restocker) startLocked(ctx context.Context) {
	r.since = 0
	done := make(chan struct{})
	r.running = done
	r.wg.Go(func() {
		err := r.shop.restock(ctx)
		switch {
		case err == nil:
			r.stats.add(func() { r.stats.nRestocks++ })
		case ctx.Err() == nil:
			r.stats.record("restock", err.Error())
		}
		r.mu.Lock()
		r.running = nil
		r.mu.Unlock()
		close(done)
	})
}

// wait waits for the restock under way, if any.
func (r *restocker) wait() { r.wg.Wait() }
