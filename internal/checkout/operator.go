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
	Status     dbos.WorkflowStatusType
	Error      string
	ExecutorID string
	Attempts   int // executions, recoveries included
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// resumable are the statuses a workflow can be resumed from: it stopped
// before its end, and its checkpoints say where to go on.
var resumable = []dbos.WorkflowStatusType{
	dbos.WorkflowStatusError,
	dbos.WorkflowStatusCancelled,
	dbos.WorkflowStatusMaxRecoveryAttemptsExceeded,
}

// Workflows lists the shop's workflows in the given statuses (any, when
// none are given), newest first, at most limit of them.
func (c *Checkout) Workflows(ctx context.Context, statuses []dbos.WorkflowStatusType, limit int) ([]Workflow, error) {
	opts := []dbos.ListWorkflowsOption{dbos.WithFilterLimit(limit), dbos.WithFilterSortDesc()}
	if len(statuses) > 0 {
		opts = append(opts, dbos.WithFilterStatus(statuses...))
	}
	return c.listWorkflows(ctx, opts...)
}

func (c *Checkout) listWorkflows(ctx context.Context, opts ...dbos.ListWorkflowsOption) ([]Workflow, error) {
	opts = append(opts, dbos.WithFilterLoadInput(false), dbos.WithFilterLoadOutput(false))
	found, err := dbos.ListWorkflows(dbos.From(c.dbosCtx, ctx), opts...)
	if err != nil {
		return nil, fmt.Errorf("listing workflows: %w", err)
	}
	workflows := make([]Workflow, len(found))
	for i, w := range found {
		workflows[i] = Workflow{ID: w.ID, Name: w.Name, Status: w.Status, ExecutorID: w.ExecutorID,
			Attempts: w.Attempts, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
		if w.Error != nil {
			workflows[i].Error = w.Error.Error()
		}
	}
	return workflows, nil
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
		return shop.Errorf(shop.ErrConflict, "workflow %s is %s: only one that is %v can be resumed", id, status, resumable)
	}
	if _, err := dbos.ResumeWorkflow[any](c.dbosCtx, id); err != nil {
		return fmt.Errorf("resuming workflow %s: %w", id, err)
	}
	return nil
}
