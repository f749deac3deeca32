package checkout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// Progress is what a customer may see of their own checkout: its
// checkpoints as DBOS records them, without their outputs, and how often
// it was run (more than once: it was recovered after a crash).
type Progress struct {
	Status      string // the workflow's
	Attempts    int
	CreatedAt   time.Time
	Checkpoints []Checkpoint
	Order       *shop.Order // nil until placed
}

// Checkpoint is one recorded step.
type Checkpoint struct {
	Step        int
	Name        string
	StartedAt   time.Time
	CompletedAt time.Time
	Failed      bool
}

// Progress returns the progress of the checkout of an idempotency key. An
// unknown key, or the id of a workflow that is not a checkout, is an error
// of kind shop.ErrNotFound.
func (c *Checkout) Progress(ctx context.Context, key string) (Progress, error) {
	if err := shop.ValidateKey(key); err != nil {
		return Progress{}, err
	}
	dctx := dbos.From(c.dbosCtx, ctx)
	found, err := dbos.ListWorkflows(dctx, dbos.WithFilterWorkflowIDs(key), dbos.WithFilterName(WorkflowCheckout),
		dbos.WithFilterLoadInput(false), dbos.WithFilterLoadOutput(false))
	if err != nil {
		return Progress{}, fmt.Errorf("reading checkout %s: %w", key, err)
	}
	if len(found) == 0 {
		return Progress{}, shop.Errorf(shop.ErrNotFound, "no checkout %q", key)
	}
	p := Progress{Status: string(found[0].Status), Attempts: found[0].Attempts, CreatedAt: found[0].CreatedAt}
	steps, err := dbos.GetWorkflowSteps(dctx, key, dbos.WithStepsLoadOutput(false))
	if err != nil {
		return p, fmt.Errorf("reading the steps of checkout %s: %w", key, err)
	}
	p.Checkpoints = make([]Checkpoint, len(steps))
	for i, s := range steps {
		p.Checkpoints[i] = Checkpoint{Step: s.StepID, Name: s.StepName, StartedAt: s.StartedAt, CompletedAt: s.CompletedAt, Failed: s.Error != nil}
	}
	order, err := store.OrderByCheckoutID(ctx, c.db.Q(), key)
	switch {
	case err == nil:
		p.Order = &order
	case !errors.Is(err, shop.ErrNotFound):
		return p, err
	}
	return p, nil
}
