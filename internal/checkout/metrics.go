package checkout

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// metrics count what the checkout already knows as it happens: no metric
// costs a database statement, since CPU per purchase is the shop's first
// cost (docs/performance.md). They count in this process: a checkout
// recovered after a crash may count its outcome again in the process that
// recovers it.
type metrics struct {
	started  prometheus.Counter
	payments map[string]prometheus.Counter // by result, see paymentResult
	settled  map[shop.OrderStatus]prometheus.Counter
	timedOut prometheus.Counter
	// refunds counts how refunds of payments no order kept ended, by
	// state: refunded, or attention (left to the operator).
	refunds *prometheus.CounterVec
}

// The results of a payment report.
const (
	resultSettled     = "settled"     // it settled the order
	resultRedelivered = "redelivered" // the order was settled so already
	resultConflict    = "conflict"    // it contradicts how the order was settled
	resultUnknown     = "unknown"     // no such payment id
	resultError       = "error"       // it could not be applied (the database)
)

// newMetrics registers the checkout's metrics with reg. Every label's
// series is made here, so a purchase adds to a counter it holds (no label
// lookup) and a scrape shows zeros rather than nothing.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	started := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "widgetstore_checkouts_started_total",
		Help: "Checkout workflows started in this process (recovered ones included); a retry of a key already started is not one.",
	})
	payments := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "widgetstore_payment_reports_total",
		Help: "Payment reports (webhooks) by result: settled the order, redelivered (settled so already), conflict (settled otherwise), unknown payment id, error.",
	}, []string{"result"})
	settled := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "widgetstore_orders_settled_total",
		Help: "Orders settled by outcome: paid, refused (payment failed), timed_out (no payment in time), dispatched.",
	}, []string{"outcome"})
	refunds := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "widgetstore_refunds_total",
		Help: "Refunds of payments no order kept (taken after the checkout gave up), by how they ended: refunded, or attention (the operator must refund by hand).",
	}, []string{"state"})
	for _, c := range []prometheus.Collector{started, payments, settled, refunds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the checkout's metrics: %w", err)
		}
	}
	m := &metrics{started: started, payments: map[string]prometheus.Counter{}, settled: map[shop.OrderStatus]prometheus.Counter{}, refunds: refunds}
	refunds.WithLabelValues(shop.RefundDone)
	refunds.WithLabelValues(shop.RefundAttention)
	for _, result := range []string{resultSettled, resultRedelivered, resultConflict, resultUnknown, resultError} {
		m.payments[result] = payments.WithLabelValues(result)
	}
	m.settled[shop.StatusPaid] = settled.WithLabelValues("paid")
	m.settled[shop.StatusCancelled] = settled.WithLabelValues("refused")
	m.settled[shop.StatusDispatched] = settled.WithLabelValues("dispatched")
	m.timedOut = settled.WithLabelValues("timed_out")
	return m, nil
}

// paymentReported counts a payment report that Pay answered with err,
// having settled the order itself when changed.
func (m *metrics) paymentReported(order shop.Order, changed bool, err error) {
	switch {
	case err == nil && changed:
		m.payments[resultSettled].Inc()
		if settled, ok := m.settled[order.Status]; ok { // PAID, or CANCELLED: refused
			settled.Inc()
		}
	case err == nil:
		m.payments[resultRedelivered].Inc()
	case errors.Is(err, shop.ErrConflict):
		m.payments[resultConflict].Inc()
	case errors.Is(err, shop.ErrNotFound):
		m.payments[resultUnknown].Inc()
	default:
		m.payments[resultError].Inc()
	}
}
