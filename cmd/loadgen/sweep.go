package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// pollInterval is how often the wait for the dispatches asks the shop.
const pollInterval = 200 * time.Millisecond

// runSpec is one measured run of a sweep.
type runSpec struct {
	round     int
	engine    string // "" against a running shop (-url)
	customers int
	shop      *shopBinary // nil against a running shop (-url)
}

func (s runSpec) label(cfg config) string {
	if s.shop == nil {
		return cfg.baseURL
	}
	return s.shop.Label
}

// planRuns lists a sweep's runs: for each round, engine and number of
// customers, every binary in turn, so that builds being compared run side
// by side under the same conditions; each round starts with the next
// binary, so none is always first.
func planRuns(cfg config) []runSpec {
	var specs []runSpec
	if len(cfg.shops) == 0 {
		for _, c := range cfg.customers {
			specs = append(specs, runSpec{round: 1, customers: c})
		}
		return specs
	}
	for round := 1; round <= cfg.rounds; round++ {
		for _, engine := range cfg.engines {
			for _, c := range cfg.customers {
				for i := range cfg.shops {
					shop := &cfg.shops[(i+round-1)%len(cfg.shops)]
					if shop.Demo && engine != "postgres" {
						continue
					}
					specs = append(specs, runSpec{round: round, engine: engine, customers: c, shop: shop})
				}
			}
		}
	}
	return specs
}

// runSweep measures every run of the plan in turn and prints the report.
// A run that cannot be measured is reported as failed and the sweep goes
// on; the command fails at the end.
func runSweep(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	benchArgs := map[string][]string{}
	for _, bin := range cfg.shops {
		if bin.Demo {
			continue // it takes no flags
		}
		args, err := shopFlagsFor(ctx, bin)
		if err != nil {
			return err
		}
		benchArgs[bin.Label] = args
		if all := append(slices.Clone(args), cfg.shopArgs...); len(all) > 0 {
			fmt.Fprintf(stderr, "loadgen: %s runs with %s\n", bin.Label, strings.Join(all, " "))
		}
	}
	specs := planRuns(cfg)
	rep := sweepReport{Product: cfg.product, Duration: cfg.duration.String(), Warmup: cfg.warmup, Window: windowNote}
	failed := 0
	for i, spec := range specs {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stderr, "loadgen: run %d/%d: %s %s C=%d (round %d)\n",
			i+1, len(specs), spec.label(cfg), spec.engine, spec.customers, spec.round)
		row := measure(ctx, cfg, spec, benchArgs[spec.label(cfg)])
		if row.Failed != "" {
			failed++
			fmt.Fprintf(stderr, "loadgen:   failed: %s\n", row.Failed)
		} else {
			fmt.Fprintf(stderr, "loadgen:   %d purchases, %.1f/s, %d errors\n", row.Completed, row.PurchasesPerSecond, row.Errors)
		}
		rep.Runs = append(rep.Runs, row)
	}
	rep.Stopped = ctx.Err() != nil

	var err error
	if cfg.json {
		err = writeJSON(stdout, rep)
	} else {
		err = rep.print(stdout)
	}
	if err == nil && failed > 0 {
		err = fmt.Errorf("%d of %d runs failed", failed, len(rep.Runs))
	}
	return err
}

// measure makes one run and reports it; a run that could not be measured
// says why in Failed. benchArgs are the benchFlags the shop has.
func measure(ctx context.Context, cfg config, spec runSpec, benchArgs []string) runRow {
	row := runRow{Round: spec.round, Binary: spec.label(cfg), Engine: spec.engine, Customers: spec.customers,
		ErrorKinds: map[string]*errorKind{}}
	if spec.shop != nil {
		row.ShopArgs = append(slices.Clone(benchArgs), cfg.shopArgs...)
	}
	if err := measureInto(ctx, cfg, spec, benchArgs, &row); err != nil {
		row.Failed = err.Error()
	}
	return row
}

// measureInto makes one run: start the shop on a fresh database (with
// -shop), warm up, wait for the warm-up's dispatches, then measure the
// load and the wait for its dispatches, and stop the shop.
func measureInto(ctx context.Context, cfg config, spec runSpec, benchArgs []string, row *runRow) (err error) {
	baseURL, secret, token := cfg.baseURL, cfg.webhookSecret, cfg.operatorToken
	var proc *shopProcess
	if spec.shop != nil {
		if proc, err = startShop(ctx, cfg, *spec.shop, spec.engine, benchArgs); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, proc.cleanUp(context.WithoutCancel(ctx))) }()
		baseURL, secret, token = proc.baseURL, proc.webhookSecret, proc.operatorToken
		row.Database = proc.db.name
	}
	shop := newShopClient(cfg, baseURL, secret, token, spec.customers)
	defer shop.close()
	var pg *pgCounters
	if proc != nil && proc.engine == "postgres" {
		if pg, err = newPGCounters(ctx, cfg.pgAdminURL, proc.db.url, proc.db.name); err != nil {
			return err
		}
		defer pg.close(ctx)
	}
	loop := &closedLoop{shop: shop, product: cfg.product, restock: cfg.restock, pending: shop.unfinished}
	if spec.shop != nil && spec.shop.Demo {
		// Its stock is topped up, and its workflows are read in its database.
		loop.restock, loop.pending = false, pg.pendingWorkflows
	}

	warmUp(ctx, cfg, loop, spec.customers, row)
	before, err := takeSnapshot(ctx, proc, pg)
	if err != nil {
		return err
	}
	if pg != nil {
		if err := pg.resetStatements(ctx); err != nil {
			return err
		}
		if err := pg.startWAL(ctx, before.pg.walLSN); err != nil {
			return err
		}
	}
	start := time.Now()
	stats := loop.run(ctx, spec.customers, 0, start.Add(cfg.duration))
	pending, waited, err := waitDispatches(ctx, loop.pending, cfg.dispatchWait)
	end := time.Now()
	row.fill(stats, cfg.duration, end.Sub(start), waited)
	row.PendingAfterWait = pending
	row.dispatchWaitEnded("dispatch wait", pending, cfg.dispatchWait, err)
	after, err := takeSnapshot(ctx, proc, pg)
	if err != nil {
		return err
	}
	if proc == nil {
		return nil
	}
	row.setShopCPU(after.shopCPU - before.shopCPU)
	if pg == nil {
		return nil
	}
	return readPostgres(ctx, pg, proc, before.pg, after.pg, row)
}

// warmUp makes each customer buy cfg.warmup widgets, to fill the shop's
// and the database's pools and caches, and waits for their dispatches:
// they must be over before the measurement starts, or they would count in
// it.
func warmUp(ctx context.Context, cfg config, loop *closedLoop, customers int, row *runRow) {
	if cfg.warmup > 0 {
		warm := loop.run(ctx, customers, cfg.warmup, time.Time{})
		row.addErrors("warm-up: ", warm.errors)
	}
	pending, _, err := waitDispatches(ctx, loop.pending, cfg.dispatchWait)
	row.dispatchWaitEnded("warm-up: dispatch wait", pending, cfg.dispatchWait, err)
}

// readPostgres reads what PostgreSQL says of the run once the shop has
// stopped: its commits are whole only then (see commitsAfterExit).
func readPostgres(ctx context.Context, pg *pgCounters, proc *shopProcess, before, after pgSnapshot, row *runRow) error {
	res := pgResult{before: before, after: after}
	var err error
	if res.statements, err = pg.statements(ctx); err != nil {
		return err
	}
	if res.databaseWAL, err = pg.finishWAL(after.walLSN); err != nil {
		row.Notes = append(row.Notes, fmt.Sprintf("the database's own WAL is unknown: %v", err))
	}
	pg.closeDatabaseConns(ctx)
	proc.stop()
	if res.commits, res.rollbacks, err = pg.commitsAfterExit(ctx); err != nil {
		return err
	}
	res.commits -= before.commits
	res.rollbacks -= before.rollbacks
	row.setPostgres(pg, res)
	row.Notes = append(row.Notes, pg.notes...)
	return nil
}

// snapshot is the counters at one moment of a run.
type snapshot struct {
	shopCPU time.Duration
	pg      pgSnapshot
}

// takeSnapshot reads the shop's CPU and PostgreSQL's counters; nothing
// against a running shop (-url).
func takeSnapshot(ctx context.Context, proc *shopProcess, pg *pgCounters) (snapshot, error) {
	var s snapshot
	if proc == nil {
		return s, nil
	}
	st, err := readProcStat(proc.pid)
	if err != nil {
		return s, fmt.Errorf("reading the shop's CPU: %w", err)
	}
	s.shopCPU = st.cpu
	if pg == nil {
		return s, nil
	}
	s.pg, err = pg.snapshot(ctx)
	return s, err
}

// waitDispatches waits until the shop has nothing left to do for the
// purchases (the dispatches go on after the purchase), asking pending
// every pollInterval, for at most bound. It returns how many were still
// pending at the end (at least) and how long it waited.
func waitDispatches(ctx context.Context, pending func(context.Context) (int, error), bound time.Duration) (int, time.Duration, error) {
	start := time.Now()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		n, err := pending(ctx)
		if err != nil {
			return 0, time.Since(start), err
		}
		if n == 0 || time.Since(start) >= bound {
			return n, time.Since(start), nil
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return n, time.Since(start), ctx.Err()
		}
	}
}
