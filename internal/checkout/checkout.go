// Package checkout holds the shop's durable workflows: the checkout, which
// creates the order, reserves stock, waits for the payment and then hands
// the order to dispatch or cancels it; the dispatch; and the delivery of a
// payment webhook. Every database write is a dbos.RunAsTransaction step on
// the handle DBOS shares, so it is applied exactly once, crash or not.
package checkout

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/store"
)

// Durable names. Workflows in flight are found again by these names after a
// restart, so they never change, whatever the Go functions are called.
const (
	WorkflowCheckout = "checkout.Checkout"
	WorkflowDispatch = "checkout.Dispatch"
	WorkflowPayment  = "checkout.Payment"

	// Events a checkout publishes, and the one a payment publishes.
	EventPaymentID     = "payment_id" // "" when the order could not be placed
	EventOrderID       = "order_id"   // once the payment is settled either way
	EventPaymentStatus = "payment_status"
)

// Config sets the checkout's timings.
type Config struct {
	PaymentTimeout   time.Duration // how long a checkout waits for its payment
	DispatchSteps    int           // progress steps of a dispatch
	DispatchInterval time.Duration // durable sleep between two steps
}

// DefaultConfig is the seed's: 60 s to pay, ten dispatch steps a second apart.
var DefaultConfig = Config{PaymentTimeout: 60 * time.Second, DispatchSteps: 10, DispatchInterval: time.Second}

// Checkout runs the shop's workflows.
type Checkout struct {
	// dbosCtx is the DBOS context that workflows are started from. A
	// request's context must never be: a workflow started from it would be
	// cancelled, durably, when the request ends.
	dbosCtx dbos.Context
	db      *store.DB
	ds      *dbos.DataSource
	cfg     Config
	logger  *slog.Logger
}

// newCheckout returns a Checkout that writes through ds and reads through db,
// which must be the same database.
func newCheckout(db *store.DB, ds *dbos.DataSource, cfg Config, logger *slog.Logger) (*Checkout, error) {
	if cfg.PaymentTimeout <= 0 || cfg.DispatchSteps <= 0 || cfg.DispatchInterval < 0 {
		return nil, fmt.Errorf("invalid checkout config %+v", cfg)
	}
	return &Checkout{db: db, ds: ds, cfg: cfg, logger: logger}, nil
}

// register registers the workflows with DBOS, under their durable names.
// Call it before dbos.Launch.
func (c *Checkout) register(ctx dbos.Context) {
	c.dbosCtx = ctx
	dbos.RegisterWorkflow(ctx, c.checkout, dbos.WithWorkflowName(WorkflowCheckout))
	dbos.RegisterWorkflow(ctx, c.dispatch, dbos.WithWorkflowName(WorkflowDispatch))
	dbos.RegisterWorkflow(ctx, c.payment, dbos.WithWorkflowName(WorkflowPayment))
}

// Workflow ids besides the checkout's own (the client's key). Keys may not
// hold ':', so these can never be taken by a client's checkout.
func dispatchWorkflowID(checkoutID string) string { return checkoutID + ":dispatch" }
func paymentWorkflowID(paymentID string) string   { return "payment:" + paymentID }

// newPaymentID makes the id a customer pays against. It is random, not
// derived from the checkout's key: the key is the client's, and ids that
// matter come out of a step, so a forked workflow gets its own.
func newPaymentID() string { return "pay_" + rand.Text() }

// isTimeout reports whether err is a DBOS wait that ran out of time.
func isTimeout(err error) bool {
	return errors.Is(err, &dbos.Error{Code: dbos.ErrorCodeTimeout})
}
