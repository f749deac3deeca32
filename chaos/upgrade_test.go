package chaos_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/logtest"
	"github.com/widgetstore/widgetstore/internal/store"
)

// previousRelease is the shop as it was released before widgetstore-5:
// application version widgetstore-4, whose checkouts publish their
// placement as an event and wait for the payment webhook's word with
// dbos.Recv. The upgrade tests build it from the
// repository's history, so that the old binary is the old code itself,
// not today's code with a switch turned off; the only setting it needs is
// a clone with that history, which CI's clone of main has.
const previousRelease = "91b00ff120e59a093de0c7131ad5c3f7f14f3327"

var previous struct {
	once   sync.Once
	binary string
	err    error
}

// previousBinary builds previousRelease once for all the tests, with the
// same flags as binary, beside it.
func previousBinary(t *testing.T) string {
	t.Helper()
	previous.once.Do(func() { previous.binary, previous.err = buildRelease(previousRelease) })
	if previous.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("building the previous release: %v", previous.err)
		}
		t.Skipf("building the previous release from git history: %v", previous.err)
	}
	return previous.binary
}

// buildRelease builds the shop of a commit: its tree, taken with git
// archive into a directory beside binary, then built with buildFlags.
func buildRelease(commit string) (string, error) {
	dir := filepath.Join(filepath.Dir(binary), "release-"+commit[:12])
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	archive := exec.Command("git", "archive", "--format=tar", commit)
	archive.Dir = ".." // the repository's root
	extract := exec.Command("tar", "-x", "-C", src)
	var err error
	if extract.Stdin, err = archive.StdoutPipe(); err != nil {
		return "", err
	}
	var archiveErr, extractErr logtest.Buffer
	archive.Stderr, extract.Stderr = &archiveErr, &extractErr
	if err := extract.Start(); err != nil {
		return "", err
	}
	if err := archive.Run(); err != nil {
		extract.Wait()
		return "", fmt.Errorf("git archive %s (a clone without that commit in its history?): %w: %s", commit, err, archiveErr.String())
	}
	if err := extract.Wait(); err != nil {
		return "", fmt.Errorf("extracting %s: %w: %s", commit, err, extractErr.String())
	}
	out := filepath.Join(dir, "widgetstore")
	build := exec.Command("go", append(append([]string{"build", "-o", out}, buildFlags...), "./cmd/widgetstore")...)
	build.Dir = src
	if output, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", commit, err, output)
	}
	return out, nil
}

// The paths of a checkout: its first steps, and the steps that only its
// path takes. widgetstore-4's places its order and publishes it as an
// event, waits for the webhook's word (DBOS.recv) and dispatches its order
// itself (checkout.markDispatched); widgetstore-5's places it, hands it to
// the request in its own process and, paid, takes no step after: it ends
// as its order's row says, its order dispatched by the sweep.
type path struct {
	first, only []string
	all         bool // first is every step of the path
}

var (
	oldPath = path{first: []string{"checkout.placeOrder", "DBOS.setEvent"}, only: []string{"DBOS.setEvent", "DBOS.recv", "checkout.markDispatched"}}
	newPath = path{first: []string{"checkout.placeOrder"}, all: true}
)

// checkPaths fails the test unless every checkout of oldKeys took the old
// path from start to end (its dispatch its own step), every one of newKeys
// the new (no dispatch step: its order DISPATCHED by the sweep), and every
// one finished (SUCCESS), as DBOS's records and the orders say. On SQLite
// the shop must be stopped: one handle on the file at a time.
func checkPaths(t *testing.T, url string, oldKeys, newKeys []string) {
	t.Helper()
	checkNewOrdersDispatched(t, url, newKeys)
	client, err := dbos.NewClient(context.Background(), dbos.ClientConfig{DatabaseURL: url, AppName: "widgetstore"})
	if err != nil {
		t.Fatal(err)
	}
	defer dbos.Shutdown(client, 10*time.Second)
	check := func(keys []string, want, other path) {
		for _, key := range keys {
			steps, err := dbos.GetWorkflowSteps(client, key)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, step := range steps {
				names = append(names, step.StepName)
			}
			ok := slices.Equal(names[:min(len(want.first), len(names))], want.first) && (!want.all || len(names) == len(want.first))
			for _, name := range want.only {
				ok = ok && slices.Contains(names, name)
			}
			for _, name := range other.only {
				ok = ok && !slices.Contains(names, name)
			}
			if !ok {
				t.Errorf("checkout %s took the steps %q, want %q first (and only, %v), %q and not %q", key, names, want.first, want.all, want.only, other.only)
			}
		}
	}
	check(oldKeys, oldPath, newPath)
	check(newKeys, newPath, oldPath)
	statuses, err := dbos.ListWorkflows(client, dbos.WithFilterWorkflowIDs(append(slices.Clone(oldKeys), newKeys...)...))
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) != len(oldKeys)+len(newKeys) {
		t.Errorf("%d checkouts recorded, want %d", len(statuses), len(oldKeys)+len(newKeys))
	}
	for _, st := range statuses {
		if st.Status != dbos.WorkflowStatusSuccess {
			t.Errorf("checkout %s is %s (%v), version %s", st.ID, st.Status, st.Error, st.ApplicationVersion)
		}
	}
	versions, err := dbos.ListApplicationVersions(client)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range versions {
		names = append(names, v.Name)
	}
	if !slices.Equal(names, []string{"widgetstore-5", "widgetstore-4"}) {
		t.Errorf("application versions, newest first: %q, want widgetstore-5 then widgetstore-4", names)
	}
}

// checkNewOrdersDispatched fails the test unless the order of each of the
// checkouts keys is DISPATCHED, read from the shop's tables.
func checkNewOrdersDispatched(t *testing.T, url string, keys []string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, key := range keys {
		if o, err := store.OrderByCheckoutID(ctx, db.Q(), key); err != nil || !isDispatched(order{Status: string(o.Status)}) {
			t.Errorf("the order of checkout %s: %+v, %v; want it DISPATCHED", key, o, err)
		}
	}
}

// upgradeArgs make a dispatch last 10 s, long enough to be killed in, and
// give a payment two minutes, longer than any test waits; an instance
// silent for 3 s is taken over.
var upgradeArgs = []string{"-payment-timeout", "2m", "-dispatch-steps", "100", "-dispatch-interval", "100ms", "-takeover-after", "3s"}

// takeoverLine is what an instance logs when it takes a silent one over,
// in the previous release as today.
const takeoverLine = "took over the workflows of a silent instance"

// midDispatch is an order paid and not yet dispatched.
func midDispatch(o order) bool { return o.Status == "PAID" && o.ProgressRemaining < 100 }

// TestUpgradeWithCheckoutsInFlight runs the previous release, starts
// checkouts on it, some waiting for their payment and some paid and being
// dispatched, kills it (SIGKILL) and starts today's shop on the same
// database: every checkout of the old release finishes on the old path,
// every new one on the new, and the books balance.
func TestUpgradeWithCheckoutsInFlight(t *testing.T) {
	t.Parallel()
	old := previousBinary(t)
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newShop(t, url, upgradeArgs...)
		s.bin = old
		s.run()
		waiting := []string{s.mustPost("/checkout/old-waiting-1"), s.mustPost("/checkout/old-waiting-2")}
		dispatching := []string{
			s.mustPost("/payment_webhook/" + s.mustPost("/checkout/old-dispatching-1") + "/paid"),
			s.mustPost("/payment_webhook/" + s.mustPost("/checkout/old-dispatching-2") + "/paid"),
		}
		for _, id := range dispatching {
			s.awaitOrder(id, "being dispatched", midDispatch)
		}
		for _, id := range dispatching {
			if o := s.order(id); o.Status != "PAID" {
				t.Fatalf("order %s is %s at the upgrade, want PAID and being dispatched: the test proves nothing", id, o.Status)
			}
		}

		s.kill()
		s.bin = "" // today's
		s.run()
		if out := s.runOutput(); !strings.Contains(out, "took on the workflows of older versions") {
			t.Errorf("today's shop did not say it took on the previous release's checkouts:\n%s", out)
		}
		for _, pay := range waiting {
			dispatching = append(dispatching, s.mustPost("/payment_webhook/"+pay+"/paid"))
		}
		dispatching = append(dispatching,
			s.mustPost("/payment_webhook/"+s.mustPost("/checkout/new-1")+"/paid"),
			s.mustPost("/payment_webhook/"+s.mustPost("/checkout/new-2")+"/paid"))
		for _, id := range dispatching {
			s.awaitOrder(id, "DISPATCHED", isDispatched)
		}
		s.audit(6)
		s.stop()
		checkPaths(t, url,
			[]string{"old-waiting-1", "old-waiting-2", "old-dispatching-1", "old-dispatching-2"},
			[]string{"new-1", "new-2"})
	})
}

// TestRollingUpgrade upgrades two instances sharing one PostgreSQL one at
// a time, as a rolling deployment does: A and B run the previous release;
// A is replaced by today's shop while B still runs the old one, A is
// killed once more meanwhile and B, old, takes it over before it comes
// back, then B is replaced.
// Checkouts start throughout, on either instance, and are paid through
// either: every one finishes, the old ones on the old path and the new
// ones on the new, and the books balance.
//
// An old instance must not run a new checkout: its code does not know the
// input's version, and would take a new checkout recovered there down the
// old path. It never meets one: the new checkouts are
// widgetstore-5's, and DBOS recovers and dequeues only the workflows of an
// instance's own version. When B, old, takes A over, it recovers none of
// them, and A's restart re-enqueues them for recovery while B is old: only
// A may take them.
func TestRollingUpgrade(t *testing.T) {
	t.Parallel()
	old := previousBinary(t)
	url := dbtest.NewDatabase(t, "postgres")
	a := newShop(t, url, append(upgradeArgs, "-executor-id", "instance-a")...)
	b := newShop(t, url, append(upgradeArgs, "-executor-id", "instance-b")...)
	a.bin, b.bin = old, old
	a.startProcess("-supervise=false")
	b.startProcess("-supervise=false")
	a.awaitHealthy()
	b.awaitHealthy()

	// Both old.
	waiting := map[string]*shop{ // payment id: the instance to pay it through
		a.mustPost("/checkout/a-old-waiting"): b,
		b.mustPost("/checkout/b-old-waiting"): a,
	}
	orders := []string{
		b.mustPost("/payment_webhook/" + a.mustPost("/checkout/a-old-dispatching") + "/paid"),
		a.mustPost("/payment_webhook/" + b.mustPost("/checkout/b-old-dispatching") + "/paid"),
	}
	for _, id := range orders {
		a.awaitOrder(id, "being dispatched", midDispatch)
	}

	// A today's, B old.
	a.kill()
	a.bin = ""
	a.run()
	waiting[a.mustPost("/checkout/a-new-waiting")] = b // a new checkout, paid through an old instance
	waiting[b.mustPost("/checkout/b-old-later")] = a   // an old one, started on the old instance after the upgrade began
	orders = append(orders, b.mustPost("/payment_webhook/"+a.mustPost("/checkout/a-new-dispatching")+"/paid"))
	a.awaitOrder(orders[len(orders)-1], "being dispatched", midDispatch)
	// B, old, asked again for the key of a new checkout, waits for the
	// event that only the old checkouts set, and answers 503 at the end of
	// its wait (30 s): the client sends the key again (docs/design.md).
	type answer struct {
		status int
		took   time.Duration
		err    error
	}
	oldAsked := make(chan answer, 1)
	go func() {
		began := time.Now()
		resp, err := (&http.Client{Timeout: time.Minute}).Post(b.url()+"/checkout/a-new-waiting", "", nil)
		if err == nil {
			resp.Body.Close()
			oldAsked <- answer{resp.StatusCode, time.Since(began), nil}
			return
		}
		oldAsked <- answer{err: err}
	}()
	// A dies and stays down until B, old, has taken it over: B recovers
	// none of A's new checkouts, and A finishes them when it is back.
	tookOver := strings.Count(b.output(), takeoverLine)
	a.kill()
	deadline := time.Now().Add(time.Minute)
	for strings.Count(b.output(), takeoverLine) == tookOver {
		if time.Now().After(deadline) {
			t.Fatalf("B did not take A over within a minute of A's death:\n%s", b.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // B's queue would have run them by now, were they its version's
	a.run()

	got := <-oldAsked
	t.Logf("B, old, asked for the key of a new checkout: %d after %v (%v)", got.status, got.took.Round(time.Millisecond), got.err)
	if got.status != 503 || got.took < 29*time.Second {
		t.Errorf("B, old, asked for the key of a new checkout: %d after %v (%v), want 503 after 30 s", got.status, got.took, got.err)
	}

	// Both today's.
	b.kill()
	b.bin = ""
	b.run()
	waiting[b.mustPost("/checkout/b-new-waiting")] = a
	for pay, through := range waiting {
		orders = append(orders, through.mustPost("/payment_webhook/"+pay+"/paid"))
	}
	for _, id := range orders {
		a.awaitOrder(id, "DISPATCHED", isDispatched)
	}
	a.audit(len(orders))
	checkPaths(t, url,
		[]string{"a-old-waiting", "b-old-waiting", "a-old-dispatching", "b-old-dispatching", "b-old-later"},
		[]string{"a-new-waiting", "a-new-dispatching", "b-new-waiting"})
	a.stop()
	b.stop()
}
