// Package checkout holds the shop's durable workflow, the checkout: it
// places the order (created and its stock reserved in one transaction),
// hands the payment id to the request waiting for it, waits until the
// payment webhook settles the order's row or its deadline passes, and ends
// with the order paid or cancelled; a sweep that every instance runs
// dispatches the paid orders (dispatch.go). Every database write is a
// dbos.RunAsTransaction step on the handle DBOS shares, or the webhook's own
// transaction that also wakes the checkout, so each is applied exactly
// once, crash or not. docs/performance.md says why it is shaped so.
package checkout

import (
	"crypto/rand"
	"log/slog"
	"sync"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"go.opentelemetry.io/otel/trace"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/store"
)

// Durable names. Workflows in flight are found again by these names after a
// restart, so they never change, whatever the Go functions are called.
const (
	WorkflowCheckout = "checkout.Checkout"

	// EventPlaced is the event that told the client what a checkout
	// before version5 placed: the payment id, or why there is none (see
	// placement). Those checkouts still set it; no one reads it.
	EventPlaced = "placed"
	// topicPayment carries the payment webhook's word to the checkouts
	// before version5, which wait for it (awaitWord).
	topicPayment = "payment"
)

// Config sets the checkout's timings and limits.
type Config struct {
	PaymentTimeout   time.Duration // how long a checkout waits for its payment
	DispatchSteps    int           // progress steps of a dispatch
	DispatchInterval time.Duration // time between two steps
	// PendingUnitsPerClient is how many units one client (Request.Client)
	// may hold in checkouts awaiting payment; 0: no limit. It is checked
	// in the transaction that places the order, against the orders in the
	// database: it holds across restarts and for every instance sharing
	// the database.
	PendingUnitsPerClient int
	// RefundAttempts bounds how often a refund is tried before it is left
	// to the operator; the tries are RefundBackoff apart, doubling up to a
	// minute.
	RefundAttempts int
	RefundBackoff  time.Duration
}

// DefaultConfig is the seed's: 60 s to pay, ten dispatch steps a second
// apart, and no limit; a refund is tried 8 times over about 3 minutes.
var DefaultConfig = Config{PaymentTimeout: 60 * time.Second, DispatchSteps: 10, DispatchInterval: time.Second,
	RefundAttempts: 8, RefundBackoff: time.Second}

// Currency is the shop's: prices are integer cents of it.
const Currency = "usd"

// intentRetries is how often creating a payment intent is retried (DBOS's
// step retries, backing off) before the order is cancelled.
const intentRetries = 4

// Checkout runs the shop's workflows.
type Checkout struct {
	// dbosCtx is the DBOS context that workflows are started from. A
	// request's context must never be: a workflow started from it would be
	// cancelled, durably, when the request ends.
	dbosCtx   dbos.Context
	db        *store.DB
	ds        *dbos.DataSource
	cfg       Config
	provider  payment.Provider // nil: no checkout pays through a provider
	receipts  receipt.Sender
	publicURL string // the shop's, for the links in receipts; "" for none
	logger    *slog.Logger
	metrics   *metrics
	tracer    trace.Tracer // nil: no spans (tracing.go)
	// executorID is this instance's id among those sharing the database
	// (DBOS's default, "local", when none was given).
	executorID string
	// takeoverMetrics count TakeOver's work, and the workflows recovered
	// at launch.
	takeoverMetrics takeoverMetrics
	// knownProducts holds the ids of products seen in the catalog.
	knownProducts sync.Map
	// settlements wakes the checkouts waiting here for their orders'
	// payment (settlement.go).
	settlements settlements
	// placements hands each checkout's placement to the requests of this
	// process waiting for it.
	placements placementWaiters
	// receiptQueue holds the receipts this process is to send
	// (queueReceipt).
	receiptQueue chan queuedReceipt
	watch        watch
	stopWatch    func() // stops runWatch, runProbe, pollSettlements, runDispatchSweep and sendQueuedReceipts and waits for them
	// launchedAt is when this instance launched: the receipts enqueued
	// before it that are still unsent were left by a crash, and its first
	// sweep of the receipts sends them (sweepReceipts).
	launchedAt    time.Time
	retention     Retention
	lastRetention time.Time // the period of the last retention run started; runWatch's own
}

// newPaymentID makes the id a customer pays against. It is random, not
// derived from the checkout's key: the key is the client's, and ids that
// matter come out of a step, so a forked workflow gets its own.
func newPaymentID() string { return "pay_" + rand.Text() }
