package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/store"
	"github.com/widgetstore/widgetstore/internal/web"
)

// consoleToken is the operator token of the console's tests.
const consoleToken = "s3cret"

// failDispatch makes the database refuse to mark any order DISPATCHED, as a
// broken database would, so that a paid checkout of version 4 fails at its
// last step; the returned function lifts the refusal.
func failDispatch(t testing.TB, db *store.DB) (repair func()) {
	t.Helper()
	return failOrderStatus(t, db, "DISPATCHED")
}

// failOrderStatus makes the database refuse to give any order that status
// until the returned function lifts the refusal. It is a trigger: the
// checkout meets a real error from its real database.
func failOrderStatus(t testing.TB, db *store.DB, status string) (repair func()) {
	t.Helper()
	ctx := context.Background()
	create := []string{`CREATE TRIGGER fail_status BEFORE UPDATE ON orders
		WHEN NEW.status = '` + status + `' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`}
	drop := []string{`DROP TRIGGER fail_status`}
	if db.Engine() == "postgres" {
		create = []string{
			`CREATE FUNCTION fail_status() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$ LANGUAGE plpgsql`,
			`CREATE TRIGGER fail_status BEFORE UPDATE ON orders FOR EACH ROW
				WHEN (NEW.status = '` + status + `') EXECUTE FUNCTION fail_status()`,
		}
		drop = []string{`DROP TRIGGER fail_status ON orders`, `DROP FUNCTION fail_status()`}
	}
	for _, stmt := range create {
		if _, err := db.Q().Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return func() {
		t.Helper()
		for _, stmt := range drop {
			if _, err := db.Q().Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
}

// failedCheckout places and pays the checkout key, one of version 4 (a
// checkout of widgetstore-4 in flight: one of this build ends at the
// payment, its order dispatched by the sweep), whose dispatch the database
// then refuses (failDispatch), and waits for it to fail: its payment id,
// its view, and the repair of the database.
func failedCheckout(t *testing.T, s *testServer, op *operatorClient, key string) (paymentID string, failed workflowView, repair func()) {
	t.Helper()
	repair = failDispatch(t, s.db)
	paymentID = s.startVersion4(t, key)
	if r := s.do(t, "POST", "/payment_webhook/"+paymentID+"/paid", ""); r.status != 200 {
		t.Fatalf("paying: %d %s", r.status, r.body)
	}
	failed = op.waitWorkflow(t, key, "ERROR", func(v workflowView) bool { return v.Workflow.Status == "ERROR" })
	return paymentID, failed, repair
}

// operatorClient talks to the console's API as the page does, with a
// session cookie and the page's Origin.
type operatorClient struct {
	s      *testServer
	cookie string // "name=value"
}

// signIn exchanges the operator token for a session cookie.
func signIn(t testing.TB, s *testServer) *operatorClient {
	t.Helper()
	status, body, header := rawDo(t, s, "POST", "/api/operator/session", `{"token":"`+consoleToken+`"}`, "Origin", s.URL)
	if status != 200 {
		t.Fatalf("signing in: %d %s", status, body)
	}
	setCookie := header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("the session cookie %q lacks %s", setCookie, want)
		}
	}
	cookie, _, _ := strings.Cut(setCookie, ";")
	return &operatorClient{s: s, cookie: cookie}
}

func (c *operatorClient) do(t testing.TB, method, path, body string) (int, string) {
	t.Helper()
	status, answer, _ := rawDo(t, c.s, method, path, body, "Cookie", c.cookie, "Origin", c.s.URL, "Sec-Fetch-Site", "same-origin")
	return status, answer
}

// getJSON reads an operator's GET into v, failing unless it answers 200.
func (c *operatorClient) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	status, body := c.do(t, "GET", path, "")
	if status != 200 {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// rawDo is s.do for the callers that want the answer's headers.
func rawDo(t testing.TB, s *testServer, method, path, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	r := s.do(t, method, path, body, header...)
	return r.status, r.body, r.header
}

type workflowView struct {
	Workflow struct {
		ID          string `json:"workflow_id"`
		Name        string `json:"name"`
		Status      string `json:"status"`
		Error       string `json:"error"`
		ForkedFrom  string `json:"forked_from"`
		AppVersion  string `json:"app_version"`
		Resumable   bool   `json:"resumable"`
		Cancellable bool   `json:"cancellable"`
		Rewindable  bool   `json:"rewindable"`
	} `json:"workflow"`
	Steps []struct {
		ID          int             `json:"step_id"`
		Name        string          `json:"name"`
		Output      json.RawMessage `json:"output"`
		Error       string          `json:"error"`
		ForkRefused string          `json:"fork_refused"`
	} `json:"steps"`
	Forks  []string   `json:"forks"`
	Order  *orderView `json:"order"`
	Ledger []struct {
		Delta  int    `json:"delta"`
		Reason string `json:"reason"`
	} `json:"ledger"`
}

// stepID is the id of the workflow's step of that name, or -1.
func (v workflowView) stepID(name string) int {
	for _, s := range v.Steps {
		if s.Name == name {
			return s.ID
		}
	}
	return -1
}

// waitWorkflow polls the workflow until ok says it is as wanted.
func (c *operatorClient) waitWorkflow(t testing.TB, id, what string, ok func(workflowView) bool) workflowView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var v workflowView
		c.getJSON(t, "/api/workflows/"+id, &v)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow %s: waited 30 s for %s; it is %+v", id, what, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsoleActions drives the console's JSON API as the page does, on
// both engines: sign in, find a checkout by its order and its payment, read
// its steps, cancel it, see a failed checkout's error and no resume for it,
// fork it from a step and see the fork finish; every refusal a 409 saying
// why, cookie requests from elsewhere refused, and every action in the
// audit log.
func TestConsoleActions(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServerWith(t, url, testConfig, web.Options{OperatorToken: []byte(consoleToken)})
		if status, body, _ := rawDo(t, s, "POST", "/api/operator/session", `{"token":"wrong"}`, "Origin", s.URL); status != 401 {
			t.Errorf("signing in with a wrong token: %d %s, want 401", status, body)
		}
		if status, body, _ := rawDo(t, s, "POST", "/api/operator/session", `{"token":"`+consoleToken+`"}`, "Origin", "http://evil.example"); status != 403 {
			t.Errorf("signing in from another site's page: %d %s, want 403", status, body)
		}
		op := signIn(t, s)

		// A pending checkout, found by its order id and by its payment id.
		paymentID := s.do(t, "POST", "/checkout/console-pending", "").body
		orders := listOrders(t, s)
		if len(orders) != 1 {
			t.Fatalf("orders: %+v", orders)
		}
		for _, q := range []string{strconv.FormatInt(orders[0].ID, 10), paymentID} {
			var found struct {
				ID string `json:"workflow_id"`
			}
			op.getJSON(t, "/api/console/find?q="+q, &found)
			if found.ID != "console-pending" {
				t.Errorf("find %s: %q, want console-pending", q, found.ID)
			}
		}
		if status, body := op.do(t, "GET", "/api/console/find?q=999999", ""); status != 404 {
			t.Errorf("find an unknown order: %d %s, want 404", status, body)
		}
		pending := op.waitWorkflow(t, "console-pending", "its order placed", func(v workflowView) bool {
			return v.stepID("checkout.placeOrder") >= 0
		})
		if !pending.Workflow.Cancellable || pending.Workflow.Resumable || pending.Order == nil || pending.Order.Status != "PENDING" {
			t.Fatalf("the pending checkout: %+v", pending)
		}
		if status, body := op.do(t, "POST", "/api/workflows/console-pending/fork", `{"start_step": 2}`); status != 409 || !strings.Contains(body, "cancel it before forking") {
			t.Errorf("forking a running checkout: %d %s, want 409 saying to cancel it first", status, body)
		}

		// A cookie alone, from another site or with no Origin, changes nothing.
		for _, header := range [][]string{
			{"Cookie", op.cookie},
			{"Cookie", op.cookie, "Origin", "http://evil.example"},
			{"Cookie", op.cookie, "Origin", s.URL, "Sec-Fetch-Site", "cross-site"},
		} {
			if status, body, _ := rawDo(t, s, "POST", "/api/workflows/console-pending/cancel", "", header...); status != 403 {
				t.Errorf("cancel with %q: %d %s, want 403", header, status, body)
			}
		}
		if status, body, _ := rawDo(t, s, "POST", "/api/workflows/console-pending/cancel", ""); status != 401 {
			t.Errorf("cancel with no credentials: %d %s, want 401", status, body)
		}
		if v := op.waitWorkflow(t, "console-pending", "anything", func(workflowView) bool { return true }); v.Workflow.Status != "PENDING" {
			t.Fatalf("refused cancels left the checkout %s", v.Workflow.Status)
		}

		if status, body := op.do(t, "POST", "/api/workflows/console-pending/cancel", ""); status != 202 {
			t.Fatalf("cancel: %d %s", status, body)
		}
		cancelled := op.waitWorkflow(t, "console-pending", "CANCELLED", func(v workflowView) bool { return v.Workflow.Status == "CANCELLED" })
		if !cancelled.Workflow.Resumable || cancelled.Workflow.Cancellable {
			t.Errorf("a cancelled checkout: resumable %v, cancellable %v; want resumable only", cancelled.Workflow.Resumable, cancelled.Workflow.Cancellable)
		}
		if status, body := op.do(t, "POST", "/api/workflows/console-pending/cancel", ""); status != 409 {
			t.Errorf("cancelling a cancelled checkout: %d %s, want 409", status, body)
		}

		// Forked from after its order was placed, the cancelled checkout's
		// fork carries on with the same order; the original may then not
		// be resumed as well.
		afterPlace := pending.stepID("checkout.placeOrder") + 1
		status, body := op.do(t, "POST", "/api/workflows/console-pending/fork", `{"start_step": `+strconv.Itoa(afterPlace)+`}`)
		var pendingFork struct {
			ForkID string `json:"fork_id"`
		}
		if err := json.Unmarshal([]byte(body), &pendingFork); status != 202 || err != nil || pendingFork.ForkID == "" {
			t.Fatalf("forking the cancelled checkout from step %d, after placeOrder: %d %s", afterPlace, status, body)
		}
		if v := op.waitWorkflow(t, pendingFork.ForkID, "its order", func(v workflowView) bool { return v.Order != nil }); v.Order.ID != orders[0].ID {
			t.Errorf("the fork's order: %+v, want the original's, %d", v.Order, orders[0].ID)
		}
		if status, body := op.do(t, "POST", "/api/workflows/console-pending/resume", ""); status != 409 || !strings.Contains(body, pendingFork.ForkID) {
			t.Errorf("resuming a checkout that was forked: %d %s, want 409 naming the fork", status, body)
		}
		if status, body := op.do(t, "POST", "/api/workflows/"+pendingFork.ForkID+"/cancel", ""); status != 202 {
			t.Fatalf("cancelling the fork: %d %s", status, body)
		}

		// A paid checkout of version 4 whose dispatch the database
		// refuses fails, with its error's text.
		failedPayment, failed, repair := failedCheckout(t, s, op, "console-failed")
		if !strings.Contains(failed.Workflow.Error, "disk on fire") {
			t.Errorf("the failed checkout's error reads %q, want the database's 'disk on fire'", failed.Workflow.Error)
		}
		if failed.Workflow.Resumable {
			t.Errorf("a failed checkout is said to be resumable: DBOS v1.8.0 does not resume ERROR")
		}
		if status, body := op.do(t, "POST", "/api/workflows/console-failed/resume", ""); status != 409 || !strings.Contains(body, "fork") {
			t.Errorf("resuming a failed checkout: %d %s, want 409 pointing at fork", status, body)
		}
		place, dispatch := failed.stepID("checkout.placeOrder"), failed.stepID("checkout.markDispatched")
		if place < 0 || dispatch < 0 {
			t.Fatalf("the failed checkout's steps lack placeOrder or markDispatched: %+v", failed.Steps)
		}
		for _, step := range []int{0, place} {
			status, body := op.do(t, "POST", "/api/workflows/console-failed/fork", `{"start_step": `+strconv.Itoa(step)+`}`)
			if status != 409 || !strings.Contains(body, "second order") {
				t.Errorf("forking from step %d (placeOrder is %d): %d %s, want 409 for a second order", step, place, status, body)
			}
		}
		for _, body := range []string{`{}`, `{"start_step": 99}`, `{"start_step": -1}`, `{"start_step": "x"}`} {
			if status, answer := op.do(t, "POST", "/api/workflows/console-failed/fork", body); status != 400 {
				t.Errorf("fork with %s: %d %s, want 400", body, status, answer)
			}
		}
		repair()
		status, body = op.do(t, "POST", "/api/workflows/console-failed/fork", `{"start_step": `+strconv.Itoa(dispatch)+`}`)
		var forked struct {
			ForkID string `json:"fork_id"`
		}
		if err := json.Unmarshal([]byte(body), &forked); status != 202 || err != nil || forked.ForkID == "" {
			t.Fatalf("forking from markDispatched: %d %s", status, body)
		}
		fork := op.waitWorkflow(t, forked.ForkID, "SUCCESS", func(v workflowView) bool { return v.Workflow.Status == "SUCCESS" })
		if fork.Workflow.ForkedFrom != "console-failed" || fork.Order == nil || fork.Order.Status != "DISPATCHED" || fork.Order.PaymentID != failedPayment {
			t.Errorf("the fork: %+v, want it forked from console-failed with the same order, DISPATCHED", fork)
		}
		if len(fork.Ledger) != 1 || fork.Ledger[0].Delta != -1 {
			t.Errorf("the dispatched order's stock ledger: %+v, want one reservation of 1", fork.Ledger)
		}
		if len(listOrders(t, s)) != 2 {
			t.Errorf("the fork placed an order of its own: %+v", listOrders(t, s))
		}
		if status, body := op.do(t, "POST", "/api/workflows/console-failed/fork", `{"start_step": `+strconv.Itoa(dispatch)+`}`); status != 409 {
			t.Errorf("forking again: %d %s, want 409", status, body)
		}
		if breaches := auditBreaches(t, s, "Authorization", "Bearer "+consoleToken); len(breaches) != 0 {
			t.Errorf("the books after the console's actions: %q", breaches)
		}

		// The audit log has every action, refused ones too, with who and whence.
		var actions []struct {
			Actor, Address, Action, Detail, Outcome string
			WorkflowID                              string `json:"workflow_id"`
		}
		op.getJSON(t, "/api/operator/actions", &actions)
		var done, refused int
		for _, a := range actions {
			if !strings.HasPrefix(a.Actor, "session ") || a.Address == "" {
				t.Errorf("audit row %+v: want a session and an address", a)
			}
			if strings.HasPrefix(a.Outcome, "refused: ") {
				refused++
			} else {
				done++
			}
		}
		// Done: two cancels, two forks. Refused: the running fork, the
		// second cancel, the resume after a fork, the failed checkout's
		// resume, two early forks, a fork from no step (99) and the second
		// fork; the malformed bodies (400) are not actions.
		if done != 4 || refused != 8 {
			t.Errorf("the audit log has %d done and %d refused actions, want 4 and 8: %+v", done, refused, actions)
		}
		if actions[0].Action != "fork" || !strings.HasPrefix(actions[0].Outcome, "refused") || actions[1].Outcome != "forked as "+forked.ForkID {
			t.Errorf("the newest audit rows: %+v", actions[:2])
		}

		var stuck struct {
			PastDeadline []string `json:"past_deadline"`
			Failed       []struct {
				ID    string `json:"workflow_id"`
				Error string `json:"error"`
			} `json:"failed"`
			Breaches []string `json:"breaches"`
		}
		op.getJSON(t, "/api/console/stuck", &stuck)
		if len(stuck.Failed) != 1 || stuck.Failed[0].ID != "console-failed" || !strings.Contains(stuck.Failed[0].Error, "disk on fire") ||
			len(stuck.Breaches) != 0 {
			t.Errorf("stuck work: %+v, want the failed checkout with its error", stuck)
		}
		// The shop page's list has the error's text too.
		var listed []struct {
			ID    string `json:"workflow_id"`
			Error string `json:"error"`
		}
		op.getJSON(t, "/api/workflows?status=ERROR", &listed)
		if len(listed) != 1 || !strings.Contains(listed[0].Error, "disk on fire") {
			t.Errorf("GET /api/workflows?status=ERROR: %+v, want the failed checkout with its error", listed)
		}

		// Signed out, the cookie opens nothing.
		if status, body := op.do(t, "DELETE", "/api/operator/session", ""); status != 200 {
			t.Fatalf("signing out: %d %s", status, body)
		}
		if status, body := op.do(t, "GET", "/api/workflows", ""); status != 401 {
			t.Errorf("after signing out: %d %s, want 401", status, body)
		}
	})
}

// auditBreaches reads GET /api/audit's breaches, failing unless it answers
// a list.
func auditBreaches(t testing.TB, s *testServer, header ...string) []string {
	t.Helper()
	r := s.do(t, "GET", "/api/audit", "", header...)
	var audit struct {
		Breaches *[]string `json:"breaches"`
	}
	if err := json.Unmarshal([]byte(r.body), &audit); r.status != 200 || err != nil || audit.Breaches == nil {
		t.Fatalf("GET /api/audit: %d %s", r.status, r.body)
	}
	return *audit.Breaches
}

// TestSignInRefusesGuessing: a client that sends wrong tokens is refused,
// after a few, with 429 and Retry-After, the right token included, until
// it has waited; another client is not.
func TestSignInRefusesGuessing(t *testing.T) {
	t.Parallel()
	s := newTestServerWith(t, dbtest.NewDatabase(t, "sqlite"), testConfig,
		web.Options{OperatorToken: []byte(consoleToken), BehindProxy: true})
	const guesser, operator = "203.0.113.7", "198.51.100.9"
	for i := range 5 {
		status, body, _ := rawDo(t, s, "POST", "/api/operator/session", `{"token":"guess-`+strconv.Itoa(i)+`"}`, "X-Forwarded-For", guesser)
		if status != 401 {
			t.Fatalf("wrong token %d: %d %s, want 401", i, status, body)
		}
	}
	status, body, header := rawDo(t, s, "POST", "/api/operator/session", `{"token":"`+consoleToken+`"}`, "X-Forwarded-For", guesser)
	if status != 429 || header.Get("Retry-After") == "" || header.Get("Set-Cookie") != "" {
		t.Errorf("the right token after five wrong ones: %d %s (Retry-After %q), want 429 and no cookie", status, body, header.Get("Retry-After"))
	}
	status, body, header = rawDo(t, s, "POST", "/api/operator/session", `{"token":"`+consoleToken+`"}`, "X-Forwarded-For", operator)
	if status != 200 || header.Get("Set-Cookie") == "" {
		t.Errorf("another client's right token: %d %s, want 200 with a cookie", status, body)
	}
}
