package web_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestInternalFailureAnswers500 makes the order's INSERT fail inside a
// checkout (a trigger refuses it): the client reads 500 "internal error",
// never a client error such as 404, and the failure is logged at error
// level once, with its cause.
func TestInternalFailureAnswers500(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServer(t, url, testConfig)
		trigger := map[string]string{
			"sqlite": `CREATE TRIGGER refuse_orders BEFORE INSERT ON orders BEGIN SELECT RAISE(ABORT, 'orders refused by the test'); END`,
			"postgres": `CREATE FUNCTION refuse_orders() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'orders refused by the test'; END $$;
				CREATE TRIGGER refuse_orders BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION refuse_orders()`,
		}[s.db.Engine()]
		if _, err := s.db.Q().Exec(context.Background(), trigger); err != nil {
			t.Fatal(err)
		}

		r := s.do(t, "POST", "/checkout/refused-by-trigger", "")
		if r.status != http.StatusInternalServerError || r.body != "{\"error\":\"internal error\"}\n" {
			t.Errorf("answer %d %s, want 500 internal error", r.status, r.body)
		}
		errorLines := s.logs.Lines("level=ERROR")
		if len(errorLines) != 1 || !strings.Contains(errorLines[0], "refused-by-trigger") || !strings.Contains(errorLines[0], "orders refused by the test") {
			t.Errorf("want one error line naming the checkout and the cause, got %d:\n%s", len(errorLines), strings.Join(errorLines, "\n"))
		}
	})
}

// TestUnavailableDatabaseAnswers503: while PostgreSQL cuts the shop's
// connections (as a restart or a failover does), requests answer 503 with
// Retry-After, never 500, and the same request succeeds once it is back.
func TestUnavailableDatabaseAnswers503(t *testing.T) {
	// Not parallel: the requests must meet the cut connections before the
	// pool notices, and the other tests' load makes them late.
	url := dbtest.NewDatabase(t, "postgres")
	s := newTestServer(t, url, testConfig)
	paymentID := s.do(t, "POST", "/checkout/before-the-cut", "").body
	order := s.do(t, "GET", "/order/1", "")
	if order.status != 200 {
		t.Fatalf("GET /order/1: %d %s", order.status, order.body)
	}

	// Cut every connection of the shop's pool, then send requests at once,
	// so that they take every pooled connection, dead or not. Under load a
	// burst may meet none (1 run in 6 on a busy 2-core machine): the pool
	// pings a connection idle for over a second and replaces it unseen, and
	// DBOS shares the pool. So cut and send again, up to 5 times, until one
	// does.
	var mu sync.Mutex
	statuses := map[int]int{}
	cuts := 0
	for ; cuts < 5 && statuses[http.StatusServiceUnavailable] == 0; cuts++ {
		if _, err := s.db.Q().Exec(context.Background(), `
			SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 30 {
			wg.Go(func() {
				resp, err := http.Get(s.URL + "/order/1")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	t.Logf("answers by status %v, after %d cuts", statuses, cuts)
	if len(statuses) > 2 || statuses[http.StatusServiceUnavailable]+statuses[http.StatusOK] == 0 {
		t.Errorf("answers by status %v, want only 503 and 200", statuses)
	}
	if statuses[http.StatusServiceUnavailable] == 0 {
		t.Error("no request met a cut connection in 5 tries: the test proves nothing")
	}
	// Each 503 is logged once, at Warn: a moment's trouble, not a failure.
	if n := len(s.logs.Lines("request.path=/order/1", "status=503", "level=WARN")); n != statuses[http.StatusServiceUnavailable] {
		t.Errorf("%d 503s logged at Warn, want one per 503 (%d)", n, statuses[http.StatusServiceUnavailable])
	}
	if errs := s.logs.Lines("request.path=/order/1", "level=ERROR"); len(errs) > 0 {
		t.Errorf("the cut connections were logged as errors:\n%s", strings.Join(errs, "\n"))
	}
	if r := s.do(t, "POST", "/payment_webhook/"+paymentID+"/paid", ""); r.status != 200 {
		t.Errorf("paying after the cut: %d %s", r.status, r.body)
	}
}
