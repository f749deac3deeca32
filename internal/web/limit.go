package web

import (
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
)

// CheckoutLimits bound how fast one client may start checkouts. A client
// is an address: an IPv4 address, or an IPv6 /64. The rate is counted in
// memory, by each instance on its own, and a restart forgets it: at most a
// fresh burst of checkouts for a flooder, since what a client may hold
// awaiting payment is bounded by the checkout itself, in the database
// (checkout.Config.PendingUnitsPerClient). The zero value limits nothing.
type CheckoutLimits struct {
	// PerMinute is how many new checkouts one client may start a minute,
	// in bursts of as many; 0: no limit. A retry of a key already started
	// is not a new checkout.
	PerMinute int
	// PaymentWindow is how long a checkout waits for its payment (default
	// checkout.DefaultConfig's): a key started is remembered at least that
	// long, so that its retries are not counted.
	PaymentWindow time.Duration
}

// checkoutGuard says who a request comes from, and applies the rate.
type checkoutGuard struct {
	limits      CheckoutLimits
	behindProxy bool
	logger      *slog.Logger
	proxyOnce   sync.Once // warns once of a proxy's X-Forwarded-For ignored

	mu        sync.Mutex
	limiters  map[string]*rate.Limiter // by client
	started   map[string]time.Time     // keys admitted, and when
	lastSweep time.Time
}

func newCheckoutGuard(logger *slog.Logger, limits CheckoutLimits, behindProxy bool) *checkoutGuard {
	if limits.PaymentWindow <= 0 {
		limits.PaymentWindow = checkout.DefaultConfig.PaymentTimeout
	}
	return &checkoutGuard{limits: limits, behindProxy: behindProxy, logger: logger,
		limiters: map[string]*rate.Limiter{}, started: map[string]time.Time{}, lastSweep: time.Now()}
}

// admit returns who asked for a checkout under key, or an error of kind
// shop.ErrLimited, with its Retry-After, when the client starts checkouts
// faster than it may. A key admitted in the last payment window is a
// retry, which passes uncounted: a browser resending its purchase is not
// refused. After a restart its retry counts once.
func (g *checkoutGuard) admit(r *http.Request, key string) (client string, err error) {
	client = g.clientOf(r)
	if g.limits.PerMinute <= 0 {
		return client, nil
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweep(now)
	if _, ok := g.started[key]; ok {
		return client, nil
	}
	limiter := g.limiters[client]
	if limiter == nil {
		limiter = rate.NewLimiter(rate.Every(time.Minute/time.Duration(g.limits.PerMinute)), g.limits.PerMinute)
		g.limiters[client] = limiter
	}
	reservation := limiter.ReserveN(now, 1)
	if wait := reservation.DelayFrom(now); wait > 0 {
		reservation.CancelAt(now)
		return client, shop.Limitedf(wait, "too many checkouts from your address: at most %d a minute; try again in %.0f s",
			g.limits.PerMinute, math.Ceil(wait.Seconds()))
	}
	g.started[key] = now
	return client, nil
}

// sweep forgets, once per payment window, the keys admitted more than a
// window ago and the clients that have their whole burst of checkouts
// back: a client that never returns costs no memory. The caller holds g.mu.
func (g *checkoutGuard) sweep(now time.Time) {
	if now.Sub(g.lastSweep) < g.limits.PaymentWindow {
		return
	}
	g.lastSweep = now
	for key, at := range g.started {
		if now.Sub(at) > g.limits.PaymentWindow {
			delete(g.started, key)
		}
	}
	for client, limiter := range g.limiters {
		if limiter.TokensAt(now) >= float64(limiter.Burst()) {
			delete(g.limiters, client)
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
