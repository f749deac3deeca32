package checkout

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/store"
)

// appName is the DBOS application name of the shop's workflows.
const appName = "widgetstore"

// adopt stamps with this build's application version the workflows of
// AdoptedVersions that the executor left pending (it is dead: this
// instance starts under its id, or took it over) or that wait on DBOS's
// recovery queue, so that DBOS recovers and runs them here: DBOS v1.8.0
// runs only the workflows of its own version. Before dbos.Launch, so that
// its recovery finds them.
func adopt(ctx context.Context, db *store.DB, dbosCtx dbos.Context, executorID string, logger *slog.Logger) error {
	version := dbos.GetApplicationVersion(dbosCtx) // DBOS__APPVERSION overrides ApplicationVersion
	older := slices.DeleteFunc(slices.Clone(AdoptedVersions), func(v string) bool { return v == version })
	adopted, err := db.AdoptWorkflows(ctx, appName, version, older, []string{executorID})
	if err != nil {
		return fmt.Errorf("taking on the workflows of older versions: %w", err)
	}
	if adopted > 0 {
		logger.Info("took on the workflows of older versions", "workflows", adopted, "versions", older, "version", version, "instance", executorID)
	}
	return nil
}
