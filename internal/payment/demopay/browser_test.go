package demopay_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/payment"
	"github.com/widgetstore/widgetstore/internal/payment/demopay"
)

// TestBrowserPayPage pays on the page in a real, headless Chromium, under
// its Content-Security-Policy: one intent before its deadline, counted
// down, and one after it, which the page still lets the customer pay, as a
// real provider would, saying the shop will refund it.
func TestBrowserPayPage(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	ctx := context.Background()
	r := newReceiver(t, 0)
	a := launch(t, dbtest.NewDatabase(t, "sqlite"), r.config())
	s := serve(t, a.provider)
	b := newBrowser(t, chromium)

	onTime, err := a.provider.CreateIntent(ctx, intentRequest("on-time", 4998))
	if err != nil {
		t.Fatal(err)
	}
	b.run(t, "opening the page", chromedp.Navigate(s.URL+onTime.PayURL))
	b.waitJS(t, "the countdown", `/waits for this payment 0:[45]\d more/.test(document.getElementById('deadline').textContent)`)
	b.run(t, "clicking Pay", chromedp.Click(chromedp.CSS("#pay")))
	b.waitJS(t, "the paid page", `document.getElementById('status')?.textContent === 'succeeded' && !document.getElementById('pay')`)
	waitFor(t, "the payment's event reaches the shop", func() bool {
		_, events, _ := r.state()
		return len(events) == 1 && events[0].IntentID == onTime.ID && events[0].Type == payment.EventSucceeded
	})

	lateReq := intentRequest("late", 1299)
	lateReq.ExpiresAt = time.Now().Add(-90 * time.Second)
	late, err := a.provider.CreateIntent(ctx, lateReq)
	if err != nil {
		t.Fatal(err)
	}
	b.run(t, "opening the late intent's page", chromedp.Navigate(s.URL+late.PayURL))
	b.waitJS(t, "the deadline passed", `/stopped waiting 1:3\d ago: pay now and it will refund you/.test(document.getElementById('deadline').textContent)`)
	b.run(t, "clicking Pay after the deadline", chromedp.Click(chromedp.CSS("#pay")))
	b.waitJS(t, "the late payment taken", `document.getElementById('status')?.textContent === 'succeeded'`)
	if v := intentView(t, a.provider, late.ID); v.Status != demopay.StatusSucceeded {
		t.Errorf("late intent %s is %s, want succeeded", late.ID, v.Status)
	}
	b.checkConsole(t)
}

// findChromium returns the browser to drive, or skips (fails under CI=true)
// when there is none, as internal/web's browser tests do.
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

// browser is one headless Chromium tab and what its console said.
type browser struct {
	ctx     context.Context
	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func newBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(profile),
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(profile, "config"), "XDG_CACHE_HOME="+filepath.Join(profile, "cache")),
	)
	lifetime, cancelLifetime := context.WithTimeout(context.Background(), 3*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(lifetime, opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelTab(); cancelAlloc(); cancelLifetime() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	b := &browser{ctx: ctx}
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

func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v; the page shows %q", what, err, b.text())
	}
}

// waitJS waits until the JavaScript expression is true on the page. A
// poll cut short because the page navigated (a form's submission) is
// polled again on the new page.
func (b *browser) waitJS(t *testing.T, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(5*time.Second)))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v; the page shows %q", what, err, b.text())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// text is the page's text, for failure messages.
func (b *browser) text() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return strings.Join(strings.Fields(s), " ")
}

// checkConsole fails on the page's exceptions and errors, among them the
// browser's reports of what the Content-Security-Policy blocked; the
// browser's own request of /favicon.ico, which the test's server lacks,
// is not the page's.
func (b *browser) checkConsole(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		favicon := m.Source == "network" && strings.HasSuffix(m.URL, "/favicon.ico")
		if m.IsException() || (m.Type == chromedp.ConsoleError && !favicon) {
			t.Errorf("the page logged: %s (%s:%s)", m, m.URL, strconv.Itoa(int(m.Line)+1))
		}
	}
}
