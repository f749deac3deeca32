package checkout

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// Workflow is what an operator sees of one of the shop's workflows.
type Workflow struct {
	ID         string
	Name       string
	Status     string // one of WorkflowStatuses
	Error      string
	ExecutorID string
	Attempts   int // executions, recoveries included
	AppVersion string
	ForkedFrom string // the workflow this one was forked from, if any
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// Resumable, Cancellable and Rewindable say whether Resume, Cancel
	// and Rewind would do anything: the console shows a button only
	// where one would.
	Resumable, Cancellable, Rewindable bool
}

// WorkflowStatuses are the statuses a workflow can be in, as DBOS names them.
var WorkflowStatuses = []string{
	string(dbos.WorkflowStatusPending), string(dbos.WorkflowStatusEnqueued), string(dbos.WorkflowStatusDelayed),
	string(dbos.WorkflowStatusSuccess), string(dbos.WorkflowStatusError), string(dbos.WorkflowStatusCancelled),
	string(dbos.WorkflowStatusMaxRecoveryAttemptsExceeded),
}

// resumable are the statuses a workflow can be resumed from: it stopped
// before its end, and its checkpoints say where to go on. DBOS v1.8.0
// resumes neither SUCCESS nor ERROR (its ResumeWorkflows skips them and
// answers as if it had resumed them): a failed checkout is rewound
// (Rewind) or forked instead.
var resumable = []string{
	string(dbos.WorkflowStatusCancelled),
	string(dbos.WorkflowStatusMaxRecoveryAttemptsExceeded),
}

// cancellable are the statuses of a workflow that has not ended.
var cancellable = []string{
	string(dbos.WorkflowStatusPending),
	string(dbos.WorkflowStatusEnqueued),
	string(dbos.WorkflowStatusDelayed),
}

// Workflows lists the shop's workflows in the given statuses (any, when
// none are given), newest first, at most limit of them. A status that is
// not one of WorkflowStatuses is an error of kind shop.ErrInvalid.
func (c *Checkout) Workflows(ctx context.Context, statuses []string, limit int) ([]Workflow, error) {
	opts := []dbos.ListWorkflowsOption{dbos.WithFilterLimit(limit), dbos.WithFilterSortDesc()}
	if len(statuses) > 0 {
		filter := make([]dbos.WorkflowStatusType, len(statuses))
		for i, s := range statuses {
			if !slices.Contains(WorkflowStatuses, s) {
				return nil, shop.Errorf(shop.ErrInvalid, "unknown workflow status %q: want some of %v", s, WorkflowStatuses)
			}
			filter[i] = dbos.WorkflowStatusType(s)
		}
		opts = append(opts, dbos.WithFilterStatus(filter...))
	}
	return c.listWorkflows(ctx, opts...)
}

func (c *Checkout) listWorkflows(ctx context.Context, opts ...dbos.ListWorkflowsOption) ([]Workflow, error) {
	// The output is loaded for the error: DBOS v1.8.0 reads a workflow's
	// error only with its output (both live in workflow_output), and
	// without it every failed workflow would be listed with none. The
	// shop's outputs are small (Result).
	opts = append(opts, dbos.WithFilterLoadInput(false), dbos.WithFilterLoadOutput(true))
	found, err := dbos.ListWorkflows(dbos.From(c.dbosCtx, ctx), opts...)
	if err != nil {
		return nil, fmt.Errorf("listing workflows: %w", err)
	}
	workflows := make([]Workflow, len(found))
	for i, w := range found {
		workflows[i] = toWorkflow(w)
	}
	return workflows, nil
}

func toWorkflow(w dbos.WorkflowStatus) Workflow {
	status := string(w.Status)
	wf := Workflow{ID: w.ID, Name: w.Name, Status: status, ExecutorID: w.ExecutorID,
		Attempts: w.Attempts, AppVersion: w.ApplicationVersion, ForkedFrom: w.ForkedFrom,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt,
		Resumable: slices.Contains(resumable, status), Cancellable: slices.Contains(cancellable, status),
		Rewindable: rewindable(w)}
	if w.Error != nil {
		wf.Error = w.Error.Error()
	}
	return wf
}

// Resume runs a workflow that stopped before its end (see resumable) again
// from its last checkpoint: a checkout cancelled by mistake, or one that
// crashed the server more often than DBOS recovers a workflow. Steps
// already done are not done again.
func (c *Checkout) Resume(ctx context.Context, id string) error {
	found, err := c.listWorkflows(ctx, dbos.WithFilterWorkflowIDs(id))
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return shop.Errorf(shop.ErrNotFound, "no workflow %q", id)
	}
	if status := found[0].Status; !slices.Contains(resumable, status) {
		why := "only one that is CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED can be resumed"
		if status == string(dbos.WorkflowStatusError) {
			why = "DBOS does not resume a failed workflow: rewind it, or fork it, from a step"
		}
		return shop.Errorf(shop.ErrConflict, "workflow %s is %s: %s", id, status, why)
	}
	if fork, err := c.liveFork(ctx, id); err != nil {
		return err
	} else if fork != "" {
		return shop.Errorf(shop.ErrConflict, "workflow %s was forked as %s, which carries on its work: resuming it too would run its order twice", id, fork)
	}
	if _, err := dbos.ResumeWorkflow[any](c.dbosCtx, id); err != nil {
		return fmt.Errorf("resuming workflow %s: %w", id, err)
	}
	return nil
}

// Cancel cancels a workflow (the checkout starts no children): it stops at its
// next step and stays CANCELLED until resumed. A checkout cancelled while
// it waits for its payment keeps its order, and its stock, until resumed.
func (c *Checkout) Cancel(ctx context.Context, id string) error {
	found, err := c.listWorkflows(ctx, dbos.WithFilterWorkflowIDs(id))
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return shop.Errorf(shop.ErrNotFound, "no workflow %q", id)
	}
	if !found[0].Cancellable {
		return shop.Errorf(shop.ErrConflict, "workflow %s is %s: it has ended, there is nothing to cancel", id, found[0].Status)
	}
	if err := dbos.CancelWorkflow(dbos.From(c.dbosCtx, ctx), id); err != nil {
		return fmt.Errorf("cancelling workflow %s: %w", id, err)
	}
	return nil
}
