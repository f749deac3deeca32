package web_test

import (
	"strings"
	"testing"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/web"
)

// TestConsoleMasksCustomerData, on both engines: the console's view of a
// checkout (its order, recorded input and steps; its event stream sends the
// same view) shows the customer's email and address masked;
// an operator's reveal shows the email and is written to the audit log; a
// reveal from another site's page is refused.
func TestConsoleMasksCustomerData(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServerWith(t, url, testConfig, web.Options{OperatorToken: []byte(consoleToken)})
		op := signIn(t, s)
		const email = "alice.customer@example.com"
		if r := s.do(t, "POST", "/checkout/masked", `{"product_id": 1, "quantity": 1, "email": "`+email+`"}`); r.status != 200 {
			t.Fatalf("checkout: %d %s", r.status, r.body)
		}
		op.waitWorkflow(t, "masked", "its order", func(v workflowView) bool { return v.Order != nil })
		status, body := op.do(t, "GET", "/api/workflows/masked", "")
		if status != 200 || strings.Contains(body, email) || strings.Contains(body, "127.0.0.1") || !strings.Contains(body, `"email":"a•••@example.com"`) {
			t.Errorf("GET /api/workflows/masked: %d %s; want the order's email masked, and neither the email nor the client's address anywhere", status, body)
		}

		if status, body, _ := rawDo(t, s, "POST", "/api/workflows/masked/reveal", "", "Cookie", op.cookie, "Origin", "http://evil.example"); status != 403 || strings.Contains(body, email) {
			t.Errorf("a reveal from another site: %d %s, want 403", status, body)
		}
		status, body = op.do(t, "POST", "/api/workflows/masked/reveal", "")
		if status != 200 || !strings.Contains(body, `"email":"`+email+`"`) {
			t.Errorf("the reveal: %d %s, want the order's email", status, body)
		}
		if status, _ := op.do(t, "POST", "/api/workflows/nobody/reveal", ""); status != 404 {
			t.Errorf("revealing an unknown workflow: %d, want 404", status)
		}
		var actions []struct {
			Action, Actor, Outcome string
			WorkflowID             string `json:"workflow_id"`
		}
		op.getJSON(t, "/api/operator/actions", &actions)
		var reveals int
		for _, a := range actions {
			if a.Action == "reveal" && a.WorkflowID == "masked" && strings.HasPrefix(a.Actor, "session ") {
				reveals++
			}
		}
		if reveals != 1 {
			t.Errorf("the audit log has %d reveals of the checkout, want 1: %+v", reveals, actions)
		}
	})
}
