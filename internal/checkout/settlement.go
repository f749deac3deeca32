package checkout

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/widgetstore/widgetstore/internal/store"
)

// A checkout of version5 waits for its order to be settled (paid, refused,
// cancelled by its customer) on the order's row itself, which the webhook's
// transaction writes: the row is the word, so nothing is sent to the
// checkout and nothing consumed by it (dbos.Send, dbos.Recv: two
// checkpoints and a message a purchase). What wakes it is only a signal,
// never a record: the settlement step reads the row, in its transaction,
// after the wake.

// settlementPoll is how often the checkouts of this process still waiting
// are looked up in the orders, to wake those whose order was settled by
// another instance; a checkout is looked up once it has waited that long,
// since one paid through this instance is woken at once.
const settlementPoll = time.Second

// settlementBatch is how many orders one poll's query asks about: its
// text stays the same (the list padded), so the statement is prepared
// once per connection.
const settlementBatch = 64

// settlements wakes this process's checkouts waiting for their orders'
// settlement: at once when this process settled the order (settle,
// CancelByKey), or when the poll (pollSettlements) finds it settled. A
// wake says only that the order is settled: never sent before, since the
// settlement step that follows cancels an order still pending.
type settlements struct {
	mu      sync.Mutex
	waiting map[int64][]*settlementWaiter // by order id
}

type settlementWaiter struct {
	wake  chan struct{} // closed when the order is settled
	since time.Time
}

// wait registers a checkout as waiting for its order: wake is closed when
// the order is settled; done unregisters it. A fork of the checkout
// waits for the same order.
func (s *settlements) wait(orderID int64) (wake <-chan struct{}, done func()) {
	w := &settlementWaiter{wake: make(chan struct{}), since: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting == nil {
		s.waiting = make(map[int64][]*settlementWaiter)
	}
	s.waiting[orderID] = append(s.waiting[orderID], w)
	return w.wake, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		waiters := slices.DeleteFunc(s.waiting[orderID], func(x *settlementWaiter) bool { return x == w })
		if len(waiters) == 0 {
			delete(s.waiting, orderID)
		} else {
			s.waiting[orderID] = waiters
		}
	}
}

// settled wakes the checkouts waiting here for the order, settled.
func (s *settlements) settled(orderID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.waiting[orderID] {
		close(w.wake)
	}
	delete(s.waiting, orderID)
}

// waitingSince lists the orders waited for here since before t.
func (s *settlements) waitingSince(t time.Time) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []int64
	for id, waiters := range s.waiting {
		if waiters[0].since.Before(t) {
			ids = append(ids, id)
		}
	}
	return ids
}

// pollSettlements wakes, every settlementPoll until ctx ends, the
// checkouts waiting here whose orders another instance settled, or that a
// restart left waiting on an order settled already.
func (c *Checkout) pollSettlements(ctx context.Context) {
	tick := time.NewTicker(settlementPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ids := c.settlements.waitingSince(time.Now().Add(-settlementPoll))
		for len(ids) > 0 {
			batch := ids[:min(len(ids), settlementBatch)]
			ids = ids[len(batch):]
			settled, err := store.SettledOrders(ctx, c.db.Q(), batch, settlementBatch)
			if err != nil {
				if ctx.Err() == nil {
					c.logger.Warn("looking up the orders that checkouts wait for; the next poll tries again", "orders", len(batch), "err", err)
				}
				break
			}
			for _, id := range settled {
				c.settlements.settled(id)
			}
		}
	}
}
