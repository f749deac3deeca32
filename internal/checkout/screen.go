package checkout

import (
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

// screening is how the checkout's order is screened (store.NewOrder's
// Screen), when the checkout has the screening patch: in the transaction
// that places the order, which reads the client's latest orders
// (store.RefusalStreak, on the index orders_client_created). A checkout
// started before the patch skips the screening, and replays as it ran.
// Not for the shop's own callers, nor with the per-client limits off
// (-pending-units 0): with them off, say where every customer has the
// proxy's address, one customer's refusals would stop all.
//
// It costs a screened checkout the patch's marker, a checkpoint that
// dbos.Patch writes in a transaction of its own the first time a checkout
// passes here, and the read in placeOrder's transaction.
// docs/performance.md has the statements they add to a purchase.
func (c *Checkout) screening(ctx dbos.Context, req Request) (store.Screen, error) {
	patched, err := dbos.Patch(ctx, patchScreening)
	if err != nil || !patched || req.Client == "" || c.cfg.PendingUnitsPerClient == 0 {
		return store.Screen{}, err
	}
	return store.Screen{Streak: screenStreak, Window: screenWindow}, nil
}
