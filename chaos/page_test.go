package chaos_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestPageShowsCheckpointsAcrossKill: the shop's page, in a real Chromium,
// lists the checkout's checkpoints beside the order while the real server
// is killed (SIGKILL) as the checkout awaits its payment and started
// again: the moment it went away and came back, the steps recorded before
// the kill listed once, and the payment and the dispatch after it.
func TestPageShowsCheckpointsAcrossKill(t *testing.T) {
	t.Parallel()
	chromium := ""
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			chromium = path
			break
		}
	}
	if chromium == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed, and CI=true requires the browser tests (apt-get install chromium)")
		}
		t.Skip("skipping: chromium is not installed (apt-get install chromium)")
	}
	s := newShop(t, dbtest.NewDatabase(t, "sqlite"), "-dispatch-steps", "100", "-dispatch-interval", "50ms")
	s.run()

	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.Headless,
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(profile),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(profile, "config"), "XDG_CACHE_HOME="+filepath.Join(profile, "cache")))
	lifetime, cancelLifetime := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancelLifetime()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(lifetime, opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(actx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	wait := func(what, expr string) {
		t.Helper()
		actx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		_, err := chromedp.Run(actx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(45*time.Second)))
		if err != nil {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#checkpoints')?.innerText ?? ''`))
			if errors.Is(err, chromedp.ErrPollingTimeout) {
				t.Fatalf("waited 45 s for %s; the checkpoints read:\n%s", what, text)
			}
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	listed := func(name string) string {
		return `document.querySelectorAll('#checkpoints li[data-name="` + name + `"]').length`
	}

	do("opening the shop", chromedp.Navigate(s.url()))
	wait("the product cards", `document.querySelectorAll('.product[data-product-id]').length > 0`)
	do("clicking Buy", chromedp.Click(chromedp.CSS(`.product[data-product-id="1"] .buy`)))
	wait("the payment id", `!!document.querySelector('#payment-id')?.textContent`)
	wait("the placement's checkpoint, the checkout awaiting its payment", listed("checkout.placeOrder")+` === 1 && `+listed("order.paid")+` === 0`)

	// Killed while the checkout waits for its payment: a checkout of
	// widgetstore-5 ends at the payment, its order dispatched by the
	// shop's sweep, so this is where a kill finds it running.
	s.kill()
	wait("the page to see the server gone", `!!document.querySelector('#checkpoints li.down')`)
	s.run()
	wait("the server back and the restart", `!!document.querySelector('#checkpoints li.up') && `+
		`!!document.querySelector('#checkpoints li.restart')`)
	do("paying", chromedp.Click(chromedp.CSS("#pay")))
	wait("the payment and the dispatch finished", listed("order.paid")+` === 1 && `+listed("order.dispatched")+` === 1`)
	for _, name := range []string{"checkout.placeOrder", "order.paid"} {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](listed(name)))
		if err != nil || n != 1 {
			t.Errorf("%s is listed %d times (%v), want once: the restart must not run it again", name, n, err)
		}
	}
	recovered, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#durability-recovered').hidden ? '' : document.querySelector('#durability-recovered').textContent`))
	if err != nil || recovered == "" {
		t.Errorf("the page does not say the checkout was recovered (%v)", err)
	}
	key, err := chromedp.Run(ctx, chromedp.Evaluate[string](`localStorage.getItem('widgetstore.durability') ?? ''`))
	if err != nil || key == "" {
		t.Fatalf("reading the checkout's key from the page: %q, %v", key, err)
	}
	if !strings.Contains(s.runOutput(), `msg="recovered a workflow after a restart" workflow=`+key) {
		t.Errorf("the second run logged no recovery of checkout %s:\n%s", key, s.runOutput())
	}
	resp, err := s.http.Get(s.url() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	scraped, err := io.ReadAll(resp.Body)
	// The checkout, and a retention run if one was under way at the kill.
	if err != nil || !regexp.MustCompile(`\nwidgetstore_workflows_recovered_total [12]\n`).Match(scraped) {
		t.Errorf("GET /metrics after the restart (%v): want widgetstore_workflows_recovered_total 1 or 2", err)
	}
	s.audit(1)
}
