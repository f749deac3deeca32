package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/web"
)

// browserConfig: a short dispatch, so a paid order is dispatched while the
// page watches it.
var browserConfig = checkout.Config{PaymentTimeout: 30 * time.Second, DispatchSteps: 3, DispatchInterval: 100 * time.Millisecond}

// Deadlines of the browser test. Generous, for a small shared machine, but
// every wait has one.
const (
	actionTimeout   = 15 * time.Second // one click, read or navigation
	waitTimeout     = 10 * time.Second // the page showing what the server answered
	dispatchTimeout = 20 * time.Second // a paid order reaching DISPATCHED on the page
	browserLifetime = 3 * time.Minute  // backstop: the browser is killed after this

	operatorPoll = 3 * time.Second // how often the page polls the operator's routes (app.js)
)

// TestBrowser drives the page in a real, headless Chromium as a shopper and
// an operator would: buy, pay, refuse, run out of stock, restock, resume a
// cancelled checkout and crash, asserting on what the page shows.
func TestBrowser(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), browserConfig)
	b := newBrowser(t, chromium)

	// 1. The page loads and shows the catalog the server has.
	var catalog []struct {
		ID          int64  `json:"product_id"`
		Name        string `json:"product"`
		Inventory   int    `json:"inventory"`
		MaxQuantity int    `json:"max_quantity"`
	}
	getJSON(t, s, "/api/products", &catalog)
	names, limits := map[int64]string{}, map[int64]int{}
	for _, p := range catalog {
		names[p.ID], limits[p.ID] = p.Name, p.MaxQuantity
	}
	if names[1] == "" || names[3] == "" {
		t.Fatalf("GET /api/products: %+v; the test needs products 1 and 3", catalog)
	}
	b.do("opening the page", chromedp.Navigate(s.URL))
	b.waitJS(fmt.Sprintf("the %d product cards", len(catalog)),
		fmt.Sprintf(`document.querySelectorAll('.product[data-product-id]').length === %d`, len(catalog)), waitTimeout)
	for _, p := range catalog {
		if got := b.text(productSel(p.ID, ".name")); got != p.Name {
			t.Errorf("product %d: the card shows name %q, want %q", p.ID, got, p.Name)
		}
		if got := b.stock(p.ID); got != p.Inventory {
			t.Errorf("product %d: the card shows %d in stock, the server has %d", p.ID, got, p.Inventory)
		}
		if got := b.attr(productSel(p.ID, ".quantity"), "max"); got != strconv.Itoa(p.MaxQuantity) {
			t.Errorf("product %d: the quantity field's max is %q, the server's max_quantity %d", p.ID, got, p.MaxQuantity)
		}
	}
	b.waitJS("the empty orders list", visibleJS("#orders-empty")+` && `+textJS("#orders-body")+` === ''`, waitTimeout)
	if b.visible("#connection") {
		b.fatalf("the page shows the server-down banner on a healthy server")
	}
	b.waitJS("the operator's section: balanced books, nothing to do", textJS("#audit")+` === 'Books balance' && `+
		textJS("#workflows-empty")+` === 'No workflow needs attention.' && `+visibleJS("#workflows-empty")+
		` && !`+visibleJS("#workflows-table"), waitTimeout)
	stock1 := b.stock(1)

	// 2. Buy one of product 1: the payment appears, one order exists, the
	// page shows one fewer in stock.
	b.do("clicking Buy on product 1", chromedp.Click(chromedp.CSS(productSel(1, ".buy"))))
	b.waitJS("the payment section with a payment id", visibleJS("#payment")+` && `+textJS("#payment-id")+` !== ''`, waitTimeout)
	payment1 := b.text("#payment-id")
	orders := listOrders(t, s)
	if len(orders) != 1 {
		b.fatalf("after one Buy, GET /orders has %d orders, want 1: %+v", len(orders), orders)
	}
	if o := orders[0]; o.PaymentID != payment1 || o.ProductID != 1 || o.Quantity != 1 || o.Status != "PENDING" {
		b.fatalf("after one Buy, the order is %+v; want PENDING, 1 × product 1, payment id %q as the page shows", o, payment1)
	}
	b.waitStock(1, stock1-1)

	// 3. Pay: the order is dispatched and its progress bar is full.
	b.do("clicking Confirm payment", chromedp.Click(chromedp.CSS("#pay")))
	b.waitJS("order "+strconv.FormatInt(orders[0].ID, 10)+" DISPATCHED",
		visibleJS("#order")+` && `+textJS("#order-id")+` === `+strconv.Quote(strconv.FormatInt(orders[0].ID, 10))+
			` && `+textJS("#order-status")+` === 'DISPATCHED'`, dispatchTimeout)
	if b.visible("#payment") {
		b.fatalf("the payment section is still shown after the payment was confirmed")
	}
	// A dispatched order shows a full bar of its own step count.
	progress := runT(b, "reading the progress bar", chromedp.Evaluate[[2]float64](
		`[document.querySelector('#order-progress').value, document.querySelector('#order-progress').max]`))
	if progress[0] != progress[1] || int(progress[1]) != browserConfig.DispatchSteps {
		b.fatalf("a dispatched order shows progress %v of %v, want a full bar (%d of %d)", progress[0], progress[1], browserConfig.DispatchSteps, browserConfig.DispatchSteps)
	}
	if got := b.text("#order-progress-text"); got != "Dispatched" {
		b.fatalf("a dispatched order's progress reads %q, want Dispatched", got)
	}
	if o := getOrder(t, s, orders[0].ID); o.Status != "DISPATCHED" || o.ProgressRemaining != 0 {
		b.fatalf("the page shows DISPATCHED, but GET /order/%d answers %+v", o.ID, o)
	}

	// 4. Buy again and refuse: the order is cancelled and its widget goes
	// back on the shelf.
	b.do("clicking Buy on product 1 again", chromedp.Click(chromedp.CSS(productSel(1, ".buy"))))
	b.waitJS("a second payment", visibleJS("#payment")+` && `+textJS("#payment-id")+` !== '' && `+
		textJS("#payment-id")+` !== `+strconv.Quote(payment1), waitTimeout)
	payment2 := b.text("#payment-id")
	b.do("clicking Refuse payment", chromedp.Click(chromedp.CSS("#refuse")))
	b.waitJS("the refused order CANCELLED", visibleJS("#order")+` && `+textJS("#order-id")+` !== `+
		strconv.Quote(strconv.FormatInt(orders[0].ID, 10))+` && `+textJS("#order-status")+` === 'CANCELLED'`, waitTimeout)
	if got := b.text("#order-payment"); got != payment2 {
		b.fatalf("the cancelled order shows payment id %q, want %q", got, payment2)
	}
	if !b.visible("#order-cancel") || b.text("#order-cancel-reason") == "" {
		b.fatalf("the cancelled order shows no cancel reason")
	}
	b.waitStock(1, stock1-1) // the refused widget was released

	// 5. Buy all of product 3 and pay; one more is refused by the server
	// with its out-of-stock message.
	stock3 := b.stock(3)
	if stock3 < 1 || stock3 > limits[3] {
		b.fatalf("product 3 has %d in stock; the test needs 1 to %d (its max_quantity), to sell it out in one order", stock3, limits[3])
	}
	b.setQuantity(3, stock3)
	b.do("clicking Buy on product 3", chromedp.Click(chromedp.CSS(productSel(3, ".buy"))))
	b.waitJS("the payment for product 3", visibleJS("#payment")+` && `+textJS("#payment-product")+` === `+
		strconv.Quote(fmt.Sprintf("%d × %s", stock3, names[3])), waitTimeout)
	payment3 := b.text("#payment-id")
	b.do("clicking Confirm payment for product 3", chromedp.Click(chromedp.CSS("#pay")))
	b.waitJS("the product 3 order DISPATCHED", visibleJS("#order")+` && `+textJS("#order-payment")+` === `+
		strconv.Quote(payment3)+` && `+textJS("#order-status")+` === 'DISPATCHED'`, dispatchTimeout)
	b.waitStock(3, 0)
	b.waitJS("product 3 marked sold out", `document.querySelector(`+strconv.Quote(productSel(3, ""))+`).classList.contains('sold-out')`, waitTimeout)
	b.setQuantity(3, 1)
	b.do("clicking Buy on sold-out product 3", chromedp.Click(chromedp.CSS(productSel(3, ".buy"))))
	b.waitJS("the out-of-stock message", textJS("#message")+`.includes('not available')`, waitTimeout)
	if kind := runT(b, "reading the message kind", chromedp.Evaluate[string](`document.querySelector('#message').dataset.kind || ''`)); kind != "error" {
		b.fatalf("the out-of-stock message is shown as %q, want error", kind)
	}
	if b.visible("#payment") {
		b.fatalf("the payment section is shown for a checkout that was out of stock")
	}

	// 6. The orders table has one row per order, with the server's status.
	orders = listOrders(t, s)
	if len(orders) != 4 { // dispatched, refused, dispatched, out of stock
		b.fatalf("GET /orders has %d orders after four checkouts, want 4: %+v", len(orders), orders)
	}
	want := map[string]string{}
	for _, o := range orders {
		want[strconv.FormatInt(o.ID, 10)] = o.Status
	}
	var rows map[string]string
	deadline := time.Now().Add(waitTimeout)
	for {
		rows = runT(b, "reading the orders table", chromedp.Evaluate[map[string]string](
			`Object.fromEntries(Array.from(document.querySelectorAll('#orders-body tr[data-order-id]'),
				(r) => [r.dataset.orderId, r.querySelector('.status').textContent]))`))
		if maps.Equal(rows, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !maps.Equal(rows, want) {
		b.fatalf("the orders table shows %v (order id: status), the server has %v", rows, want)
	}
	if b.visible("#orders-empty") {
		b.fatalf("the orders table still says there are no orders")
	}

	// 7. Restock: product 1 is back to 100 (and sold-out product 3 too).
	b.do("clicking Restock", chromedp.Click(chromedp.CSS("#restock")))
	b.waitJS("the restock message", textJS("#message")+`.startsWith('Restocked')`, waitTimeout)
	b.waitStock(1, 100)
	b.waitStock(3, 100)

	// 8. A checkout cancelled in DBOS shows under Needs attention; resumed
	// from the page, it leaves the list at once and the books balance.
	const key = "browser-cancelled-checkout"
	if r := s.do(t, "POST", "/checkout/"+key, ""); r.status != 200 {
		b.fatalf("POST /checkout/%s: %d %s", key, r.status, r.body)
	}
	if err := s.co.Cancel(context.Background(), key); err != nil {
		b.fatalf("cancelling checkout %s in DBOS: %v", key, err)
	}
	row := `#workflows-body tr[data-workflow-id="` + key + `"]`
	b.waitJS("the cancelled checkout listed as CANCELLED", visibleJS(row)+` && `+textJS(row+" .status")+` === 'CANCELLED'`,
		operatorPoll+waitTimeout)
	if name := b.text(row + " .name"); name != "checkout.Checkout" {
		b.fatalf("the cancelled checkout's row shows name %q, want checkout.Checkout", name)
	}
	b.do("clicking Resume on the cancelled checkout", chromedp.Click(chromedp.CSS(row+" button.resume")))
	// The page refreshes the list after the click, not at its next poll.
	b.waitJS("the resumed checkout to leave the list", `!document.querySelector(`+strconv.Quote(row)+`)`, operatorPoll)
	msg := b.text("#message")
	kind := runT(b, "reading the message kind", chromedp.Evaluate[string](`document.querySelector('#message').dataset.kind || ''`))
	if !strings.Contains(msg, key) || kind == "error" {
		b.fatalf("after Resume, the message reads %q (%s); want the server's answer naming %s", msg, kind, key)
	}
	if r := s.do(t, "GET", "/api/workflows?status=CANCELLED", ""); r.status != 200 || strings.Contains(r.body, key) {
		b.fatalf("the page no longer lists %s, but GET /api/workflows?status=CANCELLED answers %d %s", key, r.status, r.body)
	}
	b.waitJS("the books to balance", textJS("#audit")+` === 'Books balance'`, operatorPoll+waitTimeout)

	// 9. Crash: the server's crash function is called, the page shows the
	// server-down banner, then finds the server answering again.
	runT(b, "watching the connection banner", chromedp.Evaluate[bool](`(() => {
		window.__bannerShown = false;
		const banner = document.querySelector('#connection');
		new MutationObserver(() => { if (!banner.hidden) window.__bannerShown = true; })
			.observe(banner, { attributes: true, attributeFilter: ['hidden'] });
		return true;
	})()`))
	b.do("clicking Crash the server", chromedp.Click(chromedp.CSS("#crash")))
	select {
	case <-s.crashed:
	case <-time.After(waitTimeout):
		b.fatalf("the crash button did not reach the server's crash function within %v", waitTimeout)
	}
	b.waitJS("the page to notice the server is back", `window.__bannerShown && `+textJS("#message")+
		` === 'Connection restored.' && document.querySelector('#connection').hidden`, waitTimeout)

	b.screenshot("page.png")
	b.checkConsole()
}

// TestBrowserQuantityLimitFromServer: the page keeps to the quantity limit
// the server gives with each product, whatever it is. The catalog is served
// here with a lower limit than the checkout keeps, so a page that knew the
// limit by heart would let the larger quantity through to the server,
// which would take it.
func TestBrowserQuantityLimitFromServer(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	const limit = 4
	s := newTestServerWrapped(t, dbtest.NewDatabase(t, "sqlite"), browserConfig, web.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/products" {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			var products []map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &products); err != nil {
				t.Errorf("GET /api/products: %v: %s", err, rec.Body)
			}
			for _, p := range products {
				p["max_quantity"] = limit
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(products)
		})
	})
	b := newBrowser(t, chromium)

	b.do("opening the page", chromedp.Navigate(s.URL))
	b.waitJS("the product cards", `document.querySelectorAll('.product[data-product-id]').length > 0`, waitTimeout)
	if got := b.attr(productSel(1, ".quantity"), "max"); got != strconv.Itoa(limit) {
		b.fatalf("the quantity field's max is %q, want the served limit %d", got, limit)
	}

	b.setQuantity(1, limit+1)
	b.do("clicking Buy with one more than the limit", chromedp.Click(chromedp.CSS(productSel(1, ".buy"))))
	want := fmt.Sprintf("Quantity must be a whole number from 1 to %d.", limit)
	b.waitJS("the page's refusal naming the limit", textJS("#message")+` === `+strconv.Quote(want), waitTimeout)
	if n := len(listOrders(t, s)); n != 0 || b.visible("#payment") {
		b.fatalf("over the limit, the page placed %d orders (payment shown: %v), want none", n, b.visible("#payment"))
	}

	b.setQuantity(1, limit)
	b.do("clicking Buy with the limit", chromedp.Click(chromedp.CSS(productSel(1, ".buy"))))
	b.waitJS("the payment for the limit", visibleJS("#payment")+` && `+textJS("#payment-product")+` === `+
		strconv.Quote(fmt.Sprintf("%d × %s", limit, b.text(productSel(1, ".name")))), waitTimeout)
	if orders := listOrders(t, s); len(orders) != 1 || orders[0].Quantity != limit {
		b.fatalf("after a Buy of %d, GET /orders answers %+v, want one order of %d", limit, orders, limit)
	}
	b.checkConsole()
}

// TestBrowserReloadMidPurchase reloads the page in the middle of a purchase,
// as a person closing and reopening the tab would: the page picks up the
// same checkout (its idempotency key is kept in localStorage) and never
// places a second order.
func TestBrowserReloadMidPurchase(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), browserConfig)
	b := newBrowser(t, chromium)
	const stored = `JSON.parse(localStorage.getItem('widgetstore.purchase'))`
	oneOrder := func(when string) orderView {
		t.Helper()
		orders := listOrders(t, s)
		if len(orders) != 1 {
			b.fatalf("%s, GET /orders has %d orders, want 1: %+v", when, len(orders), orders)
		}
		return orders[0]
	}
	reload := func(what string) {
		t.Helper()
		b.do(what, chromedp.Reload())
		b.waitJS("the product cards after the reload", `document.querySelectorAll('.product[data-product-id]').length > 0`, waitTimeout)
	}

	b.do("opening the page", chromedp.Navigate(s.URL))
	b.waitJS("the product cards", `document.querySelectorAll('.product[data-product-id]').length > 0`, waitTimeout)
	name := b.text(productSel(1, ".name"))

	// 1. Buy, then reload while the payment waits: the same payment is back.
	b.do("clicking Buy on product 1", chromedp.Click(chromedp.CSS(productSel(1, ".buy"))))
	b.waitJS("the payment section with a payment id", visibleJS("#payment")+` && `+textJS("#payment-id")+` !== ''`, waitTimeout)
	paymentID := b.text("#payment-id")
	samePayment := visibleJS("#payment") + ` && ` + textJS("#payment-id") + ` === ` + strconv.Quote(paymentID) +
		` && ` + textJS("#payment-product") + ` === ` + strconv.Quote("1 × "+name)
	reload("reloading the page with the payment open")
	b.waitJS("the same payment after the reload", samePayment, waitTimeout)
	if o := oneOrder("after a Buy and a reload"); o.PaymentID != paymentID || o.Status != "PENDING" {
		b.fatalf("after a Buy and a reload, the order is %+v; want PENDING with payment id %q", o, paymentID)
	}

	// 2. As if the tab had closed before the checkout answered (no payment
	// id stored yet): the page sends the checkout again, with the same key,
	// and gets the same payment back.
	runT(b, "forgetting the stored payment id", chromedp.Evaluate[bool](`(() => {
		const p = `+stored+`;
		delete p.payment_id;
		localStorage.setItem('widgetstore.purchase', JSON.stringify(p));
		return true;
	})()`))
	reload("reloading the page before the checkout answered")
	b.waitJS("the checkout sent again", `performance.getEntriesByType('resource').some((e) => e.name.includes('/checkout/'))`, waitTimeout)
	b.waitJS("the same payment from the resent checkout", samePayment+` && `+stored+`?.payment_id === `+strconv.Quote(paymentID), waitTimeout)
	order := oneOrder("after the checkout was sent again")
	if order.PaymentID != paymentID {
		b.fatalf("after the checkout was sent again, the order is %+v; want payment id %q", order, paymentID)
	}

	// 3. Pay, then reload: the page tracks the order until it is dispatched.
	id := strconv.FormatInt(order.ID, 10)
	b.do("clicking Confirm payment", chromedp.Click(chromedp.CSS("#pay")))
	b.waitJS("the paid order stored as the one to track", stored+`?.order_id === `+strconv.Quote(id), waitTimeout)
	reload("reloading the page after paying")
	b.waitJS("order "+id+" DISPATCHED after the reload", visibleJS("#order")+` && `+textJS("#order-id")+` === `+strconv.Quote(id)+
		` && `+textJS("#order-status")+` === 'DISPATCHED'`, dispatchTimeout)
	if b.visible("#payment") {
		b.fatalf("the payment section is shown again after the payment was confirmed and the page reloaded")
	}
	if o := oneOrder("after paying and reloading"); o.Status != "DISPATCHED" {
		b.fatalf("the page shows order %s DISPATCHED, but the server has %+v", id, o)
	}

	// 4. Stored state that is stale or not the page's own is dropped quietly.
	for _, bad := range []string{`{"order_id":"999999"}`, `not json`, `{"key":"k","product_id":"1","quantity":1}`} {
		runT(b, "storing "+bad, chromedp.Evaluate[bool](`localStorage.setItem('widgetstore.purchase', `+strconv.Quote(bad)+`), true`))
		reload("reloading the page with " + bad + " stored")
		b.waitJS("the page to drop "+bad, `localStorage.getItem('widgetstore.purchase') === null`, waitTimeout)
		if b.visible("#order") || b.visible("#payment") {
			b.fatalf("with %s stored, the page shows an order or a payment", bad)
		}
		if kind := runT(b, "reading the message kind", chromedp.Evaluate[string](`document.querySelector('#message').dataset.kind || ''`)); kind == "error" {
			b.fatalf("with %s stored, the page shows an error: %q", bad, b.text("#message"))
		}
	}
	oneOrder("at the end")

	// 5. Closing the order view stops tracking it, after a reload too.
	b.do("opening the order from the list", chromedp.Click(chromedp.CSS(`#orders-body tr[data-order-id="`+id+`"]`)))
	b.waitJS("the order view", visibleJS("#order")+` && `+textJS("#order-status")+` === 'DISPATCHED'`, waitTimeout)
	b.do("clicking Stop tracking", chromedp.Click(chromedp.CSS("#order-close")))
	reload("reloading the page after closing the order")
	b.waitJS("the orders list", `!!document.querySelector('#orders-body tr[data-order-id="`+id+`"]')`, waitTimeout)
	if b.visible("#order") || runT(b, "reading the stored purchase", chromedp.Evaluate[bool](stored+` !== null`)) {
		b.fatalf("the order view comes back after the person closed it")
	}
	b.checkConsole()
}

// findChromium returns the browser to drive, or skips (fails under CI=true)
// when there is none.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed, and CI=true requires the browser test (apt-get install chromium)")
	}
	t.Skip("skipping the browser test: chromium is not installed (apt-get install chromium)")
	return ""
}

// browser is one headless Chromium tab, with helpers that fail the test
// with what the page shows.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	output  strings.Builder // chromium's stdout and stderr
}

func newBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	b := &browser{t: t}
	profile := t.TempDir() // before the allocator: removed after the browser is gone
	// The defaults have most of these flags already; they are spelled out
	// because they matter here.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), // the network is closed: no calls home
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		// Chromium's crash handler keeps its database under the XDG config
		// directory whatever the profile: keep it in the test's directory too.
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(profile, "config"), "XDG_CACHE_HOME="+filepath.Join(profile, "cache")),
		chromedp.WindowSize(1280, 1000),
		chromedp.CombinedOutput(lockedWriter{&b.mu, &b.output}),
	)
	lifetime, cancelLifetime := context.WithTimeout(context.Background(), browserLifetime)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(lifetime, opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser to exit
		cancelLifetime()
		if t.Failed() {
			b.mu.Lock()
			defer b.mu.Unlock()
			// Without the dbus complaints of a machine with no session bus,
			// and only the end.
			var lines []string
			for line := range strings.Lines(b.output.String()) {
				if !strings.Contains(line, "dbus") {
					lines = append(lines, strings.TrimRight(line, "\n"))
				}
			}
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			if len(lines) > 0 {
				t.Logf("chromium's output (last lines, dbus noise left out):\n%s", strings.Join(lines, "\n"))
			}
		}
	})
	b.ctx = ctx

	// Start the browser with no per-action deadline: the first call binds
	// the browser's life to its context.
	if err := chromedp.Do(ctx); err != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		t.Fatalf("starting %s: %v\n%s", chromium, err, b.output.String())
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	return b
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// do runs actions with a deadline, and fails with the page's state.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fatalf("%s: %v", what, err)
	}
}

// runT runs one action with a deadline and returns its value.
func runT[T any](b *browser, what string, action chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		b.fatalf("%s: %v", what, err)
	}
	return v
}

// waitJS waits until the JavaScript expression is true on the page.
func (b *browser) waitJS(what, expr string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+actionTimeout)
	defer cancel()
	start := time.Now()
	var err error
	for {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](expr,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout-time.Since(start))))
		// A form's submission navigates while the poll runs, taking the
		// poll's page and its script context with it: poll the new page.
		navigated := err != nil && (strings.Contains(err.Error(), "navigated") || strings.Contains(err.Error(), "Cannot find context"))
		if !navigated || time.Since(start) > timeout {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if errors.Is(err, chromedp.ErrPollingTimeout) {
		b.fatalf("waited %v for %s; the page did not show it", time.Since(start).Round(time.Millisecond), what)
	}
	if err != nil {
		b.fatalf("waiting for %s: %v", what, err)
	}
}

// text is the trimmed text of the first element matching the CSS selector.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return runT(b, "reading "+sel, chromedp.Evaluate[string](textJS(sel)))
}

// attr is an attribute of the first element matching the CSS selector
// ("" when it has none).
func (b *browser) attr(sel, name string) string {
	b.t.Helper()
	return runT(b, "reading "+sel+"["+name+"]", chromedp.Evaluate[string](
		`document.querySelector(`+strconv.Quote(sel)+`)?.getAttribute(`+strconv.Quote(name)+`) ?? ''`))
}

func (b *browser) visible(sel string) bool {
	b.t.Helper()
	return runT(b, "looking at "+sel, chromedp.Evaluate[bool](visibleJS(sel)))
}

// stock is the stock the product's card shows.
func (b *browser) stock(productID int64) int {
	b.t.Helper()
	s := b.text(productSel(productID, ".inventory"))
	n, err := strconv.Atoi(s)
	if err != nil {
		b.fatalf("product %d: the card shows stock %q, not a number", productID, s)
	}
	return n
}

// waitStock waits for the product's card to show n in stock. The page
// refreshes the catalog after each action and every few seconds.
func (b *browser) waitStock(productID int64, n int) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("product %d to show %d in stock", productID, n),
		textJS(productSel(productID, ".inventory"))+` === `+strconv.Quote(strconv.Itoa(n)), waitTimeout)
}

// setQuantity types n into the product's quantity field, as a person
// would: select what is there and type over it.
func (b *browser) setQuantity(productID int64, n int) {
	b.t.Helper()
	sel := productSel(productID, ".quantity")
	b.do(fmt.Sprintf("typing quantity %d for product %d", n, productID),
		chromedp.Focus(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector(`+strconv.Quote(sel)+`).select()`),
		chromedp.SendKeys(chromedp.CSS(sel), strconv.Itoa(n)),
	)
	if got := runT(b, "reading "+sel, chromedp.Value(chromedp.CSS(sel))); got != strconv.Itoa(n) {
		b.fatalf("product %d: the quantity field reads %q after typing %d", productID, got, n)
	}
}

// state is what the page shows, for failure messages.
func (b *browser) state() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const q = (s) => document.querySelector(s);
		const txt = (s) => (q(s) ? q(s).textContent.trim() : '(missing)');
		const shown = (s) => !!q(s) && q(s).getClientRects().length > 0;
		return [
			'message: ' + JSON.stringify(txt('#message')) + ' (' + (q('#message')?.dataset.kind || '') + ')',
			'connection banner: ' + (shown('#connection') ? 'shown' : 'hidden'),
			'payment: ' + (shown('#payment') ? 'shown, id ' + JSON.stringify(txt('#payment-id')) + ', ' + txt('#payment-product') : 'hidden'),
			'order: ' + (shown('#order') ? '#' + txt('#order-id') + ' status ' + JSON.stringify(txt('#order-status')) +
				', progress ' + q('#order-progress').value + '/' + q('#order-progress').max + ' ' + JSON.stringify(txt('#order-progress-text')) : 'hidden'),
			'stock: ' + Array.from(document.querySelectorAll('.product[data-product-id]'),
				(c) => c.dataset.productId + '=' + c.querySelector('.inventory').textContent).join(' '),
			'orders table: ' + Array.from(document.querySelectorAll('#orders-body tr[data-order-id]'),
				(r) => r.dataset.orderId + '=' + r.querySelector('.status').textContent).join(' '),
			'audit: ' + JSON.stringify(txt('#audit')),
			'needs attention: ' + (shown('#workflows-table') ? Array.from(document.querySelectorAll('#workflows-body tr[data-workflow-id]'),
				(r) => r.dataset.workflowId + '=' + r.querySelector('.status').textContent).join(' ') : 'no table') +
				(shown('#workflows-empty') ? ' (' + txt('#workflows-empty') + ')' : ''),
		].join('\n  ');
	})()`))
	if err != nil {
		return fmt.Sprintf("(could not read the page: %v)", err)
	}
	return s
}

// fatalf fails the test with what the page shows, its console and a
// screenshot.
func (b *browser) fatalf(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	b.t.Fatalf("%s\nthe page shows:\n  %s\nconsole:\n%s\nscreenshot: %s",
		msg, b.state(), b.consoleText(), b.screenshotQuietly())
}

func (b *browser) consoleText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.console) == 0 {
		return "  (empty)"
	}
	var s strings.Builder
	for _, m := range b.console {
		fmt.Fprintf(&s, "  %s %s:%d\n", m, m.URL, m.Line+1)
	}
	return strings.TrimRight(s.String(), "\n")
}

// checkConsole fails on uncaught exceptions and console.error calls of the
// page. Network errors the browser logs itself (the expected 409) are not
// the page's.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	var bad []string
	for _, m := range b.console {
		if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source == "") {
			bad = append(bad, m.String())
		}
	}
	b.mu.Unlock()
	if len(bad) > 0 {
		b.t.Errorf("the page logged errors:\n  %s", strings.Join(bad, "\n  "))
	}
}

// screenshot writes a full-page PNG under the test's temporary directory
// and, when WIDGETSTORE_SCREENSHOT names a file, there too.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png := runT(b, "taking a screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(b.t.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s (%d bytes)", path, len(png))
	if dest := os.Getenv("WIDGETSTORE_SCREENSHOT"); dest != "" {
		if err := os.WriteFile(dest, png, 0o644); err != nil {
			b.t.Fatalf("WIDGETSTORE_SCREENSHOT: %v", err)
		}
		b.t.Logf("screenshot: %s", dest)
	}
}

// screenshotQuietly is screenshot for a test that is failing already: it
// keeps one only where WIDGETSTORE_SCREENSHOT says.
func (b *browser) screenshotQuietly() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Sprintf("(none: %v)", err)
	}
	dest := os.Getenv("WIDGETSTORE_SCREENSHOT")
	if dest == "" {
		return "(set WIDGETSTORE_SCREENSHOT to a file name to keep one)"
	}
	if err := os.WriteFile(dest, png, 0o644); err != nil {
		return fmt.Sprintf("(none: %v)", err)
	}
	return dest
}

// productSel selects inside the product's card (the card itself when
// inner is empty).
func productSel(productID int64, inner string) string {
	return strings.TrimSpace(fmt.Sprintf(`.product[data-product-id="%d"] %s`, productID, inner))
}

// textJS is a JavaScript expression: the trimmed text of the element.
func textJS(sel string) string {
	return `(document.querySelector(` + strconv.Quote(sel) + `)?.textContent ?? '').trim()`
}

// visibleJS is a JavaScript expression: whether the element is rendered.
func visibleJS(sel string) string {
	return `((e) => !!e && e.getClientRects().length > 0)(document.querySelector(` + strconv.Quote(sel) + `))`
}

type orderView struct {
	ID                int64   `json:"order_id"`
	Status            string  `json:"status"`
	ProductID         int64   `json:"product_id"`
	Quantity          int     `json:"quantity"`
	ProgressRemaining int     `json:"progress_remaining"`
	PaymentID         string  `json:"payment_id"`
	PaidAt            *string `json:"paid_at"`
}

func listOrders(t *testing.T, s *testServer) []orderView {
	t.Helper()
	var orders []orderView
	getJSON(t, s, "/orders", &orders)
	slices.SortFunc(orders, func(a, b orderView) int { return int(a.ID - b.ID) })
	return orders
}

func getOrder(t *testing.T, s *testServer, id int64) orderView {
	t.Helper()
	var o orderView
	getJSON(t, s, "/order/"+strconv.FormatInt(id, 10), &o)
	return o
}

func getJSON(t *testing.T, s *testServer, path string, v any) {
	t.Helper()
	r := s.do(t, "GET", path, "")
	if r.status != 200 {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, r.body)
	}
}

// TestBrowserCart buys a cart of two products on the page, pays it on the
// demo provider's page, and follows it to DISPATCHED; then checks out a
// second cart, lets its deadline pass with the provider's page open, pays
// there anyway, and sees the shop's page say the payment was refunded.
func TestBrowserCart(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	cfg := browserConfig
	cfg.PaymentTimeout = 4 * time.Second
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), cfg)
	b := newBrowser(t, chromium)
	b.do("opening the page", chromedp.Navigate(s.URL))
	b.waitJS("the product cards", `document.querySelectorAll('.product[data-product-id]').length === 4`, waitTimeout)

	fillCart := func() {
		b.setQuantity(1, 2)
		b.do("adding 2 of product 1", chromedp.Click(chromedp.CSS(productSel(1, ".add"))))
		b.setQuantity(4, 1)
		b.do("adding 1 of product 4", chromedp.Click(chromedp.CSS(productSel(4, ".add"))))
		b.waitJS("two lines in the cart", `document.querySelectorAll('#cart-body tr').length === 2`, waitTimeout)
		b.do("changing product 4 to 3", chromedp.Evaluate[chromedp.Void](`{
			const input = document.querySelector('#cart-body tr[data-product-id="4"] input');
			input.value = '3';
			input.dispatchEvent(new Event('change', {bubbles: true}));
		}`))
		if got, want := b.text("#cart-total"), "$238.95"; got != want { // 2 × 99.99 + 3 × 12.99
			b.fatalf("the cart's total reads %q, want %q", got, want)
		}
	}
	payURL := func() string {
		b.waitJS("the order's pay link", visibleJS("#cart-pay")+` && document.querySelector('#cart-pay-link').href !== ''`, waitTimeout)
		return runT(b, "reading the pay link", chromedp.Evaluate[string](`document.querySelector('#cart-pay-link').href`))
	}

	// A cart paid in time.
	fillCart()
	b.do("removing nothing, checking out", chromedp.Click(chromedp.CSS("#cart-checkout")))
	link := payURL()
	if got := b.text("#cart-order-total"); got != "$238.95" {
		b.fatalf("the order's total reads %q, want $238.95", got)
	}
	b.do("opening the provider's page", chromedp.Navigate(link))
	b.do("paying on it", chromedp.Click(chromedp.CSS("#pay")))
	b.waitJS("the provider's page saying it went through", `document.querySelector('#settled')?.textContent.includes('went through')`, waitTimeout)
	b.do("back to the shop", chromedp.Navigate(s.URL))
	b.waitJS("the cart's order DISPATCHED", textJS("#cart-order-status")+` === 'DISPATCHED'`, dispatchTimeout)

	// A cart paid after its deadline: the page stops offering to pay, and
	// then says the late payment was refunded.
	b.do("closing the order", chromedp.Click(chromedp.CSS("#cart-order-close")))
	fillCart()
	b.do("removing product 1", chromedp.Click(chromedp.CSS(`#cart-body tr[data-product-id="1"] .cart-remove`)))
	b.do("checking out", chromedp.Click(chromedp.CSS("#cart-checkout")))
	link = payURL()
	b.waitJS("the deadline passed: no pay link", `!`+visibleJS("#cart-pay")+` && `+textJS("#cart-order-status")+` === 'CANCELLED'`, waitTimeout)
	b.do("opening the provider's page, late", chromedp.Navigate(link))
	// The shop expired the intent: its page offers the demo's switch, to
	// pay as if the payment got in as the shop expired it.
	b.waitJS("the provider's page saying it expired", `document.querySelector('#settled')?.textContent.includes('expired') || (location.reload(), false)`, waitTimeout)
	b.do("paying on it anyway", chromedp.Click(chromedp.CSS("#pay")))
	b.waitJS("the provider's page saying it went through", `document.querySelector('#settled')?.textContent.includes('went through')`, waitTimeout)
	b.do("back to the shop", chromedp.Navigate(s.URL))
	b.waitJS("the refund shown", textJS("#cart-order-note")+`.includes('refunded')`, dispatchTimeout)
	b.checkConsole()
}
