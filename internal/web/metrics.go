package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpMetrics count the requests served, by route and status, and time
// them by route. The route is the pattern that matched (r.Pattern), never
// the path: a path carries keys and ids, and each would be a series of its
// own.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newHTTPMetrics registers the server's metrics with reg. It panics if they
// are registered there already: two servers on one registry are a bug.
func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "widgetstore_http_requests_total",
			Help: "HTTP requests answered, by route pattern (\"unmatched\" for none) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "widgetstore_http_request_duration_seconds",
			Help: "Time from a request's headers read to its handler's return, by route pattern.",
			// From 0.5 ms (a payment report) to 4.8 s; a checkout waits
			// at most 30 s for its order, and lands in +Inf then.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 11),
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observe counts a request that the mux routed to r.Pattern.
func (m *httpMetrics) observe(r *http.Request, status int, d time.Duration) {
	route := r.Pattern
	if route == "" {
		route = "unmatched" // 404, or 405 for a known path
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// handleMetrics handles "GET /metrics": every metric in reg, in
// Prometheus's text format. Gauges that need the database to be read are
// not among them: a scrape costs no statement.
func handleMetrics(reg prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
