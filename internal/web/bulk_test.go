package web_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/web"
)

// TestConsoleBulk cancels, then resumes, every checkout a filter selects,
// on both engines: the preview's count is what the confirmation sends; a
// count that no longer matches, an empty selection, a missing count, an
// unknown action or a malformed filter are refused with nothing changed;
// workflows outside the filter are untouched; every workflow acted on, and
// every refused bulk action, is in the audit log.
func TestConsoleBulk(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		s := newTestServerWith(t, url, testConfig, web.Options{OperatorToken: []byte(consoleToken)})
		op := signIn(t, s)
		keys := []string{"bulk-a-1", "bulk-a-2", "bulk-a-3", "bulk-b-1"}
		for _, key := range keys {
			s.do(t, "POST", "/checkout/"+key, "")
			op.waitWorkflow(t, key, "its order placed", func(v workflowView) bool { return v.stepID("checkout.placeOrder") >= 0 })
		}
		statuses := func() []string {
			var out []string
			for _, key := range keys {
				out = append(out, op.waitWorkflow(t, key, "anything", func(workflowView) bool { return true }).Workflow.Status)
			}
			return out
		}
		var preview struct {
			Count int      `json:"count"`
			IDs   []string `json:"workflow_ids"`
		}
		op.getJSON(t, "/api/console/bulk/cancel?prefix=bulk-a-", &preview)
		slices.Sort(preview.IDs)
		if preview.Count != 3 || !slices.Equal(preview.IDs, keys[:3]) {
			t.Fatalf("the preview of cancelling bulk-a-*: %+v, want the three", preview)
		}

		for _, tt := range []struct {
			path, body string
			status     int
			want       string
		}{
			{"/api/console/bulk/cancel?prefix=bulk-a-", `{"count": 2}`, 409, "not the 2 confirmed"},
			{"/api/console/bulk/cancel?prefix=bulk-none-", `{"count": 0}`, 400, "selects no workflow"},
			{"/api/console/bulk/resume?prefix=bulk-a-", `{"count": 3}`, 400, "selects no workflow"}, // none is cancelled yet
			{"/api/console/bulk/cancel?prefix=bulk-a-", `{}`, 400, "count"},
			{"/api/console/bulk/delete?prefix=bulk-a-", `{"count": 3}`, 400, "unknown bulk action"},
			{"/api/console/bulk/cancel?status=NAPPING", `{"count": 3}`, 400, "unknown workflow status"},
		} {
			if status, body := op.do(t, "POST", tt.path, tt.body); status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("POST %s %s: %d %s, want %d saying %q", tt.path, tt.body, status, body, tt.status, tt.want)
			}
		}
		if got := statuses(); !slices.Equal(got, []string{"PENDING", "PENDING", "PENDING", "PENDING"}) {
			t.Fatalf("refused bulk actions changed the checkouts: %q", got)
		}

		var answer struct {
			Count   int               `json:"count"`
			Done    []string          `json:"done"`
			Refused map[string]string `json:"refused"`
		}
		status, body := op.do(t, "POST", "/api/console/bulk/cancel?prefix=bulk-a-", `{"count": 3}`)
		if status != 202 {
			t.Fatalf("the bulk cancel: %d %s", status, body)
		}
		if err := json.Unmarshal([]byte(body), &answer); err != nil {
			t.Fatal(err)
		}
		if answer.Count != 3 || len(answer.Done) != 3 || len(answer.Refused) != 0 {
			t.Errorf("the bulk cancel's answer: %+v", answer)
		}
		for _, key := range keys[:3] {
			op.waitWorkflow(t, key, "CANCELLED", func(v workflowView) bool { return v.Workflow.Status == "CANCELLED" })
		}
		if got := statuses()[3]; got != "PENDING" {
			t.Errorf("bulk-b-1, outside the filter, is %s", got)
		}

		op.getJSON(t, "/api/console/bulk/resume?prefix=bulk-&status=CANCELLED", &preview)
		if preview.Count != 3 {
			t.Fatalf("the preview of resuming the cancelled: %+v, want 3", preview)
		}
		if status, body := op.do(t, "POST", "/api/console/bulk/resume?prefix=bulk-&status=CANCELLED", `{"count": 3}`); status != 202 {
			t.Fatalf("the bulk resume: %d %s", status, body)
		}
		for _, key := range keys[:3] {
			op.waitWorkflow(t, key, "resumed", func(v workflowView) bool { return v.Workflow.Status == "PENDING" || v.Workflow.Status == "SUCCESS" })
		}
		if breaches := auditBreaches(t, s, "Authorization", "Bearer "+consoleToken); len(breaches) != 0 {
			t.Errorf("the books after the bulk actions: %q", breaches)
		}

		var actions []struct {
			Action, Detail, Outcome string
			WorkflowID              string `json:"workflow_id"`
		}
		op.getJSON(t, "/api/operator/actions", &actions)
		counts := map[string]int{}
		for _, a := range actions {
			switch {
			case a.Outcome == "done" && strings.Contains(a.Detail, "bulk") && strings.HasPrefix(a.WorkflowID, "bulk-a-"):
				counts[a.Action]++
			case strings.HasPrefix(a.Action, "bulk ") && strings.HasPrefix(a.Outcome, "refused: "):
				counts["refused"]++
			}
		}
		// Refused: the wrong count, two empty selections, the unknown
		// action and the unknown status; a missing count (400 before any
		// selection) is not an action.
		if counts["cancel"] != 3 || counts["resume"] != 3 || counts["refused"] != 5 {
			t.Errorf("the audit log's bulk rows: %v, want 3 cancels, 3 resumes and 5 refusals: %+v", counts, actions)
		}
	})
}
