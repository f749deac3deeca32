package web_test

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/payment/stripe/stripemock"
	"github.com/widgetstore/widgetstore/internal/web"
)

// TestBrowserShortCartOffer drives the page in Chromium against each
// provider: a cart the stock cannot cover is refused, the page offers what
// is available, and one click buys that under a new key; the order is paid
// through the provider (the demo's page, or Stripe's: the page links to
// it, and the test sends Stripe's event) and followed to DISPATCHED. Then
// a customer cancels an unpaid cart on the page, and its stock is back.
func TestBrowserShortCartOffer(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	cfg := browserConfig
	for name, start := range map[string]func(t *testing.T) (*testServer, flowProvider){
		"demopay": func(t *testing.T) (*testServer, flowProvider) {
			return newTestServer(t, dbtest.NewDatabase(t, "sqlite"), cfg), demoFlow{}
		},
		"stripe": func(t *testing.T) (*testServer, flowProvider) {
			mock := stripemock.Start(t)
			return newTestServerPaying(t, dbtest.NewDatabase(t, "sqlite"), checkout.LaunchConfig{Checkout: cfg}, web.Options{}, nil,
				launchStripe(mock.URL, &heldExpiry{})), &stripeFlow{mock: mock}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, provider := start(t)
			// Someone else holds 8 of the 10 Widget Deluxe.
			s.cart(t, "someone-else", `{"lines": [{"product_id": 3, "quantity": 8}]}`)
			b := newBrowser(t, chromium)
			b.do("opening the page", chromedp.Navigate(s.URL))
			b.waitJS("the product cards", `document.querySelectorAll('.product[data-product-id]').length === 4`, waitTimeout)
			b.waitStock(3, 2)

			b.setQuantity(1, 1)
			b.do("adding 1 of product 1", chromedp.Click(chromedp.CSS(productSel(1, ".add"))))
			b.setQuantity(3, 5)
			b.do("adding 5 of product 3", chromedp.Click(chromedp.CSS(productSel(3, ".add"))))
			b.do("checking out", chromedp.Click(chromedp.CSS("#cart-checkout")))
			b.waitJS("the offer of what is available", visibleJS("#cart-offer")+` && `+textJS("#cart-offer-text")+`.includes('2 × Widget Deluxe')`+
				` && `+textJS("#cart-offer-text")+`.includes('1 × Premium Quality Widget')`, waitTimeout)
			if msg := b.text("#message"); !strings.Contains(msg, "Widget Deluxe (2 left)") {
				b.fatalf("the message reads %q, want it to say 2 Widget Deluxe are left", msg)
			}
			b.do("buying what is available", chromedp.Click(chromedp.CSS("#cart-offer-buy")))
			b.waitJS("the order of what was available", visibleJS("#cart-order")+` && `+textJS("#cart-order-status")+` === 'PENDING' && !`+visibleJS("#cart-offer"), waitTimeout)
			key := b.text("#cart-order-key")
			o := s.awaitCheckout(t, key, func(o customerOrder) bool { return o.Status == "PENDING" })
			if len(o.Lines) != 2 || o.Lines[0].Quantity != 1 || o.Lines[1].ProductID != 3 || o.Lines[1].Quantity != 2 {
				b.fatalf("order %+v, want 1 of product 1 and 2 of product 3", o)
			}
			link := runT(b, "reading the pay link", chromedp.Evaluate[string](`document.querySelector('#cart-pay-link').href`))
			if link != o.PayURL && !strings.HasSuffix(link, o.PayURL) {
				b.fatalf("the page links to %q, want the order's pay URL %q", link, o.PayURL)
			}
			if _, isStripe := provider.(*stripeFlow); isStripe && !strings.HasPrefix(link, "https://checkout.stripe.com/") {
				b.fatalf("with Stripe the page links to %q, want Stripe's page", link)
			}
			provider.pay(t, s, o, inFull)
			b.waitJS("the order DISPATCHED", textJS("#cart-order-status")+` === 'DISPATCHED'`, dispatchTimeout)

			// A cart the customer changes their mind about.
			b.do("closing the order", chromedp.Click(chromedp.CSS("#cart-order-close")))
			stock := b.stock(4)
			b.setQuantity(4, 3)
			b.do("adding 3 of product 4", chromedp.Click(chromedp.CSS(productSel(4, ".add"))))
			b.do("checking out", chromedp.Click(chromedp.CSS("#cart-checkout")))
			b.waitJS("the cancel button", visibleJS("#cart-order-cancel")+` && `+textJS("#cart-order-status")+` === 'PENDING'`, waitTimeout)
			b.waitStock(4, stock-3)
			b.do("cancelling the order", chromedp.Click(chromedp.CSS("#cart-order-cancel")))
			b.waitJS("the order cancelled by the customer", textJS("#cart-order-status")+` === 'CANCELLED' && `+
				textJS("#cart-order-note")+`.includes('cancelled by the customer') && !`+visibleJS("#cart-pay")+` && !`+visibleJS("#cart-order-cancel"), waitTimeout)
			b.waitStock(4, stock)
			var products []struct {
				ID        int64 `json:"product_id"`
				Inventory int   `json:"inventory"`
			}
			if err := json.Unmarshal([]byte(s.do(t, "GET", "/api/products", "").body), &products); err != nil {
				t.Fatal(err)
			}
			for _, p := range products {
				if p.ID == 4 && p.Inventory != stock {
					t.Errorf("product 4: %d in stock after the cancel, want %d", p.Inventory, stock)
				}
			}
			b.checkConsole()
		})
	}
}

// TestBrowserProviderDown: with Stripe out of reach the cart's checkout is
// answered 503 with its key spent; the page says nothing was charged, does
// not send the spent key again, and offers to try again under a new one.
func TestBrowserProviderDown(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	s := newTestServerPaying(t, dbtest.NewDatabase(t, "sqlite"), checkout.LaunchConfig{Checkout: browserConfig}, web.Options{}, nil,
		launchStripe(down, &heldExpiry{}))
	b := newBrowser(t, chromium)
	b.do("opening the page", chromedp.Navigate(s.URL))
	b.waitJS("the product cards", `document.querySelectorAll('.product[data-product-id]').length === 4`, waitTimeout)
	b.setQuantity(2, 2)
	b.do("adding 2 of product 2", chromedp.Click(chromedp.CSS(productSel(2, ".add"))))
	b.do("checking out", chromedp.Click(chromedp.CSS("#cart-checkout")))
	b.waitJS("the offer to try again", visibleJS("#cart-offer")+` && `+textJS("#cart-offer-buy")+` === 'Try again' && `+
		textJS("#message")+`.includes('nothing was charged')`, waitTimeout+intentGiveUp)
	if stored := runT(b, "reading the stored checkout", chromedp.Evaluate[string](`localStorage.getItem('widgetstore.cartCheckout') ?? ''`)); stored != "" {
		b.fatalf("the spent checkout is still stored, to be sent again: %s", stored)
	}
	b.do("trying again", chromedp.Click(chromedp.CSS("#cart-offer-buy")))
	b.waitJS("the offer again, for the second key", visibleJS("#cart-offer")+` && `+textJS("#message")+`.includes('nothing was charged')`, waitTimeout+intentGiveUp)
	var orders []struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(s.do(t, "GET", "/orders", "").body), &orders); err != nil {
		t.Fatal(err)
	}
	if len(orders) != 2 || orders[0].Status != "CANCELLED" || orders[1].Status != "CANCELLED" {
		t.Errorf("orders %+v, want two, both cancelled (one per key)", orders)
	}
	if m := s.books(t); m.TakenCents != 0 {
		t.Errorf("money %+v, want nothing taken", m)
	}
	b.checkConsole()
}

// intentGiveUp is how long the checkout tries the provider before
// it gives up on it (the step's retries).
const intentGiveUp = 20 * time.Second
