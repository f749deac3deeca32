package checkout

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// publishWait bounds how long a request waits for a checkout to place its
// order, which it does in its first step.
const publishWait = 30 * time.Second

// Placement is what a checkout placed, as its customer is told.
type Placement struct {
	OrderID         int64
	PaymentID       string // what the seed's webhook reports on
	TotalCents      int64
	PaymentDeadline time.Time
	// Where the customer pays, when the checkout pays through the
	// provider (Request.ViaProvider).
	IntentID, PayURL string
}

// Start is Place for the seed's clients: it returns the payment id.
func (c *Checkout) Start(reqCtx context.Context, key string, req Request) (paymentID string, err error) {
	p, err := c.Place(reqCtx, key, req)
	return p.PaymentID, err
}

// Place starts the checkout for an idempotency key, or finds the one the
// key already started, and returns what it placed: the order, and what the
// customer pays against. Errors meant for the client have a shop error
// kind: invalid request, unknown product, a conflict (out of stock, or the
// key used for another purchase), or limited (the client holds as many
// units awaiting payment as it may); any other error is internal. A key
// refused for the limit is used: its checkout ended, and it answers the
// same refusal again.
//
// The checkout it starts hands it the placement (placementWaiters), at no
// cost to the database; of one it finds started, the placement is read
// from the checkout's records (awaitPlacement).
func (c *Checkout) Place(reqCtx context.Context, key string, req Request) (Placement, error) {
	in, err := c.admit(reqCtx, key, req)
	if err != nil {
		return Placement{}, err
	}
	waiter := c.placements.register(key)
	defer c.placements.giveUp(waiter)
	started, err := c.start(reqCtx, key, req, in)
	if err != nil {
		return Placement{}, fmt.Errorf("starting checkout %s: %w", key, err)
	}
	published, err := awaitDatabase(reqCtx, c, publishWait, func(ctx context.Context) (placement, error) {
		return c.awaitPlacement(ctx, key, waiter, started)
	})
	if err != nil {
		return Placement{}, fmt.Errorf("waiting for checkout %s to place its order: %w", key, err)
	}
	if !published.asked(in) {
		// A key names one purchase: the same key for another is a client's bug.
		return Placement{}, shop.Errorf(shop.ErrConflict, "idempotency key %q was already used for another purchase", key)
	}
	return c.answer(reqCtx, key, published.outcome())
}

// admit checks a request before a checkout is started for it, and returns
// the checkout's input.
func (c *Checkout) admit(ctx context.Context, key string, req Request) (input, error) {
	if err := shop.ValidateKey(key); err != nil {
		return input{}, err
	}
	in := input{ProductID: req.ProductID, Quantity: req.Quantity, ViaProvider: req.ViaProvider, Version: checkoutVersion}
	if len(req.Lines) == 0 {
		if err := shop.ValidateQuantity(req.Quantity); err != nil {
			return in, err
		}
	} else {
		lines, err := shop.NormalizeLines(req.Lines)
		if err != nil {
			return in, err
		}
		in.Lines = lines
	}
	if req.Email != "" {
		if _, err := receipt.ValidateAddress(req.Email); err != nil {
			return in, err
		}
	}
	if req.ViaProvider && c.provider == nil {
		return in, errors.New("a checkout through the payment provider, but the shop has none")
	}
	// An unknown product is refused before a workflow is started for it.
	for _, l := range in.lines() {
		if err := c.checkProduct(ctx, l.ProductID); err != nil {
			return in, err
		}
	}
	return in, nil
}

// start starts the checkout of in under key, or finds it started, and
// says which: started, it runs in this process. Whom it is for is saved
// first, in a row of its own (store.SaveContact), not in the workflow's
// input; the client's address only while a limit reads it.
func (c *Checkout) start(ctx context.Context, key string, req Request, in input) (started bool, err error) {
	if err := c.writable(ctx); err != nil {
		return false, err
	}
	contact := store.Contact{Email: req.Email}
	if c.cfg.PendingUnitsPerClient > 0 {
		contact.Client = req.Client
	}
	if contact != (store.Contact{}) {
		if err := store.SaveContact(ctx, c.db.Q(), key, contact, time.Now()); err != nil {
			return false, err
		}
		in.Contact = true
	}
	// Rejecting a key already used says whether this call inserted the
	// checkout's row, for what returning the existing one cost: the
	// insert, rolled back instead of committed.
	_, err = awaitDatabase(ctx, c, startWait, func(context.Context) (dbos.WorkflowHandle[Result], error) {
		return dbos.RunWorkflow(c.traceFrom(ctx), c.checkout, in, dbos.WithWorkflowID(key),
			dbos.WithWorkflowIDReusePolicy(dbos.WorkflowIDReusePolicyReject))
	})
	if errors.Is(err, dbos.ErrWorkflowIDInUse) {
		return false, nil
	}
	return err == nil, err
}

// answer is what the client that started a checkout is told of its outcome.
func (c *Checkout) answer(ctx context.Context, key string, o outcome) (Placement, error) {
	switch o := o.(type) {
	case placed:
		return Placement{OrderID: o.order.ID, PaymentID: o.order.PaymentID, TotalCents: o.order.TotalCents,
			PaymentDeadline: o.order.PaymentDeadline, IntentID: o.intent.ID, PayURL: o.intent.PayURL}, nil
	case outOfStock:
		return Placement{}, c.outOfStock(ctx, o.unavailable)
	case limited:
		// The client may try again, with a new key, once the first of its
		// pending orders reaches its payment deadline: paid, refused or
		// timed out by then, it holds its units no more. (This key answers
		// the same refusal again.)
		wait := max(time.Until(o.until), time.Second)
		return Placement{}, shop.Limitedf(wait, "you hold %d units in checkouts awaiting payment and may hold at most %d: pay for them, or try again in %.0f s",
			o.held, o.limit, math.Ceil(wait.Seconds()))
	case screened:
		wait := max(time.Until(o.until), time.Second)
		return Placement{}, shop.Limitedf(wait, "your last %d payments were all refused: try again in %.0f s", screenStreak, math.Ceil(wait.Seconds()))
	case failed:
		if o.reason == shop.ReasonProviderDown {
			// The key's checkout has ended: the same key answers this
			// again, and the client's retry needs a new one.
			return Placement{}, &shop.Error{Kind: shop.ErrUnavailable, RetryAfter: providerDownRetry,
				Message: o.reason + ": nothing was charged and the order is cancelled; try again in a moment with a new key",
				Detail:  map[string]any{"retry_with_new_key": true}}
		}
		return Placement{}, fmt.Errorf("checkout %s could not place its order: %s", key, o.reason)
	}
	return Placement{}, fmt.Errorf("checkout %s published an outcome of type %T", key, o)
}

// outOfStock is the conflict a checkout that stock could not cover
// answers: it names the products short, and lists them in its detail.
func (c *Checkout) outOfStock(ctx context.Context, short []shop.Shortage) error {
	names := make([]string, len(short))
	for i := range short {
		short[i].Product = fmt.Sprintf("product %d", short[i].ProductID)
		if p, err := store.GetProduct(ctx, c.db.Q(), short[i].ProductID); err == nil {
			short[i].Product = p.Name
		}
		names[i] = short[i].Product
	}
	err := shop.Errorf(shop.ErrConflict, "%s not available in that quantity", strings.Join(names, ", "))
	err.(*shop.Error).Detail = map[string]any{"unavailable": short}
	return err
}

// providerDownRetry is the Retry-After of a checkout that could not reach
// the payment provider: its intent was tried for a few seconds already.
const providerDownRetry = 5 * time.Second

// startWait bounds how long a request waits for DBOS to record a new
// checkout. DBOS retries a write that failed for want of the database
// until it succeeds, with a delay that doubles up to 30 s, so a request
// caught by an outage (a failover) would wait on long after the database
// is back.
const startWait = 5 * time.Second

// awaitDatabase runs fn, a call into DBOS, with a context that ends with
// ctx, and waits for it at most limit, and only while the database takes
// writes: once the watch sees a write fail after the wait began, it gives
// up with store.ErrSlow, and the client is answered 503, to send the same
// key again (DBOS retries its writes until the database is back, and
// would keep the request waiting through the outage and its backoff). What
// fn started goes on; the retry finds it.
func awaitDatabase[T any](ctx context.Context, c *Checkout, limit time.Duration, fn func(context.Context) (T, error)) (T, error) {
	began := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends fn's wait when the answer is given up on
	type outcome struct {
		value T
		err   error
	}
	done := make(chan outcome, 1)
	go func() {
		v, err := fn(ctx)
		done <- outcome{v, err}
	}()
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	poll := time.NewTicker(healthPoll)
	defer poll.Stop()
	var zero T
	for {
		select {
		case o := <-done:
			return o.value, o.err
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-timeout.C:
			return zero, fmt.Errorf("no answer from the database in %v: %w", limit, store.ErrSlow)
		case <-poll.C:
			if err := c.failedSince(began); err != nil {
				return zero, fmt.Errorf("%w: %w", store.ErrSlow, err)
			}
		}
	}
}

// healthPoll is how often a request waiting on DBOS looks at what the
// watch says of the database.
const healthPoll = 100 * time.Millisecond

// checkProduct returns an error of kind shop.ErrNotFound for a product that
// is not in the catalog. Products are never deleted (orders refer to them),
// so one seen once is remembered and not read again.
func (c *Checkout) checkProduct(ctx context.Context, id int64) error {
	if _, ok := c.knownProducts.Load(id); ok {
		return nil
	}
	if _, err := store.GetProduct(ctx, c.db.Q(), id); err != nil {
		return err
	}
	c.knownProducts.Store(id, struct{}{})
	return nil
}

// Pay applies the report of the seed's webhook on a payment id and returns
// the order it is about. The report is applied in one transaction that
// settles the order (paid: PAID, if its deadline has not passed; failed:
// CANCELLED, stock released) and sends the word to the checkout waiting
// for it, so a crash leaves both or neither. The first report wins:
// reporting the same status again is harmless and answers the same; an
// unknown payment id, or a contradicting status, is an error with a shop
// error kind. A payment that comes too late, or to an order settled
// otherwise, is recorded as taken and owed back: its refund starts, and
// the answer is a conflict that says so.
func (c *Checkout) Pay(ctx context.Context, paymentID string, status shop.PaymentStatus) (shop.Order, error) {
	s, err := c.settle(ctx, store.PaymentReport{PaymentID: paymentID, Status: status, Ref: paymentID, Provider: store.SeedProvider})
	if err != nil {
		return s.Order, err
	}
	return s.Order, settled(s.Order, status)
}

// HandleEvent applies a payment provider's webhook event, verified
// already: a payment succeeded or failed on a checkout's intent
// (payment.Event.Outcome). An event applied before is acknowledged without
// effect; a payment the order does not keep (late, or not the order's
// amount in the shop's currency) is owed back, and its refund is started.
// It returns the order the event is about. Events that settle nothing are
// acknowledged and ignored, with a debug line.
func (c *Checkout) HandleEvent(ctx context.Context, e payment.Event) (store.Settlement, error) {
	status := e.Outcome()
	if status == "" {
		c.logger.Debug("a payment event that settles nothing: acknowledged", "event", e.ID, "type", e.Type, "intent", e.IntentID)
		return store.Settlement{}, nil
	}
	if e.CheckoutID == "" || e.IntentID == "" {
		return store.Settlement{}, shop.Errorf(shop.ErrInvalid, "event %s names no checkout or no payment intent", e.ID)
	}
	report := store.PaymentReport{CheckoutID: e.CheckoutID, Status: status, Ref: e.IntentID,
		Provider: "provider", AmountCents: e.AmountCents, EventID: e.ID}
	if status == shop.PaymentPaid && e.Currency != Currency {
		report.Mismatch = fmt.Sprintf("taken in %q; the shop sells in %q", e.Currency, Currency)
	}
	s, err := c.settle(ctx, report)
	if err != nil || !s.Replayed || status != shop.PaymentPaid {
		return s, err
	}
	// A replay: the refund its first delivery owed may not have started,
	// if the shop died right after that delivery's commit.
	if p, err := store.GetPayment(ctx, c.db.Q(), e.IntentID); err == nil && p.RefundState == shop.RefundDue {
		return s, c.startRefund(e.IntentID)
	}
	return s, nil
}

// settle applies a payment report, and wakes the order's checkout: in
// the same transaction, with the word, a checkout before version5; after
// it, one waiting here (settlements). Then it starts the refund of a
// payment the order did not keep.
func (c *Checkout) settle(ctx context.Context, r store.PaymentReport) (store.Settlement, error) {
	var s store.Settlement
	err := c.db.InTx(ctx, func(tx dbos.Tx) error {
		var err error
		s, err = store.SettlePayment(ctx, tx, r, time.Now())
		if err != nil || !s.Changed {
			return err
		}
		if r.Status == shop.PaymentPaid {
			if err := c.enqueueReceipt(ctx, tx, s.Order, receipt.StagePaid, 0, s.Order.PaidAt); err != nil {
				return err
			}
		}
		if s.Order.CheckoutVersion >= version5 {
			return nil // its checkout reads the order's row (awaitSettlement)
		}
		word := paymentWord{Status: r.Status, PaidAt: s.Order.PaidAt}
		if err := dbos.Send(c.dbosCtx, s.Order.CheckoutID, word, topicPayment,
			dbos.WithSendTransaction(tx), dbos.WithIdempotencyKey(r.Ref)); err != nil {
			return fmt.Errorf("telling checkout %s of payment %s: %w", s.Order.CheckoutID, r.Ref, err)
		}
		return nil
	})
	if err != nil {
		c.metrics.paymentReported(s.Order, false, err) // rolled back
		return s, err
	}
	if s.Changed {
		c.settlements.settled(s.Order.ID)
		// Its paid receipt, enqueued above: a checkout before version5
		// sends it in a step of its own.
		if r.Status == shop.PaymentPaid && s.Order.Email != "" && s.Order.CheckoutVersion >= version5 {
			c.queueReceipt(s.Order.ID, receipt.StagePaid)
		}
	}
	c.metrics.paymentReported(s.Order, s.Changed, settled(s.Order, r.Status))
	if s.Mismatch != "" {
		c.logger.Error("a payment that cannot pay its order: refunding it; it is listed for the operator", "payment", r.Ref,
			"order", s.Order.ID, "mismatch", s.Mismatch)
	}
	if s.RefundDue {
		c.logger.Warn("a payment came that no order keeps: refunding it", "payment", r.Ref, "order", s.Order.ID,
			"order_status", s.Order.Status)
		// Should the shop die before this, the payment is found owed
		// by the watch's sweep (and by the event's redelivery).
		if err := c.startRefund(r.Ref); err != nil {
			c.logger.Error("starting a refund", "payment", r.Ref, "err", err)
		}
	}
	return s, nil
}

// settled says whether an order agrees with a reported status: nil when
// the report settled it or is a redelivery, a conflict otherwise.
func settled(order shop.Order, status shop.PaymentStatus) error {
	refunding := ""
	if status == shop.PaymentPaid {
		refunding = "; the payment will be refunded"
	}
	switch {
	case status == shop.PaymentPaid && (order.Status == shop.StatusPaid || order.Status == shop.StatusDispatched):
		return nil
	case status == shop.PaymentFailed && order.Status == shop.StatusCancelled && order.CancelReason == shop.ReasonPaymentFailed:
		return nil
	case order.Status == shop.StatusCancelled:
		return shop.Errorf(shop.ErrConflict, "order %d was cancelled (%s); payment not applied%s", order.ID, order.CancelReason, refunding)
	case order.Status == shop.StatusPending:
		return shop.Errorf(shop.ErrConflict, "order %d is past its payment deadline; payment not applied%s", order.ID, refunding)
	default:
		return shop.Errorf(shop.ErrConflict, "order %d is already %s", order.ID, order.Status)
	}
}

// isTimeout reports whether err is a DBOS wait that ran out of time.
func isTimeout(err error) bool {
	return errors.Is(err, &dbos.Error{Code: dbos.ErrorCodeTimeout})
}

// Found is an order as its customer sees it: whole, with where it is paid.
type Found struct {
	shop.Order
	PayURL string // "" when it is not paid through the provider
}

// FindByKey returns the order of the checkout of an idempotency key, or an
// error of kind shop.ErrNotFound. The key is the customer's own secret:
// knowing it is what entitles one to see the order.
func (c *Checkout) FindByKey(ctx context.Context, key string) (Found, error) {
	if err := shop.ValidateKey(key); err != nil {
		return Found{}, err
	}
	o, err := store.OrderByCheckoutID(ctx, c.db.Q(), key)
	if err != nil {
		return Found{}, err
	}
	return c.found(ctx, o, nil)
}

// FindPlaced is FindByKey for the client that has just had the placement
// of the key's checkout from Place: its page to pay on is not read again.
func (c *Checkout) FindPlaced(ctx context.Context, key string, placed Placement) (Found, error) {
	o, err := store.OrderByCheckoutID(ctx, c.db.Q(), key)
	if err != nil {
		return Found{}, err
	}
	return c.found(ctx, o, &placed)
}

// FindByPaymentID returns the order of a payment id, or an error of kind
// shop.ErrNotFound.
func (c *Checkout) FindByPaymentID(ctx context.Context, paymentID string) (Found, error) {
	if err := shop.ValidatePaymentID(paymentID); err != nil {
		return Found{}, err
	}
	o, err := store.OrderByPaymentID(ctx, c.db.Q(), paymentID)
	if err != nil {
		return Found{}, err
	}
	return c.found(ctx, o, nil)
}

// found completes an order with its lines and, while it awaits payment,
// the page its customer pays on: placed's, or else the one its checkout's
// createIntent recorded (none, before it has, or without the provider).
func (c *Checkout) found(ctx context.Context, o shop.Order, placed *Placement) (Found, error) {
	f := Found{Order: o}
	var err error
	if f.Lines, err = store.OrderLines(ctx, c.db.Q(), o.ID); err != nil {
		return f, err
	}
	switch {
	case o.Status != shop.StatusPending:
	case placed != nil:
		f.PayURL = placed.PayURL
	default:
		if f.PayURL, err = c.recordedPayURL(ctx, o.CheckoutID); err != nil {
			return f, err
		}
	}
	return f, nil
}
