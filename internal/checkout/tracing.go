package checkout

import (
	"cmp"
	"context"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// Tracing (docs/tracing.md). With a tracer (LaunchConfig.Tracer) every
// step of a checkout runs in a span named for the step's durable name,
// with the ids of its workflow and its order; a checkout started in a
// request is a child of the request's span (traceFrom), one recovered at
// a start has no parent. Without one nothing of this runs: the steps go
// straight to DBOS.
//
// A span only looks on. The step's output, its error and its checkpoint
// are DBOS's alone, and nothing a span does can fail: exporting is the
// tracer provider's, in the background.

// The attributes of the checkout's spans; web's request spans carry
// AttrWorkflowID too.
const (
	AttrWorkflowID = attribute.Key("workflow.id")
	AttrOrderID    = attribute.Key("order.id")
	// AttrOrderIDs lists the orders a dispatch sweep dispatched.
	AttrOrderIDs = attribute.Key("order.ids")
)

// spanDispatchSweep names the span of a dispatch sweep's transaction.
const spanDispatchSweep = "checkout.dispatchSweep"

// tracerName names the checkout's tracer, as the OpenTelemetry API asks:
// the instrumenting package.
const tracerName = "github.com/widgetstore/widgetstore/internal/checkout"

// runTransaction is dbos.RunAsTransaction on the shop's data source, as the
// step name, in a span when the checkout traces. orderID is the order the
// step is about, 0 when it is not known yet (the span takes the id of the
// order the step returns).
func runTransaction[R any](ctx dbos.Context, c *Checkout, name string, orderID int64, fn dbos.Txn[R], opts ...dbos.StepOption) (R, error) {
	// DBOS keeps the first step name given.
	opts = append([]dbos.StepOption{dbos.WithStepName(name)}, opts...)
	if c.tracer == nil {
		return dbos.RunAsTransaction(ctx, c.ds, fn, opts...)
	}
	return traced(ctx, c, name, orderID, func(ctx dbos.Context) (R, error) { return dbos.RunAsTransaction(ctx, c.ds, fn, opts...) })
}

// runStep is dbos.RunAsStep as the step name, in a span when the checkout
// traces; orderID as for runTransaction.
func runStep[R any](ctx dbos.Context, c *Checkout, name string, orderID int64, fn dbos.Step[R], opts ...dbos.StepOption) (R, error) {
	opts = append([]dbos.StepOption{dbos.WithStepName(name)}, opts...)
	if c.tracer == nil {
		return dbos.RunAsStep(ctx, fn, opts...)
	}
	return traced(ctx, c, name, orderID, func(ctx dbos.Context) (R, error) { return dbos.RunAsStep(ctx, fn, opts...) })
}

// recv is dbos.Recv, in a span named for the step DBOS records
// ("DBOS.recv") when the checkout traces. A wait that times out is no
// error of the span's.
func recv[R any](ctx dbos.Context, c *Checkout, orderID int64, topic string, timeout time.Duration) (R, error) {
	if c.tracer == nil {
		return dbos.Recv[R](ctx, topic, timeout)
	}
	return traced(ctx, c, "DBOS.recv", orderID, func(ctx dbos.Context) (R, error) { return dbos.Recv[R](ctx, topic, timeout) })
}

// sleep is dbos.Sleep, in a span ("DBOS.sleep") when the checkout traces.
func sleep(ctx dbos.Context, c *Checkout, orderID int64, d time.Duration) (time.Duration, error) {
	if c.tracer == nil {
		return dbos.Sleep(ctx, d)
	}
	return traced(ctx, c, "DBOS.sleep", orderID, func(ctx dbos.Context) (time.Duration, error) { return dbos.Sleep(ctx, d) })
}

// traced runs step in a span named name, which its context carries (a
// call the step makes may take it further). The span ends when the step
// returns, and says how it went.
func traced[R any](ctx dbos.Context, c *Checkout, name string, orderID int64, step func(dbos.Context) (R, error)) (R, error) {
	workflowID, _ := dbos.GetWorkflowID(ctx) // "" outside a workflow, which no step is
	spanCtx, span := c.tracer.Start(ctx, name, trace.WithAttributes(AttrWorkflowID.String(workflowID)))
	defer span.End()
	// From keeps ctx's DBOS state: spanCtx descends from it.
	out, err := step(dbos.From(ctx, spanCtx))
	if id := cmp.Or(orderID, orderOf(out)); id != 0 {
		span.SetAttributes(AttrOrderID.Int64(id))
	}
	if err != nil && !isTimeout(err) {
		failSpan(span, err)
	}
	return out, err
}

// failSpan marks the span as failed with err.
func failSpan(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

// orderOf is the id of the order a step's output holds, or 0.
func orderOf(output any) int64 {
	switch o := output.(type) {
	case store.Placed:
		return o.Order.ID
	case placedOutput:
		return o.Order.ID
	case shop.Order:
		return o.ID
	case orderOutput:
		return o.ID
	}
	return 0
}

// traceFrom is the context a workflow started in a request starts from:
// the checkout's DBOS context, without the request's cancellation (DBOS
// would cancel the workflow, durably, when the request ends) nor any of
// its values but its span's identity, which the workflow's spans take as
// their parent.
func (c *Checkout) traceFrom(reqCtx context.Context) dbos.Context {
	if c.tracer == nil {
		return c.dbosCtx
	}
	parent := trace.SpanContextFromContext(reqCtx)
	if !parent.IsValid() {
		return c.dbosCtx
	}
	return dbos.From(c.dbosCtx, trace.ContextWithSpanContext(c.dbosCtx, parent))
}

// tracedSweep runs a dispatch sweep's transaction, sweep, in a span when
// the checkout traces: it belongs to no checkout (it dispatches the orders
// of many), so it has no workflow.id, and order.ids lists the orders it
// dispatched.
func tracedSweep(ctx context.Context, c *Checkout, sweep func(context.Context) ([]shop.Order, error)) ([]shop.Order, error) {
	if c.tracer == nil {
		return sweep(ctx)
	}
	spanCtx, span := c.tracer.Start(ctx, spanDispatchSweep)
	defer span.End()
	dispatched, err := sweep(spanCtx)
	ids := make([]int64, len(dispatched))
	for i, o := range dispatched {
		ids[i] = o.ID
	}
	span.SetAttributes(AttrOrderIDs.Int64Slice(ids))
	if err != nil {
		failSpan(span, err)
	}
	return dispatched, err
}
