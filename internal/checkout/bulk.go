package checkout

import (
	"context"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// BulkLimit bounds the workflows one bulk action may take: a filter that
// selects more is refused, to be narrowed.
const BulkLimit = 500

// BulkSelection returns the ids of the workflows f selects (all of them:
// f's page is ignored) that action, "cancel" or "resume", applies to
// (Workflow.Cancellable, Resumable), newest first. An unknown action, or a
// filter that selects more than BulkLimit workflows, is an error of kind
// shop.ErrInvalid.
func (c *Checkout) BulkSelection(ctx context.Context, action string, f WorkflowFilter) ([]string, error) {
	applies, ok := map[string]func(Workflow) bool{
		"cancel": func(w Workflow) bool { return w.Cancellable },
		"resume": func(w Workflow) bool { return w.Resumable },
	}[action]
	if !ok {
		return nil, shop.Errorf(shop.ErrInvalid, "unknown bulk action %q: want cancel or resume", action)
	}
	f.Limit, f.Offset = BulkLimit+1, 0
	workflows, err := c.ListWorkflows(ctx, f)
	if err != nil {
		return nil, err
	}
	if len(workflows) > BulkLimit {
		return nil, shop.Errorf(shop.ErrInvalid, "the filter selects more than %d workflows: narrow it (by status, name, time or id prefix) to act on them in bulk", BulkLimit)
	}
	var ids []string
	for _, w := range workflows {
		if applies(w) {
			ids = append(ids, w.ID)
		}
	}
	return ids, nil
}
