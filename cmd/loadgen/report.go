package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// windowNote says what the per-purchase costs cover, in every report.
const windowNote = "CPU, commits and WAL are measured from the start of the load to the end of the wait for its dispatches, " +
	"so each purchase's dispatch is included, and divided by all the purchases of the load"

// latency summarizes the latencies of one call, in milliseconds.
type latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func summarize(ds []time.Duration) latency {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return latency{
		Count: len(sorted),
		P50:   ms(percentile(sorted, 50)),
		P90:   ms(percentile(sorted, 90)),
		P99:   ms(percentile(sorted, 99)),
		Max:   ms(percentile(sorted, 100)),
	}
}

// percentile is the nearest-rank p-th percentile of sorted durations: the
// smallest one that at least p% of them do not exceed. Zero for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sweepReport is what a closed-loop sweep measured: one row per run.
type sweepReport struct {
	Product  int64    `json:"product_id"`
	Duration string   `json:"duration"`
	Warmup   int      `json:"warmup_purchases_per_customer"`
	Window   string   `json:"measurement_window"`
	Stopped  bool     `json:"stopped_early"`
	Runs     []runRow `json:"runs"`
}

// runRow is one run of a sweep. Counts that do not apply (the shop's CPU
// against -url, PostgreSQL's on SQLite) are left out of the JSON.
type runRow struct {
	Round     int      `json:"round"`
	Binary    string   `json:"binary"`
	Engine    string   `json:"engine,omitempty"`
	Customers int      `json:"customers"`
	ShopArgs  []string `json:"shop_args,omitempty"` // beyond -supervise=false -crash-button=false -addr -db
	Database  string   `json:"database,omitempty"`  // PostgreSQL's, dropped after the run
	Failed    string   `json:"failed,omitempty"`    // why the run could not be measured

	LoadSeconds         float64 `json:"load_seconds"`     // the load window, -duration
	MeasuredSeconds     float64 `json:"measured_seconds"` // the load and the wait for its dispatches
	DispatchWaitSeconds float64 `json:"dispatch_wait_seconds"`
	PendingAfterWait    int     `json:"pending_after_wait"`

	Completed          int     `json:"completed"`           // purchases of the load, the last ones included
	CompletedInWindow  int     `json:"completed_in_window"` // those done before the load window ended
	PurchasesPerSecond float64 `json:"purchases_per_second"`
	OutOfStock         int     `json:"out_of_stock"`
	Restocks           int     `json:"restocks"`
	Interrupted        int     `json:"interrupted"`
	Checkout           latency `json:"checkout"`
	Webhook            latency `json:"webhook"`
	Purchase           latency `json:"purchase"`

	Errors     int                   `json:"errors"`
	ErrorKinds map[string]*errorKind `json:"error_kinds"`

	ShopCPUMs            *float64 `json:"shop_cpu_ms,omitempty"`
	ShopCPUMsPerPurchase *float64 `json:"shop_cpu_ms_per_purchase,omitempty"`
	// The whole PostgreSQL server's CPU: other databases' work counts too.
	PGCPUMs            *float64 `json:"pg_cpu_ms,omitempty"`
	PGCPUMsPerPurchase *float64 `json:"pg_cpu_ms_per_purchase,omitempty"`
	// The CPU of the run database's backends alone.
	PGBackendCPUMsPerPurchase *float64 `json:"pg_backend_cpu_ms_per_purchase,omitempty"`
	Commits                   *int64   `json:"commits,omitempty"`
	Rollbacks                 *int64   `json:"rollbacks,omitempty"`
	CommitsPerPurchase        *float64 `json:"commits_per_purchase,omitempty"`
	// The whole server's WAL: other databases' writes count too.
	WALBytes            *int64   `json:"wal_bytes,omitempty"`
	WALBytesPerPurchase *float64 `json:"wal_bytes_per_purchase,omitempty"`
	// The WAL records of the run's database alone (pg_walinspect), and the
	// full-page images among them: those follow the checkpoints, which
	// other databases may force (DROP DATABASE does), more than the
	// workload.
	DatabaseWALBytes            *int64   `json:"database_wal_bytes,omitempty"`
	DatabaseWALBytesPerPurchase *float64 `json:"database_wal_bytes_per_purchase,omitempty"`
	DatabaseFPIBytesPerPurchase *float64 `json:"database_fpi_bytes_per_purchase,omitempty"`
	Checkpoints                 *int64   `json:"checkpoints,omitempty"`
	// Transactions the server's other databases committed meanwhile: when
	// many, the server's CPU and WAL are not this run's alone.
	OtherDatabasesCommits *int64 `json:"other_databases_commits,omitempty"`
	// From pg_stat_statements, when the server has it loaded.
	StatementsPerPurchase *float64    `json:"statements_per_purchase,omitempty"`
	Statements            []statement `json:"statements,omitempty"`

	Notes []string `json:"notes,omitempty"` // what could not be measured, and why
}

func ptr[T any](v T) *T { return &v }

// perPurchase divides by the purchases of the load; nil when there were
// none.
func (r *runRow) perPurchase(v float64) *float64 {
	if r.Completed == 0 {
		return nil
	}
	return ptr(v / float64(r.Completed))
}

// fill records a closed loop's purchases: window is the load's, measured
// runs to the end of the dispatch wait.
func (r *runRow) fill(s *purchaseStats, window, measured, waited time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.LoadSeconds = window.Seconds()
	r.MeasuredSeconds = measured.Seconds()
	r.DispatchWaitSeconds = waited.Seconds()
	r.Completed = s.nCompleted
	r.CompletedInWindow = s.nCompletedInWindow
	r.PurchasesPerSecond = float64(s.nCompletedInWindow) / window.Seconds()
	r.OutOfStock = s.nOutOfStock
	r.Restocks = s.nRestocks
	r.Interrupted = s.nInterrupted
	r.Checkout = summarize(s.checkout)
	r.Webhook = summarize(s.webhook)
	r.Purchase = summarize(s.purchase)
	r.addErrors("", s.errors)
}

func (r *runRow) addErrors(prefix string, kinds map[string]*errorKind) {
	for kind, e := range kinds {
		r.addErrorN(prefix+kind, e.Example, e.Count)
	}
}

func (r *runRow) addError(kind, example string) { r.addErrorN(kind, example, 1) }

func (r *runRow) addErrorN(kind, example string, n int) {
	r.Errors += n
	countError(r.ErrorKinds, kind, example, n)
}

// dispatchWaitEnded records a wait for the dispatches that failed, or
// ended with workflows still pending.
func (r *runRow) dispatchWaitEnded(kind string, pending int, bound time.Duration, err error) {
	switch {
	case err != nil:
		r.addError(kind, err.Error())
	case pending > 0:
		r.addError(kind, fmt.Sprintf("%d or more workflows still pending after %s", pending, bound))
	}
}

func (r *runRow) setShopCPU(cpu time.Duration) {
	r.ShopCPUMs = ptr(ms(cpu))
	r.ShopCPUMsPerPurchase = r.perPurchase(ms(cpu))
}

// pgResult is what PostgreSQL's counters said of a run.
type pgResult struct {
	before, after      pgSnapshot
	commits, rollbacks int64     // read once the shop had exited
	databaseWAL        *walBytes // nil without pg_walinspect
	statements         []statement
}

// setPostgres records PostgreSQL's counters.
func (r *runRow) setPostgres(c *pgCounters, res pgResult) {
	if c.postmaster != 0 {
		cpu := ms(res.after.serverCPU - res.before.serverCPU)
		r.PGCPUMs = ptr(cpu)
		r.PGCPUMsPerPurchase = r.perPurchase(cpu)
	}
	r.PGBackendCPUMsPerPurchase = r.perPurchase(ms(cpuSince(res.before.backendCPU, res.after.backendCPU)))
	r.Commits, r.Rollbacks = ptr(res.commits), ptr(res.rollbacks)
	r.CommitsPerPurchase = r.perPurchase(float64(res.commits))
	wal := int64(res.after.walLSN - res.before.walLSN)
	r.WALBytes = ptr(wal)
	r.WALBytesPerPurchase = r.perPurchase(float64(wal))
	if w := res.databaseWAL; w != nil {
		r.DatabaseWALBytes = ptr(w.all)
		r.DatabaseWALBytesPerPurchase = r.perPurchase(float64(w.all))
		r.DatabaseFPIBytesPerPurchase = r.perPurchase(float64(w.fpi))
	}
	r.Checkpoints = ptr(res.after.checkpoints - res.before.checkpoints)
	r.OtherDatabasesCommits = ptr(otherCommits(res.before, res.after))
	if c.statementsOn {
		var calls int64
		for _, s := range res.statements {
			calls += s.Calls
		}
		r.StatementsPerPurchase = r.perPurchase(float64(calls))
		r.Statements = res.statements[:min(len(res.statements), 20)]
	}
}

// print writes the report as a table, one row per run, then the errors
// and what else deserves a word.
func (rep sweepReport) print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "widgetstore purchase benchmark: C customers each buy product %d again and again (checkout, then the paid webhook) for %s, after %d warm-up purchases each.\n",
		rep.Product, rep.Duration, rep.Warmup)
	b.WriteString("buy/s: purchases completed within the load window / its length. Latencies in ms, p50/p99.\n")
	fmt.Fprintf(&b, "Per purchase: %s:\n", rep.Window)
	b.WriteString("  shop ms: the shop process's CPU (user+system); pg db ms: the CPU of the run database's backends; pg ms: the whole PostgreSQL server's;\n")
	b.WriteString("  commits: the run database's; WAL db: its WAL records, FPI db: the full-page images among them (pg_walinspect); WAL B: the whole server's WAL.\n")
	b.WriteString("  pg ms and WAL B include other databases' work; FPI db follows the checkpoints, which other databases may force.\n")
	if rep.Stopped {
		b.WriteString("Stopped early (interrupted).\n")
	}
	b.WriteString("\n")

	width := len("binary")
	for _, r := range rep.Runs {
		width = max(width, len(r.Binary))
	}
	const row = "%-*s %-8s %4s %6s %6s %13s %13s %13s %8s %8s %7s %7s %7s %7s %7s %6s\n"
	fmt.Fprintf(&b, row, width, "binary", "engine", "C", "done", "buy/s", "checkout", "webhook", "purchase",
		"shop ms", "pg db ms", "pg ms", "commits", "WAL db", "FPI db", "WAL B", "errors")
	for _, r := range rep.Runs {
		engine := cmp.Or(r.Engine, "-")
		if r.Failed != "" {
			fmt.Fprintf(&b, "%-*s %-8s %4d  failed: %s\n", width, r.Binary, engine, r.Customers, firstLine(r.Failed))
			continue
		}
		fmt.Fprintf(&b, row, width, r.Binary, engine, strconv.Itoa(r.Customers), strconv.Itoa(r.Completed),
			fmt.Sprintf("%.1f", r.PurchasesPerSecond), pair(r.Checkout), pair(r.Webhook), pair(r.Purchase),
			opt(r.ShopCPUMsPerPurchase, 2), opt(r.PGBackendCPUMsPerPurchase, 2), opt(r.PGCPUMsPerPurchase, 2),
			opt(r.CommitsPerPurchase, 1), opt(r.DatabaseWALBytesPerPurchase, 0), opt(r.DatabaseFPIBytesPerPurchase, 0),
			opt(r.WALBytesPerPurchase, 0),
			strconv.Itoa(r.Errors))
	}
	rep.printNotes(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

// printNotes writes what the table leaves out: the errors of each run,
// failures in full, dispatches still pending, other databases' work.
func (rep sweepReport) printNotes(b *strings.Builder) {
	for i, r := range rep.Runs {
		name := fmt.Sprintf("run %d (%s C=%d, round %d)", i+1, strings.TrimSpace(r.Binary+" "+r.Engine), r.Customers, r.Round)
		if r.Failed != "" {
			fmt.Fprintf(b, "\n%s failed: %s\n", name, r.Failed)
			continue
		}
		if len(r.ErrorKinds) > 0 {
			fmt.Fprintf(b, "\n%s: errors by kind\n", name)
			printErrorKinds(b, r.ErrorKinds)
		}
		if r.OutOfStock > 0 {
			fmt.Fprintf(b, "\n%s: the shelf was empty %d times (restocked %d times in all)\n", name, r.OutOfStock, r.Restocks)
		}
		for _, note := range r.Notes {
			fmt.Fprintf(b, "\n%s: %s\n", name, note)
		}
		if r.OtherDatabasesCommits != nil && r.Commits != nil && *r.OtherDatabasesCommits > *r.Commits/10 {
			fmt.Fprintf(b, "\n%s: other databases committed %d transactions meanwhile (this one %d): pg ms and WAL B include their work\n",
				name, *r.OtherDatabasesCommits, *r.Commits)
		}
		if r.StatementsPerPurchase != nil {
			fmt.Fprintf(b, "\n%s: %.1f statements per purchase (pg_stat_statements); the most called, per purchase:\n", name, *r.StatementsPerPurchase)
			for _, st := range r.Statements[:min(len(r.Statements), 8)] {
				fmt.Fprintf(b, "  %6.1f  %s\n", float64(st.Calls)/float64(r.Completed), oneLine(st.Query, 110))
			}
		}
		if r.Checkpoints != nil && *r.Checkpoints > 0 {
			fmt.Fprintf(b, "\n%s: %s during the run; the first change of each page after one writes it whole (FPI db)\n",
				name, plural(*r.Checkpoints, "checkpoint"))
		}
	}
}

// pair is a latency's "p50/p99" in ms.
func pair(l latency) string {
	if l.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f", l.P50, l.P99)
}

// opt is an optional figure, "-" when it does not apply.
func opt(v *float64, decimals int) string {
	if v == nil || math.IsNaN(*v) {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', decimals, 64)
}

// plural is "1 thing" or "n things".
func plural(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// oneLine is s on one line, its runs of white space made one space, cut
// to at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return truncate(line)
}
