package web_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/web"
)

// TestBrowserConsole drives the operator console in a real Chromium, with
// an operator token: the shop's page shows a customer no operator control
// and asks no operator route; the console signs in, finds a checkout by its
// order id, shows its steps, cancels it behind a confirmation, shows a
// failed checkout's error with no Resume button, forks it from its failed
// step and follows the fork to its end, rewinds another failed checkout in
// place, cancels two in bulk by a filter; the audit log shows the actions,
// and the shop's page, signed in, shows the operator's controls.
func TestBrowserConsole(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	s := newTestServerWith(t, dbtest.NewDatabase(t, "sqlite"), browserConfig, web.Options{OperatorToken: []byte(consoleToken)})
	b := newBrowser(t, chromium)

	// 1. A customer: no operator controls, no operator requests.
	b.do("opening the shop", chromedp.Navigate(s.URL))
	b.waitJS("the product cards and the sign-in link", `document.querySelectorAll('.product[data-product-id]').length > 0 && `+
		visibleJS("#operator-signin"), waitTimeout)
	for _, sel := range []string{"#restock", "#crash", "#operator"} {
		if b.visible(sel) {
			b.fatalf("a customer is shown %s", sel)
		}
	}
	time.Sleep(operatorPoll) // a page that polled the operator's routes would have by now
	asked := `performance.getEntriesByType('resource').filter((e) => /\/api\/(audit|workflows)/.test(e.name)).length`
	if n := runT(b, "counting the operator's requests", chromedp.Evaluate[int](asked)); n != 0 {
		b.fatalf("a customer's page asked the operator's routes %d times", n)
	}

	// 2. Sign in on the console: a wrong token is refused, the right one opens it.
	b.do("opening the console", chromedp.Navigate(s.URL+"/console"))
	b.waitJS("the sign-in form", visibleJS("#signin")+` && !`+visibleJS("#console"), waitTimeout)
	b.do("signing in with a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "wrong"), chromedp.Click(chromedp.CSS("#signin-button")))
	b.waitJS("the refusal", visibleJS("#signin-error")+` && `+textJS("#signin-error")+`.includes('wrong')`, waitTimeout)
	b.do("signing in", chromedp.SendKeys(chromedp.CSS("#token"), consoleToken), chromedp.Click(chromedp.CSS("#signin-button")))
	b.waitJS("the console", visibleJS("#console")+` && !`+visibleJS("#signin"), waitTimeout)
	if cookieSeen := runT(b, "reading document.cookie", chromedp.Evaluate[string](`document.cookie`)); cookieSeen != "" {
		b.fatalf("the page's script can read the cookie %q: it must be HttpOnly", cookieSeen)
	}

	// 3. Find a pending checkout by its order id and read its steps.
	const key = "browser-console-pending"
	if r := s.do(t, "POST", "/checkout/"+key, ""); r.status != 200 {
		b.fatalf("POST /checkout/%s: %d %s", key, r.status, r.body)
	}
	orderID := strconv.FormatInt(listOrders(t, s)[0].ID, 10)
	b.do("finding order "+orderID, chromedp.SendKeys(chromedp.CSS("#find-q"), orderID), chromedp.Click(chromedp.CSS("#find-button")))
	b.waitJS("the checkout of order "+orderID, visibleJS("#detail")+` && `+textJS("#d-id")+` === '`+key+`' && `+
		textJS("#d-order-id")+` === '`+orderID+`' && `+textJS("#d-status")+` === 'PENDING' && `+
		`!!document.querySelector('#steps-body tr[data-step-name="checkout.placeOrder"]') && `+
		textJS("#d-ledger")+`.startsWith('reserve -1')`, waitTimeout)
	if !b.visible("#d-cancel") || b.visible("#d-resume") {
		b.fatalf("a pending checkout: want Cancel and no Resume")
	}

	// 4. Cancel it, behind a confirmation.
	b.do("clicking Cancel", chromedp.Click(chromedp.CSS("#d-cancel")))
	b.waitJS("the confirmation", visibleJS("#confirm"), waitTimeout)
	if status := b.text("#d-status"); status != "PENDING" {
		b.fatalf("Cancel acted before its confirmation: %s", status)
	}
	b.do("confirming", chromedp.Click(chromedp.CSS("#confirm-yes")))
	b.waitJS("the checkout CANCELLED with Resume offered", textJS("#d-status")+` === 'CANCELLED' && `+visibleJS("#d-resume")+
		` && !`+visibleJS("#d-cancel"), waitTimeout)

	// 5. A failed checkout (of version 4, which dispatches its order
	// itself): its error, no Resume; forked from its failed step, the fork
	// runs to its end and dispatches the order.
	repair := failDispatch(t, s.db)
	const failedKey = "browser-console-failed"
	payment := s.startVersion4(t, failedKey)
	if r := s.do(t, "POST", "/payment_webhook/"+payment+"/paid", ""); r.status != 200 {
		b.fatalf("paying: %d %s", r.status, r.body)
	}
	b.do("finding payment "+payment, chromedp.SetValue(chromedp.CSS("#find-q"), payment), chromedp.Click(chromedp.CSS("#find-button")))
	b.waitJS("the failed checkout with its error", textJS("#d-id")+` === '`+failedKey+`' && `+textJS("#d-status")+
		` === 'ERROR' && `+textJS("#d-error")+`.includes('disk on fire')`, dispatchTimeout)
	if b.visible("#d-resume") || b.visible("#d-cancel") {
		b.fatalf("a failed checkout shows Resume or Cancel, which DBOS would not do")
	}
	if !b.visible(`#steps-body tr[data-step-name="checkout.placeOrder"] .fork-refused`) {
		b.fatalf("the failed checkout offers a fork from placeOrder, which would place a second order")
	}
	repair()
	failedRow := `#steps-body tr[data-step-name="checkout.markDispatched"]`
	b.do("clicking Fork on markDispatched", chromedp.Click(chromedp.CSS(failedRow+" button.fork")))
	b.waitJS("the confirmation", visibleJS("#confirm"), waitTimeout)
	b.do("confirming the fork", chromedp.Click(chromedp.CSS("#confirm-yes")))
	b.waitJS("the fork, finished, its order DISPATCHED", textJS("#d-id")+` !== '`+failedKey+`' && `+textJS("#d-forked-from")+
		` === '`+failedKey+`' && `+textJS("#d-status")+` === 'SUCCESS' && `+textJS("#d-order-status")+` === 'DISPATCHED'`, dispatchTimeout)

	// 5b. Another failed checkout, rewound in place from its payment wait
	// once the database is mended: same id, its order dispatched.
	repair = failDispatch(t, s.db)
	const rewoundKey = "browser-console-rewound"
	payment = s.startVersion4(t, rewoundKey)
	if r := s.do(t, "POST", "/payment_webhook/"+payment+"/paid", ""); r.status != 200 {
		b.fatalf("paying: %d %s", r.status, r.body)
	}
	b.do("opening "+rewoundKey, chromedp.Navigate(s.URL+"/console#wf="+rewoundKey))
	b.waitJS("the failed checkout with Rewind offered", textJS("#d-id")+` === '`+rewoundKey+`' && `+textJS("#d-status")+
		` === 'ERROR' && !!document.querySelector('#steps-body tr[data-step-name="DBOS.recv"] button.rewind')`, dispatchTimeout)
	if b.visible(`#steps-body tr[data-step-name="checkout.placeOrder"] button.rewind`) {
		b.fatalf("the failed checkout offers a rewind to placeOrder, which would place its order again")
	}
	repair()
	b.do("clicking Rewind on its wait", chromedp.Click(chromedp.CSS(`#steps-body tr[data-step-name="DBOS.recv"] button.rewind`)))
	b.waitJS("the confirmation", visibleJS("#confirm"), waitTimeout)
	b.do("confirming the rewind", chromedp.Click(chromedp.CSS("#confirm-yes")))
	b.waitJS("the rewound checkout, finished under its own id, its order DISPATCHED", textJS("#d-id")+` === '`+rewoundKey+`' && `+
		textJS("#d-status")+` === 'SUCCESS' && `+textJS("#d-order-status")+` === 'DISPATCHED'`, dispatchTimeout)

	// 5c. Two pending checkouts cancelled in bulk, by a filter, behind a
	// confirmation that names their number.
	for _, key := range []string{"browser-bulk-1", "browser-bulk-2"} {
		if r := s.do(t, "POST", "/checkout/"+key, ""); r.status != 200 {
			b.fatalf("POST /checkout/%s: %d %s", key, r.status, r.body)
		}
	}
	b.do("filtering by the prefix", chromedp.SetValue(chromedp.CSS("#f-prefix"), "browser-bulk-"), chromedp.Click(chromedp.CSS("#bulk-cancel")))
	b.waitJS("the confirmation naming 2 workflows", visibleJS("#confirm")+` && `+textJS("#confirm-text")+`.includes('2 workflows')`, waitTimeout)
	b.do("confirming the bulk cancel", chromedp.Click(chromedp.CSS("#confirm-yes")))
	b.waitJS("the message of 2 cancelled", `document.body.textContent.includes('2 of 2 cancelled')`, waitTimeout)

	// 6. The audit log shows the actions, by this session.
	b.waitJS("the audit log's five actions", `Array.from(document.querySelectorAll('#actions-body tr'), (r) => r.textContent)
		.filter((t) => t.includes('session ') && (t.includes('cancel') || t.includes('forked as') || t.includes('rewind'))).length === 5`, waitTimeout)

	b.screenshot("console.png")

	// 7. Back on the shop, signed in: the operator's controls.
	b.do("opening the shop signed in", chromedp.Navigate(s.URL))
	b.waitJS("the operator's controls", visibleJS("#restock")+` && `+visibleJS("#crash")+` && `+visibleJS("#operator")+
		` && !`+visibleJS("#operator-signin"), waitTimeout)
	b.checkConsole()
}

// TestBrowserDurability: beside the order, the shop's page lists the
// checkout's checkpoints as the server records them, pushed by server-sent
// events rather than polled, and invites the visitor to crash the server
// while the purchase is under way.
func TestBrowserDurability(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), browserConfig)
	b := newBrowser(t, chromium)

	b.do("opening the shop", chromedp.Navigate(s.URL))
	b.waitJS("the product cards", `document.querySelectorAll('.product[data-product-id]').length > 0`, waitTimeout)
	if b.visible("#durability") {
		b.fatalf("the checkpoints are shown before any purchase")
	}
	b.do("clicking Buy on product 1", chromedp.Click(chromedp.CSS(productSel(1, ".buy"))))
	b.waitJS("the order's first checkpoints and the invitation to crash", visibleJS("#durability")+` && `+
		visibleJS(`#checkpoints li[data-name="checkout.placeOrder"]`)+
		` && `+visibleJS("#durability-invite"), waitTimeout)
	b.do("clicking Confirm payment", chromedp.Click(chromedp.CSS("#pay")))
	b.waitJS("the payment and the dispatch", visibleJS(`#checkpoints li[data-name="order.paid"]`)+` && `+
		visibleJS(`#checkpoints li[data-name="order.dispatched"]`)+` && !`+visibleJS("#durability-invite"), dispatchTimeout)
	if n := runT(b, "counting the placeOrder checkpoints", chromedp.Evaluate[int](
		`document.querySelectorAll('#checkpoints li[data-name="checkout.placeOrder"]').length`)); n != 1 {
		b.fatalf("placeOrder is listed %d times, want once", n)
	}
	requests := func(re string) int {
		return runT(b, "counting requests", chromedp.Evaluate[int](
			`performance.getEntriesByType('resource').filter((e) => /`+re+`/.test(e.name)).length`))
	}
	if streams, polls := requests(`\/api\/checkouts\/[^/]+\/events`), requests(`\/api\/checkouts\/[^/]+\/progress`); streams < 1 || polls != 0 {
		b.fatalf("the page opened %d event streams and polled %d times; want the stream, no polling", streams, polls)
	}
	b.screenshot("durability.png")
	b.checkConsole()
}
