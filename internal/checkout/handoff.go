package checkout

import (
	"encoding/json"
	"slices"
	"sync"
)

// placementWaiters hands what a checkout placed to the requests of this
// process waiting for it (Place), where the checkouts before version5 set
// a DBOS event, a step of its own: the checkout hands its placement off
// right after placing, on every execution, replays included, and a request
// registers before it starts the checkout, so the checkout it starts cannot
// place before it waits. A request whose checkout runs elsewhere, or placed
// before the request registered, reads the placement from the checkout's
// records (readPlacement). A hand-off that no one waits for is dropped, and
// a waiter that gives up is forgotten: nothing stays behind either way.
type placementWaiters struct {
	mu      sync.Mutex
	waiting map[string][]*placementWaiter // by checkout id
}

// placementWaiter is one request waiting for a checkout's placement.
type placementWaiter struct {
	checkoutID string
	// handed gets the hand-off, at most one: its room of one means the
	// checkout never blocks on a request.
	handed chan handOff
}

// handOff is what a checkout hands its waiters: its placement, as
// publication makes it, and the error that failed it, nil when none did.
type handOff struct {
	placement placement
	err       error
}

// handOffOf is the hand-off of in's checkout that came out as o, failed by
// err (nil when nothing failed it). Its placement is publication's as read
// back from JSON, as the event carried it and as readPlacement rebuilds it
// from the steps' records: the client is told the same, to a time's
// location, however its request learns it. (A placement is plain data:
// its round trip does not fail.)
func handOffOf(in input, o outcome, err error) handOff {
	h := handOff{placement: publication(in, o), err: err}
	if b, jsonErr := json.Marshal(h.placement); jsonErr == nil {
		var read placement
		if json.Unmarshal(b, &read) == nil {
			h.placement = read
		}
	}
	return h
}

// register makes a waiter for the placement of checkout id. It must give
// up (giveUp) once it waits no more.
func (r *placementWaiters) register(checkoutID string) *placementWaiter {
	w := &placementWaiter{checkoutID: checkoutID, handed: make(chan handOff, 1)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiting == nil {
		r.waiting = make(map[string][]*placementWaiter)
	}
	r.waiting[checkoutID] = append(r.waiting[checkoutID], w)
	return w
}

// handOff gives h to every request waiting for checkout id, and forgets
// them.
func (r *placementWaiters) handOff(checkoutID string, h handOff) {
	r.mu.Lock()
	waiters := r.waiting[checkoutID]
	delete(r.waiting, checkoutID)
	r.mu.Unlock()
	for _, w := range waiters {
		w.handed <- h
	}
}

// giveUp forgets w, handed off to or not; it may be called again.
func (r *placementWaiters) giveUp(w *placementWaiter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rest := slices.DeleteFunc(r.waiting[w.checkoutID], func(other *placementWaiter) bool { return other == w })
	if len(rest) == 0 {
		delete(r.waiting, w.checkoutID)
		return
	}
	r.waiting[w.checkoutID] = rest
}
