package web

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// Bulk actions: cancel or resume every workflow a console filter selects
// (the query of GET /api/console/workflows, its page ignored). The page
// asks first how many a filter selects, names that count in its
// confirmation, and sends it with the action; the server selects again,
// and refuses if the count changed, so that the operator acts on what they
// confirmed.

// bulkListed bounds the ids a preview lists; its count is of them all.
const bulkListed = 50

// handleBulkPreview handles "GET /api/console/bulk/{action}?<filter>": how
// many workflows the filter selects that the action (cancel or resume)
// would act on, and the first bulkListed of their ids.
func handleBulkPreview(co *checkout.Checkout) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		action := r.PathValue("action")
		f, err := parseWorkflowFilter(r.URL.Query())
		if err != nil {
			writeError(w, r, err)
			return
		}
		ids, err := co.BulkSelection(r.Context(), action, f)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, map[string]any{"action": action, "count": len(ids), "workflow_ids": append([]string{}, ids[:min(len(ids), bulkListed)]...)})
	})
}

// handleBulkAction handles "POST /api/console/bulk/{action}?<filter>"
// ({"count": n}, the count the operator confirmed): it cancels or resumes
// each workflow the filter selects, and answers which were and which were
// refused (a workflow that moved on meanwhile, a resume a fork forbids).
// An empty selection, or one whose count is not n, is refused with nothing
// done. Each workflow acted on is a row of the audit log, and so is a
// refused bulk action.
func (s *Server) handleBulkAction() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		action := r.PathValue("action")
		var body struct {
			Count *int `json:"count"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, r, err)
			return
		}
		if body.Count == nil {
			writeError(w, r, shop.Errorf(shop.ErrInvalid, `a bulk %s needs {"count": n}, the number of workflows confirmed (GET /api/console/bulk/%s says it)`, action, action))
			return
		}
		f, err := parseWorkflowFilter(r.URL.Query())
		if err != nil {
			writeError(w, r, err)
			return
		}
		detail := "bulk, filter " + r.URL.RawQuery
		ids, err := s.checkout.BulkSelection(r.Context(), action, f)
		switch {
		case err != nil:
		case len(ids) == 0:
			err = shop.Errorf(shop.ErrInvalid, "the filter selects no workflow to %s: nothing was done", action)
		case len(ids) != *body.Count:
			err = shop.Errorf(shop.ErrConflict, "the filter now selects %d workflows to %s, not the %d confirmed: nothing was done; look again and confirm the new count", len(ids), action, *body.Count)
		}
		if err != nil {
			var shopErr *shop.Error
			if errors.As(err, &shopErr) {
				s.recordAction(r, store.OperatorAction{Action: "bulk " + action, Detail: detail, Outcome: "refused: " + err.Error()})
			}
			writeError(w, r, err)
			return
		}
		done, refused := []string{}, map[string]string{}
		for _, id := range ids {
			var err error
			if action == "cancel" {
				err = s.checkout.Cancel(r.Context(), id)
			} else {
				err = s.checkout.Resume(r.Context(), id)
			}
			outcome := "done"
			if err != nil {
				outcome, refused[id] = "refused: "+err.Error(), err.Error()
				var shopErr *shop.Error
				if !errors.As(err, &shopErr) {
					outcome, refused[id] = "failed", "internal error"
					s.logger.Error("a bulk "+action, "workflow", id, "error", err.Error())
				}
			} else {
				done = append(done, id)
			}
			s.recordAction(r, store.OperatorAction{Action: action, WorkflowID: id, Detail: fmt.Sprintf("%s (%d selected)", detail, len(ids)), Outcome: outcome})
		}
		s.logger.Info("an operator acted on workflows in bulk", "action", action, "selected", len(ids), "done", len(done), "refused", len(refused), "actor", actorOf(r))
		writeJSON(w, r, http.StatusAccepted, map[string]any{"action": action, "count": len(ids), "done": done, "refused": refused})
	})
}
