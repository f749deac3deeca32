package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// CheckoutLimits bound what one client may take of the stock: a checkout
// holds its units until it is paid, refused or timed out, so without them
// one client could hold a product's whole stock, again and again with new
// keys. A client is an address: an IPv4 address, or an IPv6 /64. Each
// instance of the shop counts on its own, in memory: a restart forgets the
// holds, but for the keys retried after it. The zero value limits nothing.
type CheckoutLimits struct {
	// PerMinute is how many new checkouts one client may start a minute,
	// in bursts of as many; 0: no limit. A retry of a key already started
	// is not a new checkout.
	PerMinute int
	// PendingUnits is how many units one client may hold in checkouts that
	// await their payment; 0: no limit.
	PendingUnits int
	// PaymentWindow is how long a checkout waits for its payment, the
	// longest a hold lasts (default checkout.DefaultConfig's).
	PaymentWindow time.Duration
}

// holdGrace is how long past its payment window a hold is still checked
// against its order, for a checkout that was late to time out.
const holdGrace = 30 * time.Second

// checkoutGuard applies the CheckoutLimits. It remembers, per client, the
// checkouts it admitted that may still hold stock, and asks the database
// whether each still does: a hold ends when its order is paid, refused or
// timed out, whichever instance of the shop settled it.
type checkoutGuard struct {
	limits      CheckoutLimits
	behindProxy bool
	db          *store.DB
	logger      *slog.Logger
	proxyOnce   sync.Once // warns once of a proxy's X-Forwarded-For ignored

	mu        sync.Mutex
	clients   map[string]*client
	keys      map[string]*hold // by idempotency key
	lastSweep time.Time
}

// client is one client's state.
type client struct {
	admitting sync.Mutex    // one admission of the client's at a time
	limiter   *rate.Limiter // nil: no rate limit
	holds     map[string]*hold
	busy      int // admissions under way, which the sweep leaves alone
}

// hold is a checkout the guard admitted, and the units it may hold.
type hold struct {
	client   string
	units    int
	since    time.Time
	starting bool // its checkout is being started: no order to read yet
}

// newCheckoutGuard returns the guard of limits, or nil when they limit
// nothing.
func newCheckoutGuard(logger *slog.Logger, db *store.DB, limits CheckoutLimits, behindProxy bool) *checkoutGuard {
	if limits.PerMinute <= 0 && limits.PendingUnits <= 0 {
		return nil
	}
	if limits.PaymentWindow <= 0 {
		limits.PaymentWindow = checkout.DefaultConfig.PaymentTimeout
	}
	return &checkoutGuard{limits: limits, behindProxy: behindProxy, db: db, logger: logger,
		clients: map[string]*client{}, keys: map[string]*hold{}, lastSweep: time.Now()}
}

// limitedError is a refusal of the limits: a 429 with Retry-After.
type limitedError struct {
	retryAfter time.Duration
	err        error
}

func (e *limitedError) Error() string { return e.err.Error() }
func (e *limitedError) Unwrap() error { return e.err }

// writeLimited answers a refusal of the limits: 429, Retry-After in whole
// seconds, and the JSON error.
func writeLimited(w http.ResponseWriter, r *http.Request, e *limitedError) {
	w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(max(e.retryAfter, time.Second).Seconds()))))
	writeError(w, r, e.err)
}

// admit lets a checkout of units under key through, or refuses it with a
// *limitedError. A key it has seen, or whose order exists, is a retry of a
// checkout already counted: it passes uncounted. The caller reports how
// starting the checkout went with done. A nil guard admits everything.
func (g *checkoutGuard) admit(r *http.Request, key string, units int) (done func(error), err error) {
	nothing := func(error) {}
	if g == nil {
		return nothing, nil
	}
	now := time.Now()
	id := g.clientOf(r)

	g.mu.Lock()
	if _, ok := g.keys[key]; ok {
		g.mu.Unlock()
		return nothing, nil
	}
	g.sweep(now)
	c := g.clients[id]
	if c == nil {
		c = &client{holds: map[string]*hold{}}
		if g.limits.PerMinute > 0 {
			c.limiter = rate.NewLimiter(rate.Every(time.Minute/time.Duration(g.limits.PerMinute)), g.limits.PerMinute)
		}
		g.clients[id] = c
	}
	c.busy++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		c.busy--
		g.mu.Unlock()
	}()

	c.admitting.Lock()
	defer c.admitting.Unlock()
	g.mu.Lock()
	_, seen := g.keys[key] // admitted meanwhile
	g.mu.Unlock()
	if seen {
		return nothing, nil
	}
	// A key with an order is a retry from before a restart, or from
	// another instance: not counted, but its stock is this client's.
	order, err := store.OrderByCheckoutID(r.Context(), g.db.Q(), key)
	if err == nil {
		if order.Status == shop.StatusPending {
			g.add(c, key, &hold{client: id, units: order.Quantity, since: now})
		}
		return nothing, nil
	}
	if !errors.Is(err, shop.ErrNotFound) {
		return nil, fmt.Errorf("checking whether checkout %s is a retry: %w", key, err)
	}

	if c.limiter != nil {
		reservation := c.limiter.ReserveN(now, 1)
		if wait := reservation.DelayFrom(now); wait > 0 {
			reservation.CancelAt(now)
			return nil, &limitedError{retryAfter: wait, err: shop.Errorf(shop.ErrLimited,
				"too many checkouts from your address: at most %d a minute; try again in %.0f s", g.limits.PerMinute, math.Ceil(wait.Seconds()))}
		}
	}
	if g.limits.PendingUnits > 0 {
		held, soonest, err := g.held(r.Context(), c, now)
		if err != nil {
			return nil, err
		}
		if held+units > g.limits.PendingUnits {
			wait := soonest.Sub(now)
			return nil, &limitedError{retryAfter: wait, err: shop.Errorf(shop.ErrLimited,
				"your address holds %d units in checkouts awaiting payment, and may hold at most %d: pay for them, or try again in %.0f s",
				held, g.limits.PendingUnits, math.Ceil(max(wait, time.Second).Seconds()))}
		}
	}

	h := &hold{client: id, units: units, since: now, starting: true}
	g.add(c, key, h)
	return func(err error) {
		g.mu.Lock()
		defer g.mu.Unlock()
		h.starting = false
		var shopErr *shop.Error
		if errors.As(err, &shopErr) {
			// Refused (unknown product, out of stock...): it holds nothing.
			delete(g.keys, key)
			delete(c.holds, key)
		}
	}, nil
}

func (g *checkoutGuard) add(c *client, key string, h *hold) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.keys[key] = h
	c.holds[key] = h
}

// held returns how many units the client's checkouts hold now, and when
// the first of those holds will end at the latest. It asks the database
// about every hold whose checkout has started: the order tells whether it
// still awaits its payment.
func (g *checkoutGuard) held(ctx context.Context, c *client, now time.Time) (units int, soonest time.Time, err error) {
	g.mu.Lock()
	holds := make(map[string]hold, len(c.holds))
	for key, h := range c.holds {
		holds[key] = *h
	}
	g.mu.Unlock()

	soonest = now.Add(g.limits.PaymentWindow)
	for key, h := range holds {
		end := h.since.Add(g.limits.PaymentWindow)
		pending := h.starting
		if !h.starting && now.Before(end.Add(holdGrace)) {
			order, err := store.OrderByCheckoutID(ctx, g.db.Q(), key)
			if err != nil && !errors.Is(err, shop.ErrNotFound) {
				return 0, soonest, fmt.Errorf("reading the order of checkout %s: %w", key, err)
			}
			pending = err == nil && order.Status == shop.StatusPending
		}
		if !pending {
			g.mu.Lock()
			delete(g.keys, key)
			delete(c.holds, key)
			g.mu.Unlock()
			continue
		}
		units += h.units
		if end.Before(soonest) {
			soonest = end
		}
	}
	return units, soonest, nil
}

// sweep forgets, once per payment window, the holds whose window is well
// past and the clients that hold nothing and have their whole burst of
// checkouts back: a client that never returns costs no memory. The caller
// holds g.mu.
func (g *checkoutGuard) sweep(now time.Time) {
	if now.Sub(g.lastSweep) < g.limits.PaymentWindow {
		return
	}
	g.lastSweep = now
	for key, h := range g.keys {
		if !h.starting && now.After(h.since.Add(g.limits.PaymentWindow+holdGrace)) {
			delete(g.keys, key)
			if c := g.clients[h.client]; c != nil {
				delete(c.holds, key)
			}
		}
	}
	for id, c := range g.clients {
		if c.busy == 0 && len(c.holds) == 0 && (c.limiter == nil || c.limiter.TokensAt(now) >= float64(c.limiter.Burst())) {
			delete(g.clients, id)
		}
	}
}

// clientOf is who a request comes from: its remote address, or behind a
// proxy the last address of X-Forwarded-For, the one the proxy saw (those
// before it are the client's own say). An IPv6 client is its /64, which
// one machine often holds whole.
func (g *checkoutGuard) clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if forwarded := r.Header.Values("X-Forwarded-For"); len(forwarded) > 0 {
		last := forwarded[len(forwarded)-1]
		last = strings.TrimSpace(last[strings.LastIndex(last, ",")+1:])
		if g.behindProxy {
			if fip := net.ParseIP(last); fip != nil {
				ip = fip
			}
		} else if ip != nil && (ip.IsLoopback() || ip.IsPrivate()) {
			g.proxyOnce.Do(func() {
				g.logger.Warn("a request came through a proxy (X-Forwarded-For), but -behind-proxy is off: every client behind it counts as one for the checkout limits",
					"proxy", host)
			})
		}
	}
	if ip == nil {
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
