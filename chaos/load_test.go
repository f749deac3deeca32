package chaos_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
)

// load is customers buying one widget after another from a shop, each a
// checkout under a new key and then its payment, as a careful client
// does: a request that fails for want of the shop (no answer, or 503) is
// sent again, the same, until it is answered. It records what the shop
// acknowledged and every answer, so a test can check that nothing
// acknowledged was lost and count what was refused.
type load struct {
	s      *shop  // where the customers check out
	payVia *shop  // where their payments are reported: s, or another instance
	prefix string // of the keys, so that two loads on one database differ

	mu         sync.Mutex
	checkouts  map[string]string // acknowledged: key -> payment id
	payments   map[string]string // acknowledged paid: payment id -> order id
	answers    []answer
	unfinished []buying // left by the customers when the load stopped
	wrong      []string // answers no client should get (a 4xx, or a 503 without Retry-After)

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// buying is one customer's purchase in progress.
type buying struct {
	key       string
	paymentID string // "" until its checkout is acknowledged
}

// answer is one request's outcome: its HTTP status, 0 for no answer.
type answer struct {
	at       time.Time
	checkout bool // a checkout, else a payment
	status   int
}

// startLoad starts customers buying from s until stop, their payments
// reported to s too.
func startLoad(s *shop, prefix string, customers int) *load {
	return startLoadVia(s, s, prefix, customers)
}

// startLoadVia starts customers checking out on s and their payments
// reported to payVia, until stop.
func startLoadVia(s, payVia *shop, prefix string, customers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{s: s, payVia: payVia, prefix: prefix, checkouts: map[string]string{}, payments: map[string]string{}, cancel: cancel}
	for c := range customers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for n := 0; ctx.Err() == nil; n++ {
				p := buying{key: fmt.Sprintf("%s-%d-%d", prefix, c, n)}
				if !l.buy(ctx, &p) {
					l.mu.Lock()
					l.unfinished = append(l.unfinished, p)
					l.mu.Unlock()
					return
				}
			}
		}()
	}
	return l
}

// restockFor tops every product up to a level no load here sells out.
func (s *shop) restockFor() {
	s.t.Helper()
	resp, err := s.http.Post(s.url()+"/restock", "application/json", strings.NewReader(`{"level": 1000000}`))
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		s.t.Fatalf("POST /restock: %s", resp.Status)
	}
}

// stop stops the customers and waits for them.
func (l *load) stop() {
	l.cancel()
	l.done.Wait()
}

// buy takes p through its checkout and payment, and reports whether it
// finished before ctx was done.
func (l *load) buy(ctx context.Context, p *buying) bool {
	for p.paymentID == "" {
		status, body, ok := l.send(ctx, l.s, true, "/checkout/"+p.key)
		if !ok {
			return false
		}
		if status == 200 {
			p.paymentID = body
			l.mu.Lock()
			l.checkouts[p.key] = body
			l.mu.Unlock()
		}
	}
	for {
		status, body, ok := l.send(ctx, l.payVia, false, "/payment_webhook/"+p.paymentID+"/paid")
		if !ok {
			return false
		}
		if status == 200 {
			l.mu.Lock()
			l.payments[p.paymentID] = body
			l.mu.Unlock()
			return true
		}
	}
}

// send posts path to a shop until the shop answers it, other than with 503, or ctx
// is done (ok false). It waits a little between tries: a client that
// honoured Retry-After (1 s) would measure the shop's pause less finely.
func (l *load) send(ctx context.Context, to *shop, checkout bool, path string) (status int, body string, ok bool) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, to.url()+path, nil)
		resp, err := to.http.Do(req)
		if ctx.Err() != nil {
			return 0, "", false
		}
		a := answer{at: time.Now(), checkout: checkout}
		var text string
		if err == nil {
			a.status = resp.StatusCode
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			text = strings.TrimSpace(string(b))
			if a.status == 503 && resp.Header.Get("Retry-After") == "" {
				l.note("%s: 503 without Retry-After", path)
			}
		}
		l.mu.Lock()
		l.answers = append(l.answers, a)
		l.mu.Unlock()
		switch {
		case a.status == 200:
			return 200, text, true
		case a.status != 0 && a.status != 503:
			// 4xx: the client's request is wrong, which it is not here;
			// 500: the shop failed. Either way the purchase cannot go on.
			l.note("%s: %d %s", path, a.status, text)
			return a.status, text, true
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return 0, "", false
}

func (l *load) note(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.wrong) < 20 {
		l.wrong = append(l.wrong, fmt.Sprintf(format, args...))
	}
}

// finish takes every purchase the customers left unfinished through its
// checkout and payment, as the customers would on their next try (the
// same key, then its payment id), and fails the test unless each is
// acknowledged within a minute.
func (l *load) finish(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range l.unfinished {
		if !l.buy(ctx, &p) {
			t.Fatalf("purchase %s (payment %q) not acknowledged within a minute of the restart", p.key, p.paymentID)
		}
	}
	l.unfinished = nil
}

// checkNothingLost fails the test unless every acknowledged checkout was
// paid (load.finish pays those left unpaid), every acknowledged payment's
// order is dispatched, and every checkout workflow on databaseURL ended
// in SUCCESS: none cancelled, none failed, none left pending. It waits up
// to two minutes for the dispatches.
func (l *load) checkNothingLost(t *testing.T, databaseURL string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, problem := range l.wrong {
		t.Errorf("answered wrongly: %s", problem)
	}
	for key, paymentID := range l.checkouts {
		if _, ok := l.payments[paymentID]; !ok {
			t.Errorf("checkout %s acknowledged with payment %s, which was never acknowledged paid", key, paymentID)
		}
	}
	for paymentID, orderID := range l.payments {
		o := l.s.awaitOrder(orderID, "DISPATCHED", func(o order) bool { return o.Status == "PAID" || o.Status == "DISPATCHED" })
		if o.PaymentID != paymentID {
			t.Errorf("payment %s was acknowledged with order %s, whose payment is %s", paymentID, orderID, o.PaymentID)
		}
	}
	client, err := dbos.NewClient(context.Background(), dbos.ClientConfig{DatabaseURL: databaseURL, AppName: "widgetstore",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer dbos.Shutdown(client, 10*time.Second)
	began := time.Now()
	deadline := began.Add(2 * time.Minute)
	for {
		workflows, err := dbos.ListWorkflows(client, dbos.WithFilterName("checkout.Checkout"), dbos.WithFilterLoadInput(false), dbos.WithFilterLoadOutput(false))
		if err != nil {
			t.Fatal(err)
		}
		byStatus := map[dbos.WorkflowStatusType]int{}
		var notDone []string
		for _, w := range workflows {
			byStatus[w.Status]++
			if w.Status != dbos.WorkflowStatusSuccess && len(notDone) < 10 {
				notDone = append(notDone, w.ID+" "+string(w.Status))
			}
		}
		if len(workflows) < len(l.checkouts) {
			t.Fatalf("%d checkout workflows, fewer than the %d checkouts acknowledged", len(workflows), len(l.checkouts))
		}
		if byStatus[dbos.WorkflowStatusCancelled]+byStatus[dbos.WorkflowStatusError] > 0 {
			t.Fatalf("checkout workflows by status: %v; not succeeded: %q", byStatus, notDone)
		}
		if len(notDone) == 0 {
			t.Logf("%d checkout workflows, all SUCCESS (%v after the last acknowledgement was checked); %d checkouts and %d payments acknowledged",
				len(workflows), time.Since(began).Round(time.Millisecond), len(l.checkouts), len(l.payments))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkout workflows by status, two minutes on: %v; not done: %q", byStatus, notDone)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
