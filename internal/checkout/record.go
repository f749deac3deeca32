package checkout

import (
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// What DBOS records of a checkout, its input and its steps' outputs, is
// kept for the retention's 30 days and shown in the console, so it holds
// no personal data: the customer's email and the client's address go to
// the checkout's contact row (store.SaveContact), which placeOrder takes
// into the order's row, and the steps that need the email read it there.

// input is the checkout's workflow input: a Request without whom it is for.
type input struct {
	ProductID   int64
	Quantity    int
	Lines       []shop.Line `json:",omitempty"`
	ViaProvider bool        `json:",omitempty"`
	// Version names the step sequence of the build that started the
	// checkout (the versions below); 0 for widgetstore-2's and
	// widgetstore-3's.
	Version int `json:",omitempty"`
	// Contact says that the request saved the checkout's contact.
	Contact bool `json:",omitempty"`
	// Email and Client are the contact as the builds before version4
	// recorded it, in the input itself; this build never sets them.
	Email  string `json:",omitempty"`
	Client string `json:",omitempty"`
}

// The step sequences that input.Version names. A checkout replays on the
// path of the version that started it; the paths of the older versions go
// once no checkout of theirs can be pending (docs/design.md, "Changing a
// workflow").
const (
	// version4, widgetstore-4's: the screening without dbos.Patch's marker
	// (screening), the dispatch waited for without a durable sleep
	// (awaitDispatchDone), the payment intent expired without the patch
	// "expireIntent" (expireIntent). Before it, 0: both patches and the
	// sleep.
	version4 = 4
	// version5, widgetstore-5's.
	version5 = 5
	// checkoutVersion is input.Version for the checkouts this build starts.
	checkoutVersion = version5
)

// lines is what the checkout buys, cart or not.
func (in input) lines() []shop.Line {
	if len(in.Lines) > 0 {
		return in.Lines
	}
	return []shop.Line{{ProductID: in.ProductID, Quantity: in.Quantity}}
}

// orderOutput is an order as a step's output records it: without its
// email address, saying only whether it has one. An output recorded by a
// build before version4 has the address itself.
type orderOutput struct {
	shop.Order
	Receipts bool `json:",omitempty"`
}

// recorded is o as a step's output records it.
func recorded(o shop.Order) orderOutput {
	r := orderOutput{Order: o, Receipts: o.Email != ""}
	r.Email = ""
	return r
}

// receipts says whether the order has an address to send receipts to.
func (o orderOutput) receipts() bool { return o.Receipts || o.Email != "" }

// placedOutput is placeOrder's output: store.Placed, its order recorded
// without its email address (orderOutput). Its JSON is store.Placed's, so
// the outputs of earlier builds read back the same.
type placedOutput struct {
	store.Placed
	Receipts bool `json:",omitempty"`
}

// recordedPlaced is p as placeOrder's output records it.
func recordedPlaced(p store.Placed) placedOutput {
	o := recorded(p.Order)
	p.Order = o.Order
	return placedOutput{Placed: p, Receipts: o.Receipts}
}

// order is the order placed, and whether it has receipts to send.
func (p placedOutput) order() orderOutput {
	return orderOutput{Order: p.Order, Receipts: p.Receipts}
}
