package checkout

import (
	"context"
	"errors"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/store"
)

// patchScreening is the patch that brought the screening into the
// checkout (dbos.Patch): a checkout that has it in its history screens its
// order before placing it; one started before it (widgetstore-2, whose
// first step is checkout.placeOrder) does not, and never will. The name is
// durable: it is written in every screened checkout's history.
const patchScreening = "screenOrder"

// The screening refuses a client whose last screenStreak orders, all
// placed within screenWindow, were all refused by the payment provider: a
// card tester's trail, card after card declined. It is refused until the
// oldest of them is screenWindow old, then may try again; one paid (or
// unpaid, or out of stock) order among them breaks the streak. It is one
// of the per-client limits: Config.PendingUnitsPerClient 0 turns it off.
const (
	screenStreak = 5
	screenWindow = 10 * time.Minute
)

// screening is what checkout.screenOrder decided.
type screening struct {
	// RefusedUntil is when the client may try again; zero: not refused.
	RefusedUntil time.Time `json:",omitzero"`
}

// screen screens the checkout's order before it is placed, when the
// checkout has the screening patch, and reports whether that ended the
// checkout: refused, the refusal is published (EventPlaced) and the
// checkout ends without an order; failed, so is the failure. A checkout
// started before the patch skips the screening, and replays as it ran.
//
// It costs a screened checkout two checkpoints in the system database:
// the patch's marker (dbos.Patch writes one, in a transaction of its own,
// the first time a checkout passes here) and the step's output; the step
// reads the client's latest orders (store.RefusalStreak, on the index
// orders_client_created) outside any transaction. docs/performance.md has
// the statements they add to a purchase.
func (c *Checkout) screen(ctx dbos.Context, req Request) (ended bool, err error) {
	patched, err := dbos.Patch(ctx, patchScreening)
	if err != nil || !patched {
		return c.screenFailed(ctx, req, err)
	}
	screened, err := dbos.RunAsStep(ctx, func(ctx context.Context) (screening, error) {
		// Not for the shop's own callers, nor with the per-client limits off
		// (-pending-units 0): with them off, say where every customer has
		// the proxy's address, one customer's refusals would stop all.
		if req.Client == "" || c.cfg.PendingUnitsPerClient == 0 {
			return screening{}, nil
		}
		until, err := store.RefusalStreak(ctx, c.db.Q(), req.Client, screenStreak, time.Now().Add(-screenWindow), screenWindow)
		return screening{RefusedUntil: until}, err
	}, dbos.WithStepName("checkout.screenOrder"))
	if err != nil || screened.RefusedUntil.IsZero() {
		return c.screenFailed(ctx, req, err)
	}
	// Limited and HeldUntil as well as Screened: a widgetstore-2 instance
	// asked for this key during a rolling upgrade knows only those, and
	// answers 429 with the right Retry-After.
	refusal := asked(req)
	refusal.Screened, refusal.Limited, refusal.HeldUntil = true, true, screened.RefusedUntil
	return true, dbos.SetEvent(ctx, EventPlaced, refusal)
}

// screenFailed ends the checkout when the screening failed with err, and
// tells the waiting client now rather than at its timeout, as a failed
// placement does; a nil err ends nothing.
func (c *Checkout) screenFailed(ctx dbos.Context, req Request, err error) (ended bool, _ error) {
	if err == nil {
		return false, nil
	}
	failed := asked(req)
	failed.Failed = err.Error()
	return true, errors.Join(err, dbos.SetEvent(ctx, EventPlaced, failed))
}
