package chaos_test

import (
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// stopSlack is what a stop may take beyond the shop's stop budget here:
// the process's exit and the test's noticing it, on a loaded machine.
const stopSlack = 5 * time.Second

// TestSIGTERMUnderLoadEndsWithinBudget stops the shop with SIGTERM while
// customers buy from it: it must exit with status 0 within the stop
// budget it announces, and after a restart every acknowledged checkout is
// paid and dispatched, every checkout workflow succeeded, none was
// cancelled, and the books balance.
func TestSIGTERMUnderLoadEndsWithinBudget(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newShop(t, url, "-drain", "1s", "-checkouts-per-minute", "0", "-pending-units", "0",
			"-dispatch-steps", "3", "-dispatch-interval", "200ms")
		s.run()
		s.restockFor()
		l := startLoad(s, "term", 4)
		waitForPayments(t, l, 20)

		s.cmd.Process.Signal(syscall.SIGTERM)
		signalled := time.Now()
		select {
		case <-s.done:
		case <-time.After(5 * time.Minute):
			t.Fatal("the shop did not exit within 5 minutes of SIGTERM")
		}
		took := time.Since(signalled)
		l.stop()
		budget := announcedBudget(t, s.runOutput())
		t.Logf("SIGTERM under load to exit: %v; the stop budget: %v", took.Round(time.Millisecond), budget)
		if took > budget+stopSlack {
			t.Errorf("the shop took %v to stop after SIGTERM, beyond its budget %v (and %v of slack)", took, budget, stopSlack)
		}
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("the shop exited with status %d after SIGTERM, want 0", code)
		}
		s.cmd = nil

		s.run()
		l.finish(t)
		l.checkNothingLost(t, url)
		s.checkBooks()
		s.stop()
	})
}

// waitForPayments waits until the load has had n payments acknowledged.
func waitForPayments(t *testing.T, l *load, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		l.mu.Lock()
		paid, wrong := len(l.payments), l.wrong
		l.mu.Unlock()
		if paid >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d payments acknowledged in a minute, want %d; wrong answers: %q", paid, n, wrong)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var budgetLine = regexp.MustCompile(`"shutting down".*budget=(\S+)`)

// announcedBudget is the stop budget the shop logged at its SIGTERM.
func announcedBudget(t *testing.T, output string) time.Duration {
	t.Helper()
	m := budgetLine.FindStringSubmatch(output)
	if m == nil {
		t.Fatalf("the shop did not log its stop budget:\n%s", output)
	}
	budget, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("the stop budget %q: %v", m[1], err)
	}
	return budget
}
