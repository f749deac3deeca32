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
// Screen): in the transaction that places the order, which reads the
// client's latest orders (store.RefusalStreak, on the index
// orders_client_created). Not for the shop's own callers (no client), nor
// with the per-client limits off (-pending-units 0): with them off, say
// where every customer has the proxy's address, one customer's refusals
// would stop all.
//
// A checkout of this build (input.Version) screens. One started by an
// older build asks the patch: widgetstore-3's recorded its marker and
// screens, widgetstore-2's (whose first step is checkout.placeOrder) does
// not, and each replays as it ran. Telling them apart by their input
// costs the new checkouts nothing, where the patch's marker is a
// transaction of its own (docs/performance.md); the patch goes with the
// last checkout started before this build.
func (c *Checkout) screening(ctx dbos.Context, in input) (store.Screen, error) {
	if in.Version < version4 {
		if patched, err := dbos.Patch(ctx, patchScreening); err != nil || !patched {
			return store.Screen{}, err
		}
	}
	if c.cfg.PendingUnitsPerClient == 0 {
		return store.Screen{}, nil
	}
	return store.Screen{Streak: screenStreak, Window: screenWindow}, nil
}
