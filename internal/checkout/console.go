package checkout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// The checkout's steps that a fork must not run again, each keyed by the
// checkout's id, which a fork does not share: placeOrder places the order
// (keyed by checkout_id), createIntent asks the payment provider for the
// order's payment intent (keyed "checkout:<id>"). The fork's guard finds
// them by name, since their numbers are DBOS's to give.
const (
	stepPlaceOrder   = "checkout.placeOrder"
	stepCreateIntent = "checkout.createIntent"
)

// WorkflowFilter selects workflows for the console; zero fields select all.
type WorkflowFilter struct {
	Statuses                    []string // some of WorkflowStatuses
	Names                       []string
	CreatedAfter, CreatedBefore time.Time
	Executors                   []string
	AppVersions                 []string
	IDPrefix                    string
	Limit, Offset               int
}

// ListWorkflows lists the workflows f selects, newest first. A status that
// is not one of WorkflowStatuses is an error of kind shop.ErrInvalid.
func (c *Checkout) ListWorkflows(ctx context.Context, f WorkflowFilter) ([]Workflow, error) {
	opts := []dbos.ListWorkflowsOption{dbos.WithFilterSortDesc(), dbos.WithFilterLimit(f.Limit), dbos.WithFilterOffset(f.Offset)}
	if len(f.Statuses) > 0 {
		statuses := make([]dbos.WorkflowStatusType, len(f.Statuses))
		for i, s := range f.Statuses {
			if !slices.Contains(WorkflowStatuses, s) {
				return nil, shop.Errorf(shop.ErrInvalid, "unknown workflow status %q: want some of %v", s, WorkflowStatuses)
			}
			statuses[i] = dbos.WorkflowStatusType(s)
		}
		opts = append(opts, dbos.WithFilterStatus(statuses...))
	}
	if len(f.Names) > 0 {
		opts = append(opts, dbos.WithFilterName(f.Names...))
	}
	if !f.CreatedAfter.IsZero() {
		opts = append(opts, dbos.WithFilterCreatedAfter(f.CreatedAfter))
	}
	if !f.CreatedBefore.IsZero() {
		opts = append(opts, dbos.WithFilterCreatedBefore(f.CreatedBefore))
	}
	if len(f.Executors) > 0 {
		opts = append(opts, dbos.WithFilterExecutorIDs(f.Executors...))
	}
	if len(f.AppVersions) > 0 {
		opts = append(opts, dbos.WithFilterAppVersion(f.AppVersions...))
	}
	if f.IDPrefix != "" {
		opts = append(opts, dbos.WithFilterWorkflowIDPrefix(f.IDPrefix))
	}
	return c.listWorkflows(ctx, opts...)
}

// Step is one checkpoint of a workflow, as the console shows it.
type Step struct {
	ID          int
	Name        string
	Output      json.RawMessage // as JSON; null when none
	Error       string
	ChildID     string
	StartedAt   time.Time
	CompletedAt time.Time
	// ForkRefused says why the workflow may not be forked from this
	// step; "" when it may.
	ForkRefused string
}

// WorkflowDetail is everything the console shows of one workflow.
type WorkflowDetail struct {
	Workflow
	Input, Output json.RawMessage // as JSON
	Steps         []Step
	Forks         []string            // the workflows forked from this one
	Order         *shop.Order         // a checkout's order, when it placed one
	Ledger        []store.LedgerEntry // the order's moves of stock
}

// Workflow returns one workflow with its checkpoints and, for a checkout,
// its order; an unknown id is an error of kind shop.ErrNotFound.
func (c *Checkout) Workflow(ctx context.Context, id string) (WorkflowDetail, error) {
	dctx := dbos.From(c.dbosCtx, ctx)
	found, err := dbos.ListWorkflows(dctx, dbos.WithFilterWorkflowIDs(id))
	if err != nil {
		return WorkflowDetail{}, fmt.Errorf("reading workflow %s: %w", id, err)
	}
	if len(found) == 0 {
		return WorkflowDetail{}, shop.Errorf(shop.ErrNotFound, "no workflow %q", id)
	}
	w := found[0]
	d := WorkflowDetail{Workflow: toWorkflow(w), Input: toJSON(w.Input), Output: toJSON(w.Output)}
	steps, err := dbos.GetWorkflowSteps(dctx, id)
	if err != nil {
		return d, fmt.Errorf("reading the steps of workflow %s: %w", id, err)
	}
	forks, err := c.listWorkflows(ctx, dbos.WithFilterForkedFrom(id))
	if err != nil {
		return d, err
	}
	for _, f := range forks {
		d.Forks = append(d.Forks, f.ID)
	}
	for _, s := range steps {
		step := Step{ID: s.StepID, Name: s.StepName, Output: toJSON(s.Output), ChildID: s.ChildWorkflowID,
			StartedAt: s.StartedAt, CompletedAt: s.CompletedAt}
		if s.Error != nil {
			step.Error = s.Error.Error()
		}
		d.Steps = append(d.Steps, step)
	}
	if w.Name == WorkflowCheckout {
		if d.Order, err = c.checkoutOrder(ctx, d); err != nil {
			return d, err
		}
		if d.Order != nil {
			if d.Ledger, err = store.OrderLedger(ctx, c.db.Q(), d.Order.ID); err != nil {
				return d, err
			}
		}
	}
	for i := range d.Steps {
		if err := forkRefusal(d, d.Steps[i].ID); err != nil {
			d.Steps[i].ForkRefused = err.Error()
		}
	}
	return d, nil
}

// checkoutOrder returns the order of a checkout, nil when it placed none.
// It is the one its placeOrder step recorded: a fork carries the
// original's step, and the order keyed by the original's id.
func (c *Checkout) checkoutOrder(ctx context.Context, d WorkflowDetail) (*shop.Order, error) {
	for _, s := range d.Steps {
		var placed store.Placed
		if s.Name != stepPlaceOrder || s.Error != "" || json.Unmarshal(s.Output, &placed) != nil || placed.Order.ID == 0 {
			continue
		}
		order, err := store.GetOrder(ctx, c.db.Q(), placed.Order.ID)
		if err != nil {
			return nil, err
		}
		return &order, nil
	}
	return nil, nil
}

// toJSON renders a value DBOS read for the console. DBOS lists what it
// recorded as JSON text, which is kept as it is; anything else is encoded,
// and what does not encode is shown as its text.
func toJSON(v any) json.RawMessage {
	if text, ok := v.(string); ok && json.Valid([]byte(text)) {
		return json.RawMessage(text)
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprint(v))
	}
	return b
}

// Fork starts a new workflow, with a new id, that carries the checkpoints
// of workflow id before startStep and runs on from there. It is refused,
// with an error of kind shop.ErrConflict saying why, where the fork would
// apply one of the checkout's effects a second time (see forkRefusal).
func (c *Checkout) Fork(ctx context.Context, id string, startStep int) (string, error) {
	d, err := c.Workflow(ctx, id)
	if err != nil {
		return "", err
	}
	if err := forkRefusal(d, startStep); err != nil {
		return "", err
	}
	if fork, err := c.liveFork(ctx, id); err != nil {
		return "", err
	} else if fork != "" {
		return "", shop.Errorf(shop.ErrConflict, "workflow %s was already forked as %s, which carries on its work: a second fork would run its order twice", id, fork)
	}
	handle, err := dbos.ForkWorkflow[Result](c.dbosCtx, dbos.ForkWorkflowInput{OriginalWorkflowID: id, StartStep: uint(startStep)})
	if err != nil {
		return "", fmt.Errorf("forking workflow %s from step %d: %w", id, startStep, err)
	}
	return handle.GetWorkflowID(), nil
}

// forkRefusal says why workflow d may not be forked from startStep, or nil:
// a checkout still running is not forked (two runs would work on one
// order), and the fork must not run its effects again (replayRefusal).
func forkRefusal(d WorkflowDetail, startStep int) error {
	if d.Name != WorkflowCheckout {
		return shop.Errorf(shop.ErrConflict, "only checkouts are forked from the console; %s is a %s", d.ID, d.Name)
	}
	if slices.Contains(cancellable, d.Status) {
		return shop.Errorf(shop.ErrConflict, "checkout %s is %s, still running or about to: cancel it before forking it, or two runs would work on one order", d.ID, d.Status)
	}
	return replayRefusal(d, startStep, "forking")
}

// replayRefusal says why checkout d may not be run again from startStep,
// by a fork or a rewind (doing names which), or nil.
//
// What a fork of a checkout does: it gets a new id, and replays the
// checkpoints before startStep; a rewind keeps the id, drops the
// checkpoints from startStep on and runs them again. Either way its order
// is the one placeOrder recorded, keyed by the original's id, and every
// write to it checks the status it moves from (store), so a replay cannot
// settle a payment or release stock that was settled or released already.
// But a replay that runs placeOrder itself places the order again, with a
// payment id no one knows (under a fork's id: a second order, reserving
// the stock again for a purchase the customer made once); one that runs
// createIntent asks the provider for a second intent, which could be paid
// as well as the first; and one of an order already at its end does
// nothing.
func replayRefusal(d WorkflowDetail, startStep int, doing string) error {
	stepIDs := make([]int, len(d.Steps))
	placeStep, intentStep := -1, -1
	for i, s := range d.Steps {
		stepIDs[i] = s.ID
		switch {
		case s.Name == stepPlaceOrder && s.Error == "":
			placeStep = s.ID
		case s.Name == stepCreateIntent:
			intentStep = s.ID
		}
	}
	// A replay starts from a recorded step, or from the one after the
	// last: a widgetstore-5 checkout awaiting its payment has recorded
	// none after placeOrder (and createIntent), handing its placement off
	// without an event.
	next := 0
	if len(stepIDs) > 0 {
		next = slices.Max(stepIDs) + 1
	}
	if !slices.Contains(stepIDs, startStep) && startStep != next {
		return shop.Errorf(shop.ErrInvalid, "checkout %s has no step %d: start from one of its steps %v, or %d after them", d.ID, startStep, stepIDs, next)
	}
	if placeStep < 0 || startStep <= placeStep {
		return shop.Errorf(shop.ErrConflict, "%s checkout %s from step %d would run %s again: a second order for the same purchase, its stock reserved twice", doing, d.ID, startStep, stepPlaceOrder)
	}
	if startStep <= intentStep {
		return shop.Errorf(shop.ErrConflict, "%s checkout %s from step %d would run %s again: a second payment intent for the same order, which the customer could pay twice", doing, d.ID, startStep, stepCreateIntent)
	}
	if d.Order != nil && d.Order.Status.Final() {
		return shop.Errorf(shop.ErrConflict, "order %d of checkout %s is already %s: %s it has nothing left to do", d.Order.ID, d.ID, d.Order.Status, doing)
	}
	return nil
}

// forkDepth bounds how far liveFork follows forks of forks.
const forkDepth = 10

// liveFork returns the id of a fork of workflow id, or of a fork of one of
// its forks, that has not failed (running, done, or cancelled and so
// resumable): it carries on the original's order. "" when there is none.
func (c *Checkout) liveFork(ctx context.Context, id string) (string, error) {
	parents := []string{id}
	for range forkDepth {
		if len(parents) == 0 {
			return "", nil
		}
		forks, err := c.listWorkflows(ctx, dbos.WithFilterForkedFrom(parents...))
		if err != nil {
			return "", err
		}
		parents = parents[:0]
		for _, f := range forks {
			if f.Status != string(dbos.WorkflowStatusError) {
				return f.ID, nil
			}
			parents = append(parents, f.ID)
		}
	}
	return "", nil
}

// FindCheckout returns the id of the checkout of an order, found by its
// order id (digits) or its payment id; unknown, an error of kind
// shop.ErrNotFound.
func (c *Checkout) FindCheckout(ctx context.Context, orderOrPayment string) (string, error) {
	var order shop.Order
	var err error
	if n, convErr := strconv.ParseInt(orderOrPayment, 10, 64); convErr == nil && n > 0 {
		order, err = store.GetOrder(ctx, c.db.Q(), n)
	} else if shop.ValidatePaymentID(orderOrPayment) == nil {
		order, err = store.OrderByPaymentID(ctx, c.db.Q(), orderOrPayment)
	} else {
		return "", shop.Errorf(shop.ErrInvalid, "find a checkout by an order id (a number) or a payment id (pay_…)")
	}
	if errors.Is(err, shop.ErrNotFound) {
		return "", shop.Errorf(shop.ErrNotFound, "no order %q", orderOrPayment)
	}
	if err != nil {
		return "", err
	}
	return order.CheckoutID, nil
}

// Stuck is the work that needs an operator, on one screen.
type Stuck struct {
	// PastDeadline are checkouts whose order is still PENDING past its
	// payment deadline (and a grace for the checkout to cancel it).
	PastDeadline []string
	// DispatchOverdue are checkouts whose paid order the dispatch sweep
	// should have dispatched a sweep or two ago (dispatchOverdueAfter),
	// and has not: no instance sweeps, or its sweeps fail.
	DispatchOverdue []string
	// StaleExecutors are instances whose heartbeat is older than the
	// takeover's silence, with their pending workflows (PostgreSQL only).
	StaleExecutors map[string]time.Time
	StaleWorkflows []Workflow
	Failed         []Workflow // ERROR and MAX_RECOVERY_ATTEMPTS_EXCEEDED, newest first
	Breaches       []string   // store.Audit
	// Mismatched are payments that could not pay their order (another
	// currency, another amount): refunded like any payment owed back, and
	// listed here to be looked into.
	Mismatched []store.Payment
}

// stuckListed bounds each list of Stuck.
const stuckListed = 100

// StuckWork gathers Stuck. silence is how long an instance may be silent
// before it counts as gone.
func (c *Checkout) StuckWork(ctx context.Context, now time.Time, silence time.Duration) (Stuck, error) {
	var s Stuck
	var err error
	if s.PastDeadline, err = store.PendingPastDeadline(ctx, c.db.Q(), now, 2*watchInterval); err != nil {
		return s, err
	}
	if s.DispatchOverdue, err = store.DispatchesOverdue(ctx, c.db.Q(), now.Add(-c.dispatchOverdueAfter()), stuckListed); err != nil {
		return s, err
	}
	s.StaleExecutors = map[string]time.Time{}
	if c.db.Postgres != nil {
		beats, err := store.ExecutorHeartbeats(ctx, c.db.Q())
		if err != nil {
			return s, err
		}
		for id, at := range beats {
			if now.Sub(at) > silence {
				s.StaleExecutors[id] = at
			}
		}
		if len(s.StaleExecutors) > 0 {
			ids := make([]string, 0, len(s.StaleExecutors))
			for id := range s.StaleExecutors {
				ids = append(ids, id)
			}
			if s.StaleWorkflows, err = c.listWorkflows(ctx, dbos.WithFilterExecutorIDs(ids...),
				dbos.WithFilterStatus(dbos.WorkflowStatusPending), dbos.WithFilterLimit(stuckListed)); err != nil {
				return s, err
			}
		}
	}
	if s.Failed, err = c.listWorkflows(ctx, dbos.WithFilterStatus(dbos.WorkflowStatusError, dbos.WorkflowStatusMaxRecoveryAttemptsExceeded),
		dbos.WithFilterSortDesc(), dbos.WithFilterLimit(stuckListed)); err != nil {
		return s, err
	}
	if s.Breaches, err = store.Audit(ctx, c.db.Q()); err != nil {
		return s, err
	}
	if s.Mismatched, err = store.PaymentsMismatched(ctx, c.db.Q(), stuckListed); err != nil {
		return s, err
	}
	return s, nil
}
