package web_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/web"
)

// TestConsoleRewind: a paid checkout of version 4 (one of this build
// ends at the payment) whose dispatch the database refused (a real ERROR,
// from a trigger) is rewound in place from its payment wait,
// once the database is mended, and finishes under its own id with its own
// order: the payment word the rewind deleted is sent again from the order
// row (the wait records it rather than timing out), nothing is placed or
// reserved twice, and both books are clean. Rewinds the guards refuse are
// 409s saying why, malformed ones 400s; every one is in the audit log.
func TestConsoleRewind(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServerWith(t, url, testConfig, web.Options{OperatorToken: []byte(consoleToken)})
		op := signIn(t, s)

		// A cancelled checkout is resumed, not rewound.
		s.do(t, "POST", "/checkout/rewind-cancelled", "")
		op.waitWorkflow(t, "rewind-cancelled", "its order placed", func(v workflowView) bool { return v.stepID("checkout.placeOrder") >= 0 })
		if status, body := op.do(t, "POST", "/api/workflows/rewind-cancelled/cancel", ""); status != 202 {
			t.Fatalf("cancel: %d %s", status, body)
		}
		op.waitWorkflow(t, "rewind-cancelled", "CANCELLED", func(v workflowView) bool { return v.Workflow.Status == "CANCELLED" })
		if status, body := op.do(t, "POST", "/api/workflows/rewind-cancelled/rewind", `{"start_step": 2}`); status != 409 || !strings.Contains(body, "resume") {
			t.Errorf("rewinding a cancelled checkout: %d %s, want 409 pointing at resume", status, body)
		}

		paymentID, failed, repair := failedCheckout(t, s, op, "rewind-failed")
		if !failed.Workflow.Rewindable || failed.Order == nil || failed.Order.Status != "PAID" {
			t.Fatalf("the failed checkout: %+v, want it rewindable with its order PAID", failed)
		}
		place, recv := failed.stepID("checkout.placeOrder"), failed.stepID("DBOS.recv")
		if place < 0 || recv < 0 {
			t.Fatalf("the failed checkout's steps lack placeOrder or its wait: %+v", failed.Steps)
		}
		for _, step := range []int{0, place} {
			if status, body := op.do(t, "POST", "/api/workflows/rewind-failed/rewind", `{"start_step": `+strconv.Itoa(step)+`}`); status != 409 || !strings.Contains(body, "second order") {
				t.Errorf("rewinding to step %d (placeOrder is %d): %d %s, want 409 for a second order", step, place, status, body)
			}
		}
		for _, body := range []string{`{}`, `{"start_step": 99}`, `{"start_step": -1}`} {
			if status, answer := op.do(t, "POST", "/api/workflows/rewind-failed/rewind", body); status != 400 {
				t.Errorf("rewind with %s: %d %s, want 400", body, status, answer)
			}
		}
		if v := op.waitWorkflow(t, "rewind-failed", "anything", func(workflowView) bool { return true }); v.Workflow.Status != "ERROR" || len(v.Steps) != len(failed.Steps) {
			t.Fatalf("refused rewinds changed the checkout: %+v", v)
		}

		repair()
		if status, body := op.do(t, "POST", "/api/workflows/rewind-failed/rewind", `{"start_step": `+strconv.Itoa(recv)+`}`); status != 202 {
			t.Fatalf("rewinding to the payment wait (step %d): %d %s", recv, status, body)
		}
		done := op.waitWorkflow(t, "rewind-failed", "SUCCESS", func(v workflowView) bool { return v.Workflow.Status == "SUCCESS" })
		if done.Order == nil || done.Order.ID != failed.Order.ID || done.Order.Status != "DISPATCHED" || done.Order.PaymentID != paymentID {
			t.Errorf("the rewound checkout's order: %+v, want order %d, paid with %s, DISPATCHED", done.Order, failed.Order.ID, paymentID)
		}
		if len(done.Forks) != 0 || done.Workflow.ForkedFrom != "" {
			t.Errorf("the rewind forked: %+v", done.Workflow)
		}
		var word struct{ Status string }
		for _, step := range done.Steps {
			if step.Name == "checkout.cancelUnpaid" {
				t.Errorf("the rewound checkout timed out its wait (step %d): its payment word was lost", step.ID)
			}
		}
		if err := json.Unmarshal(done.stepOutput("DBOS.recv"), &word); err != nil || word.Status != "paid" {
			t.Errorf("the rewound wait's word: %s (%v), want the order's payment, paid", done.stepOutput("DBOS.recv"), err)
		}
		if len(done.Ledger) != 1 || done.Ledger[0].Delta != -1 {
			t.Errorf("the rewound order's stock ledger: %+v, want one reservation of 1", done.Ledger)
		}
		if orders := listOrders(t, s); len(orders) != 2 {
			t.Errorf("orders after the rewind: %+v, want the two placed", orders)
		}
		if breaches := auditBreaches(t, s, "Authorization", "Bearer "+consoleToken); len(breaches) != 0 {
			t.Errorf("the books after the rewind: %q", breaches)
		}
		if status, body := op.do(t, "POST", "/api/workflows/rewind-failed/rewind", `{"start_step": `+strconv.Itoa(recv)+`}`); status != 409 {
			t.Errorf("rewinding a finished checkout: %d %s, want 409", status, body)
		}

		var actions []struct {
			Action, Detail, Outcome string
			WorkflowID              string `json:"workflow_id"`
		}
		op.getJSON(t, "/api/operator/actions", &actions)
		var rewinds, refused int
		for _, a := range actions {
			if a.Action != "rewind" {
				continue
			}
			rewinds++
			if strings.HasPrefix(a.Outcome, "refused: ") {
				refused++
			}
		}
		// Refused: the cancelled checkout, two early steps, step 99, and
		// the finished one; the malformed bodies (400) are not actions.
		if rewinds != 6 || refused != 5 {
			t.Errorf("the audit log has %d rewinds, %d refused; want 6 and 5: %+v", rewinds, refused, actions)
		}
	})
}

// TestConsoleRewindUnpaid, on both engines: a checkout of this build
// (version 5, which waits on its order's row) whose payment never came
// fails at its deadline, the database refusing to cancel the order, and is
// rewound in place from that settlement step once the database is mended:
// it cancels its own order, whose reserved stock goes back once, with no
// second order or reservation, and both books are clean. A rewind to
// placeOrder is refused as for any checkout.
func TestConsoleRewindUnpaid(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		cfg := testConfig
		cfg.PaymentTimeout = time.Second
		s := newTestServerWith(t, url, cfg, web.Options{OperatorToken: []byte(consoleToken)})
		op := signIn(t, s)
		repair := failOrderStatus(t, s.db, "CANCELLED")
		paymentID := s.do(t, "POST", "/checkout/rewind-unpaid", "").body

		failed := op.waitWorkflow(t, "rewind-unpaid", "ERROR", func(v workflowView) bool { return v.Workflow.Status == "ERROR" })
		place, settle := failed.stepID("checkout.placeOrder"), failed.stepID("checkout.settlement")
		if place < 0 || settle <= place {
			t.Fatalf("the failed checkout's steps: %+v, want placeOrder and then its settlement", failed.Steps)
		}
		if !failed.Workflow.Rewindable || failed.Order == nil || failed.Order.Status != "PENDING" || failed.Order.PaymentID != paymentID {
			t.Fatalf("the failed checkout: %+v, order %+v; want it rewindable, its order PENDING with payment %s", failed.Workflow, failed.Order, paymentID)
		}
		if status, body := op.do(t, "POST", "/api/workflows/rewind-unpaid/rewind", `{"start_step": `+strconv.Itoa(place)+`}`); status != 409 {
			t.Errorf("rewinding to placeOrder (step %d): %d %s, want 409", place, status, body)
		}

		repair()
		if status, body := op.do(t, "POST", "/api/workflows/rewind-unpaid/rewind", `{"start_step": `+strconv.Itoa(settle)+`}`); status != 202 {
			t.Fatalf("rewinding to the settlement (step %d): %d %s", settle, status, body)
		}
		done := op.waitWorkflow(t, "rewind-unpaid", "SUCCESS", func(v workflowView) bool { return v.Workflow.Status == "SUCCESS" })
		if done.Order == nil || done.Order.ID != failed.Order.ID || done.Order.Status != "CANCELLED" {
			t.Errorf("the rewound checkout's order: %+v, want order %d CANCELLED", done.Order, failed.Order.ID)
		}
		if len(done.Forks) != 0 || done.Workflow.ForkedFrom != "" {
			t.Errorf("the rewind forked: %+v", done.Workflow)
		}
		var deltas []int
		for _, l := range done.Ledger {
			deltas = append(deltas, l.Delta)
		}
		if !slices.Equal(deltas, []int{-1, 1}) {
			t.Errorf("the rewound order's stock ledger: %+v, want its reservation of 1 and its release", done.Ledger)
		}
		if orders := listOrders(t, s); len(orders) != 1 {
			t.Errorf("orders after the rewind: %+v, want the one placed", orders)
		}
		if breaches := auditBreaches(t, s, "Authorization", "Bearer "+consoleToken); len(breaches) != 0 {
			t.Errorf("the books after the rewind: %q", breaches)
		}
	})
}

// stepOutput is the output of the workflow's step of that name, or nil.
func (v workflowView) stepOutput(name string) json.RawMessage {
	for _, s := range v.Steps {
		if s.Name == name {
			return s.Output
		}
	}
	return nil
}

// TestConsoleRewindOlderVersion, on both engines: a failed checkout
// recorded under a version this build replays (checkout.AdoptedVersions;
// here restamped as a previous release would have recorded it) is rewound
// under this build's version and finishes here; one of a version this
// build does not know is refused with nothing changed.
func TestConsoleRewindOlderVersion(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServerWith(t, url, testConfig, web.Options{OperatorToken: []byte(consoleToken)})
		op := signIn(t, s)
		repair := failDispatch(t, s.db)
		table := "workflow_status"
		if s.db.Engine() == "postgres" {
			table = "dbos.workflow_status"
		}
		recv := map[string]int{}
		for key, version := range map[string]string{"rewind-adopted": checkout.AdoptedVersions[0], "rewind-unknown": "widgetstore-0"} {
			payment := s.startVersion4(t, key) // it dispatches its order itself
			if r := s.do(t, "POST", "/payment_webhook/"+payment+"/paid", ""); r.status != 200 {
				t.Fatalf("paying: %d %s", r.status, r.body)
			}
			failed := op.waitWorkflow(t, key, "ERROR", func(v workflowView) bool { return v.Workflow.Status == "ERROR" })
			recv[key] = failed.stepID("DBOS.recv")
			if _, err := s.db.Q().Exec(context.Background(), `UPDATE `+table+` SET application_version = $1 WHERE workflow_uuid = $2`, version, key); err != nil {
				t.Fatal(err)
			}
		}
		repair()

		body := `{"start_step": ` + strconv.Itoa(recv["rewind-unknown"]) + `}`
		if status, answer := op.do(t, "POST", "/api/workflows/rewind-unknown/rewind", body); status != 409 || !strings.Contains(answer, "does not replay") {
			t.Errorf("rewinding a checkout of an unknown version: %d %s, want 409 saying this build does not replay it", status, answer)
		}
		if v := op.waitWorkflow(t, "rewind-unknown", "anything", func(workflowView) bool { return true }); v.Workflow.Status != "ERROR" {
			t.Errorf("the refused rewind left the checkout %s", v.Workflow.Status)
		}

		body = `{"start_step": ` + strconv.Itoa(recv["rewind-adopted"]) + `}`
		if status, answer := op.do(t, "POST", "/api/workflows/rewind-adopted/rewind", body); status != 202 {
			t.Fatalf("rewinding a checkout of %s: %d %s", checkout.AdoptedVersions[0], status, answer)
		}
		done := op.waitWorkflow(t, "rewind-adopted", "SUCCESS", func(v workflowView) bool { return v.Workflow.Status == "SUCCESS" })
		if done.Workflow.AppVersion != checkout.ApplicationVersion || done.Order == nil || done.Order.Status != "DISPATCHED" {
			t.Errorf("the rewound checkout: %+v, order %+v; want it under %s, its order DISPATCHED", done.Workflow, done.Order, checkout.ApplicationVersion)
		}
		if breaches := auditBreaches(t, s, "Authorization", "Bearer "+consoleToken); len(breaches) != 0 {
			t.Errorf("the books: %q", breaches)
		}
	})
}
