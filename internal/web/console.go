package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// The operator's console: a page of its own (static/console.html) and the
// JSON API behind it. Every route here is the operator's (Server.operator).

// consolePageSize bounds one page of the console's workflow list.
const consolePageSize = 200

// actionsListed bounds the audit log the console shows.
const actionsListed = 100

// defaultStaleAfter is how silent an instance may be before the console
// counts it as gone, when the server is not told (Options.StaleAfter).
const defaultStaleAfter = 15 * time.Second

type consoleWorkflowJSON struct {
	workflowJSON
	AppVersion  string `json:"app_version"`
	ForkedFrom  string `json:"forked_from,omitempty"`
	Resumable   bool   `json:"resumable"`
	Cancellable bool   `json:"cancellable"`
	Rewindable  bool   `json:"rewindable"`
}

func toConsoleWorkflowJSON(wf checkout.Workflow) consoleWorkflowJSON {
	return consoleWorkflowJSON{workflowJSON: toWorkflowJSON(wf), AppVersion: wf.AppVersion, ForkedFrom: wf.ForkedFrom,
		Resumable: wf.Resumable, Cancellable: wf.Cancellable, Rewindable: wf.Rewindable}
}

// handleConsole handles "GET /console": the console's page. It is served
// to anyone: it asks for the token before it shows anything.
func handleConsole(assets fs.FS) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, assets, "console.html")
	})
}

// handleConsoleWorkflows handles "GET /api/console/workflows": workflows
// filtered by status, name, creation time (RFC 3339 after/before),
// executor, application version and id prefix, each filter's values
// comma-separated; newest first, limit (at most consolePageSize) from
// offset.
func handleConsoleWorkflows(co *checkout.Checkout) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := parseWorkflowFilter(r.URL.Query())
		if err != nil {
			writeError(w, r, err)
			return
		}
		workflows, err := co.ListWorkflows(r.Context(), f)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := make([]consoleWorkflowJSON, len(workflows))
		for i, wf := range workflows {
			out[i] = toConsoleWorkflowJSON(wf)
		}
		writeJSON(w, r, http.StatusOK, map[string]any{"workflows": out, "limit": f.Limit, "offset": f.Offset})
	})
}

// parseWorkflowFilter reads the console's workflow filter from a query:
// status, name, executor and version (each comma-separated), prefix,
// after and before (RFC 3339), limit (at most consolePageSize) and offset.
// A malformed one is an error of kind shop.ErrInvalid naming every fault.
func parseWorkflowFilter(q url.Values) (checkout.WorkflowFilter, error) {
	list := func(name string) []string {
		if v := q.Get(name); v != "" {
			return strings.Split(v, ",")
		}
		return nil
	}
	f := checkout.WorkflowFilter{Statuses: list("status"), Names: list("name"), Executors: list("executor"),
		AppVersions: list("version"), IDPrefix: q.Get("prefix"), Limit: 50}
	var errs []error
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"after", &f.CreatedAfter}, {"before", &f.CreatedBefore}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s must be a time in RFC 3339 (2026-01-02T15:04:05Z), not %q", p.name, v))
			}
			*p.to = t
		}
	}
	for _, p := range []struct {
		name     string
		to       *int
		min, max int
	}{{"limit", &f.Limit, 1, consolePageSize}, {"offset", &f.Offset, 0, 1_000_000}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < p.min || n > p.max {
				errs = append(errs, fmt.Errorf("%s must be a whole number from %d to %d", p.name, p.min, p.max))
			}
			*p.to = n
		}
	}
	if err := validateWorkflowID(f.IDPrefix); err != nil {
		errs = append(errs, errors.New("prefix: "+err.Error()))
	}
	if len(errs) > 0 {
		return f, shop.Errorf(shop.ErrInvalid, "%s", errors.Join(errs...).Error())
	}
	return f, nil
}

// handleConsoleFind handles "GET /api/console/find?q=<order id or
// payment id>": the checkout of that order.
func handleConsoleFind(co *checkout.Checkout) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := co.FindCheckout(r.Context(), strings.TrimSpace(r.URL.Query().Get("q")))
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, map[string]string{"workflow_id": id})
	})
}

type stepJSON struct {
	ID          int             `json:"step_id"`
	Name        string          `json:"name"`
	Output      json.RawMessage `json:"output"`
	Error       string          `json:"error,omitempty"`
	ChildID     string          `json:"child_workflow_id,omitempty"`
	StartedAt   time.Time       `json:"started_at,omitzero"`
	CompletedAt time.Time       `json:"completed_at,omitzero"`
	ForkRefused string          `json:"fork_refused,omitempty"`
}

// handleWorkflow handles "GET /api/workflows/{id}": one workflow, its
// input, output, error, checkpoints, forks and, for a checkout, its order;
// the customer's data in them masked (see personal.go).
func handleWorkflow(co *checkout.Checkout) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := validateWorkflowID(id); err != nil {
			writeError(w, r, err)
			return
		}
		d, err := co.Workflow(r.Context(), id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, toWorkflowDetailJSON(d, false))
	})
}

type workflowDetailJSON struct {
	Workflow consoleWorkflowJSON `json:"workflow"`
	Input    json.RawMessage     `json:"input"`
	Output   json.RawMessage     `json:"output"`
	Steps    []stepJSON          `json:"steps"`
	Forks    []string            `json:"forks"`
	Order    *consoleOrderJSON   `json:"order"`
	Ledger   []ledgerJSON        `json:"ledger"`
}

// consoleOrderJSON is an order as the console shows it: with its payment
// id, and the customer's email (masked unless revealed).
type consoleOrderJSON struct {
	orderJSON
	Email string `json:"email,omitempty"`
}

type ledgerJSON struct {
	ProductID int64     `json:"product_id"`
	Delta     int       `json:"delta"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
}

// toWorkflowDetailJSON is the console's view of a workflow: its customer's
// personal data masked, unless reveal.
func toWorkflowDetailJSON(d checkout.WorkflowDetail, reveal bool) workflowDetailJSON {
	if !reveal {
		d.Input, d.Output = maskPersonal(d.Input), maskPersonal(d.Output)
		for i := range d.Steps {
			d.Steps[i].Output = maskPersonal(d.Steps[i].Output)
		}
	}
	out := workflowDetailJSON{Workflow: toConsoleWorkflowJSON(d.Workflow), Input: d.Input, Output: d.Output,
		Steps: make([]stepJSON, len(d.Steps)), Forks: append([]string{}, d.Forks...), Ledger: make([]ledgerJSON, len(d.Ledger))}
	for i, e := range d.Ledger {
		out.Ledger[i] = ledgerJSON(e)
	}
	for i, s := range d.Steps {
		out.Steps[i] = stepJSON{ID: s.ID, Name: s.Name, Output: s.Output, Error: s.Error, ChildID: s.ChildID,
			StartedAt: s.StartedAt, CompletedAt: s.CompletedAt, ForkRefused: s.ForkRefused}
	}
	if d.Order != nil {
		order := consoleOrderJSON{orderJSON: toOrderJSON(*d.Order, false), Email: d.Order.Email}
		if !reveal && order.Email != "" {
			order.Email = maskEmail(order.Email)
		}
		out.Order = &order
	}
	return out
}

// handleWorkflowAction handles "POST /api/workflows/{id}/cancel", "/resume",
// "/fork" and "/rewind" (both {"start_step": n}). Each, done or refused, is
// written to the operator's audit log.
func (s *Server) handleWorkflowAction(action string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := validateWorkflowID(id); err != nil {
			writeError(w, r, err)
			return
		}
		var body struct {
			StartStep *int `json:"start_step"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, r, err)
			return
		}
		var detail, forkID string
		var err error
		switch action {
		case "cancel":
			err = s.checkout.Cancel(r.Context(), id)
		case "resume":
			err = s.checkout.Resume(r.Context(), id)
		case "fork", "rewind":
			if body.StartStep == nil || *body.StartStep < 0 {
				writeError(w, r, shop.Errorf(shop.ErrInvalid, `%s needs {"start_step": n}, the step to run on from (0 or more)`, action))
				return
			}
			detail = fmt.Sprintf("from step %d", *body.StartStep)
			if action == "fork" {
				forkID, err = s.checkout.Fork(r.Context(), id, *body.StartStep)
			} else {
				err = s.checkout.Rewind(r.Context(), id, *body.StartStep)
			}
		}
		outcome := "done"
		if forkID != "" {
			outcome = "forked as " + forkID
		}
		if err != nil {
			outcome = "refused: " + err.Error()
			var shopErr *shop.Error
			if !errors.As(err, &shopErr) {
				outcome = "failed"
			}
		}
		s.recordAction(r, store.OperatorAction{Action: action, WorkflowID: id, Detail: detail, Outcome: outcome})
		if err != nil {
			writeError(w, r, err)
			return
		}
		done := map[string]string{"cancel": "cancelled", "resume": "resumed", "fork": "forked", "rewind": "rewound"}[action]
		s.logger.Info("an operator "+done+" a workflow", "workflow", id, "detail", detail, "fork", forkID, "actor", actorOf(r))
		answer := map[string]string{"workflow_id": id, "action": action, done: id}
		if forkID != "" {
			answer["fork_id"] = forkID
		}
		writeJSON(w, r, http.StatusAccepted, answer)
	})
}

// recordAction writes an operator's action to the audit log. A failure to
// is logged: the action, done already, is not undone for it.
func (s *Server) recordAction(r *http.Request, a store.OperatorAction) {
	a.At, a.Actor, a.Address = time.Now(), actorOf(r), s.guard.clientOf(r)
	if err := store.RecordOperatorAction(r.Context(), s.db.Q(), a); err != nil {
		s.logger.Error("the operator's audit log", slog.Any("error", err), "action", a.Action, "workflow", a.WorkflowID,
			"outcome", a.Outcome, "actor", a.Actor)
	}
}

type actionJSON struct {
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Address    string    `json:"address"`
	Action     string    `json:"action"`
	WorkflowID string    `json:"workflow_id"`
	Detail     string    `json:"detail"`
	Outcome    string    `json:"outcome"`
}

// handleOperatorActions handles "GET /api/operator/actions": the audit
// log, newest first.
func handleOperatorActions(db *store.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actions, err := store.OperatorActions(r.Context(), db.Q(), actionsListed)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := make([]actionJSON, len(actions))
		for i, a := range actions {
			out[i] = actionJSON(a)
		}
		writeJSON(w, r, http.StatusOK, out)
	})
}

// mismatchedJSON is a payment that could not pay its order, as the
// console lists it.
type mismatchedJSON struct {
	Payment     string `json:"payment"`
	OrderID     int64  `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Refund      string `json:"refund"` // due, refunded or attention
	Mismatch    string `json:"mismatch"`
}

func toMismatchedJSON(payments []store.Payment) []mismatchedJSON {
	out := make([]mismatchedJSON, len(payments))
	for i, p := range payments {
		out[i] = mismatchedJSON{Payment: p.Ref, OrderID: p.OrderID, AmountCents: p.AmountCents, Refund: p.RefundState, Mismatch: p.Mismatch}
	}
	return out
}

// handleStuck handles "GET /api/console/stuck": the work that needs an
// operator, with counts.
func handleStuck(co *checkout.Checkout, staleAfter time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stuck, err := co.StuckWork(r.Context(), time.Now(), staleAfter)
		if err != nil {
			writeError(w, r, err)
			return
		}
		list := func(workflows []checkout.Workflow) []consoleWorkflowJSON {
			out := make([]consoleWorkflowJSON, len(workflows))
			for i, wf := range workflows {
				out[i] = toConsoleWorkflowJSON(wf)
			}
			return out
		}
		writeJSON(w, r, http.StatusOK, map[string]any{
			"past_deadline":    append([]string{}, stuck.PastDeadline...),
			"dispatch_overdue": append([]string{}, stuck.DispatchOverdue...),
			"stale_executors":  stuck.StaleExecutors,
			"stale_workflows":  list(stuck.StaleWorkflows),
			"failed":           list(stuck.Failed),
			"breaches":         stuck.Breaches,
			"mismatched":       toMismatchedJSON(stuck.Mismatched),
		})
	})
}
