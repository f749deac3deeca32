// Package web serves the shop: the seed's HTTP API, the JSON API beside
// it, and the page, whose assets are embedded in the binary.
package web

import (
	"context"
	"embed"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/store"
)

//go:embed static
var static embed.FS

// Server is the shop's HTTP handler and what it needs.
type Server struct {
	logger   *slog.Logger
	db       *store.DB
	checkout *checkout.Checkout
	opts     Options
	mux      *http.ServeMux
	guard    *checkoutGuard
	draining atomic.Bool // set by Drain: /readyz answers 503
	metrics  *httpMetrics
	tracer   trace.Tracer // nil: no spans (tracing.go)
	registry *prometheus.Registry
	sessions *sessions // the operator's
	live     *liveHub
	// startedAt is when this process's server was made: the page tells a
	// customer the server restarted during their purchase.
	startedAt time.Time
	drained   chan struct{} // closed by Drain: live streams end
	drainOnce sync.Once
}

// Options are the server's switches.
type Options struct {
	// CrashFunc kills the process for the crash button; nil turns the
	// button off (404).
	CrashFunc func()
	// WebhookSecrets, when set, are the keys the payment provider signs
	// the seed's webhook with (see SignWebhook): any of them is taken, so
	// that one can be rotated without downtime; unsigned reports are
	// refused with 401. Unset, the webhook is open to anyone, as the
	// seed's was. Set, the shop runs in production: orders are shown to
	// anyone without their payment ids.
	WebhookSecrets [][]byte
	// Events verifies the payment provider's webhook events; nil, none
	// are taken.
	Events EventVerifier
	// ProviderPages, when set, serves the demo payment provider's pages
	// and API under /demopay/ (demopay.Provider.Handler).
	ProviderPages http.Handler
	// OperatorToken, when set, must come as "Authorization: Bearer <token>"
	// with every operator's request (restock, crash, audit, workflows,
	// the console, metrics), or be exchanged on the page for a session
	// cookie (session.go). Unset, they are open, as the seed's restock and
	// crash were.
	OperatorToken []byte
	// StaleAfter is how long an instance may go without a heartbeat
	// before the console lists it as gone (the takeover's silence); 0,
	// defaultStaleAfter.
	StaleAfter time.Duration
	// Limits bound how fast one client may start checkouts; the zero
	// value, not at all. What it may hold is the checkout's to bound.
	Limits CheckoutLimits
	// BehindProxy takes a client's address from the last entry of
	// X-Forwarded-For, which the proxy in front sets; without it the
	// header is ignored, since a client can write anything there.
	BehindProxy bool
	// Metrics is where the server registers its metrics and what GET
	// /metrics serves (the operator's); nil, a registry of the server's
	// own.
	Metrics *prometheus.Registry
	// Tracer, when set, gets a span per request (tracing.go); nil, none.
	Tracer trace.TracerProvider
}

// NewServer returns the shop's handler.
func NewServer(logger *slog.Logger, db *store.DB, co *checkout.Checkout, opts Options) *Server {
	s := &Server{logger: logger, db: db, checkout: co, opts: opts, mux: http.NewServeMux(),
		guard: newCheckoutGuard(logger, opts.Limits, opts.BehindProxy), registry: opts.Metrics,
		sessions: newSessions(opts.OperatorToken), live: newLiveHub(logger), startedAt: time.Now(), drained: make(chan struct{})}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	s.metrics = newHTTPMetrics(s.registry)
	if opts.Tracer != nil {
		s.tracer = opts.Tracer.Tracer(tracerName)
	}
	s.routes()
	return s
}

func (s *Server) staleAfter() time.Duration {
	if s.opts.StaleAfter > 0 {
		return s.opts.StaleAfter
	}
	return defaultStaleAfter
}

// Drain turns /readyz to 503 for good, at the start of a shutdown: the
// load balancer takes this instance out of its rotation while it still
// serves the requests already sent its way.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.drainOnce.Do(func() { close(s.drained) }) // live streams would hold the shutdown up
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	r, span := s.traceRequest(r)
	// The page loads nothing from elsewhere and runs no inline script, so
	// the browser may refuse anything else; and it takes no frame.
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK, id: requestID(r)}
	h.Set(RequestIDHeader, rec.id)
	r = r.WithContext(context.WithValue(r.Context(), recorderKey{}, rec)) // for noteFailure
	s.mux.ServeHTTP(&jsonErrors{ResponseWriter: rec, r: r}, r)
	d := time.Since(start)
	s.metrics.observe(r, rec.status, d) // the mux set r.Pattern
	s.logRequest(r, rec, d)
	endRequestSpan(span, r, rec)
}

// statusRecorder remembers the status a handler answered with, for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	id     string // the request's id (requestID)
	// workflow is the id of the workflow the request is about, for the
	// log and the span (noteWorkflow); "" for none.
	workflow string
	err      error // what went wrong answering, if anything (noteFailure)
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
