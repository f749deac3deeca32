package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestMonitoringNamesServedMetrics: the alert rules and the Grafana
// dashboard under deploy/ parse, the rules cover what an operator must be
// woken for, and every metric their expressions name is one GET /metrics
// serves, on one engine or the other (the heartbeats are PostgreSQL's),
// or Prometheus's own `up`.
func TestMonitoringNamesServedMetrics(t *testing.T) {
	t.Parallel()
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
				Annotations      map[string]string
			}
		}
	}
	readYAML(t, "../../deploy/prometheus/alerts.yaml", &rules)
	named := map[string][]string{} // metric → where it is named
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert rule %+v lacks a name, an expression, a severity or a summary", r)
			}
			for _, m := range promqlMetrics(r.Expr) {
				named[m] = append(named[m], "alert "+r.Alert)
			}
		}
	}
	// Stuck checkouts, refunds needing attention, a silent instance,
	// readiness failing.
	for _, want := range []string{"widgetstore_orders_past_deadline", "widgetstore_refunds_total", "up", "widgetstore_executor_heartbeat_age_seconds", "widgetstore_http_requests_total"} {
		if len(named[want]) == 0 {
			t.Errorf("no alert rule names %s", want)
		}
	}

	var dashboard struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	text, err := os.ReadFile("../../deploy/grafana/widgetstore.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(text, &dashboard); err != nil || dashboard.Title == "" || len(dashboard.Panels) == 0 {
		t.Fatalf("the Grafana dashboard: %v, %d panels", err, len(dashboard.Panels))
	}
	for _, p := range dashboard.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			for _, m := range promqlMetrics(target.Expr) {
				named[m] = append(named[m], "panel "+p.Title)
			}
		}
	}

	served := map[string]bool{"up": true} // Prometheus's, per scraped target
	dbtest.RunEach(t, func(t *testing.T, url string) {
		r := startRun(t, map[string]string{"OPERATOR_TOKEN": "op-token"}, "-db", url)
		// A checkout waiting for its payment: the pending workflows' gauges.
		resp, err := http.Post("http://"+r.addr+"/checkout/monitoring", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for name := range servedMetrics(t, r.addr, "op-token") {
			served[name] = true
		}
	})
	for metric, where := range named {
		if !served[metric] {
			t.Errorf("%s, named by %q, is not served by /metrics", metric, where)
		}
	}
	if len(named) < 10 {
		t.Errorf("only %d metrics found in the rules and the dashboard: %v", len(named), named)
	}
}

// TestDeployHealthChecks: the image's HEALTHCHECK and the compose file's
// run the binary's -healthcheck in exec form (distroless has no shell), and
// the Kubernetes PodDisruptionBudget selects the Deployment's pods.
func TestDeployHealthChecks(t *testing.T) {
	t.Parallel()
	dockerfile, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^HEALTHCHECK [^\n]*\\\n\s*CMD (\[.*\])$`).FindSubmatch(dockerfile)
	var dockerCmd []string
	if m == nil || json.Unmarshal(m[1], &dockerCmd) != nil {
		t.Fatalf("deploy/Dockerfile has no HEALTHCHECK in exec form (CMD [...])")
	}
	binary := regexp.MustCompile(`COPY --from=build /out/widgetstore (\S+)`).FindSubmatch(dockerfile)
	if binary == nil || !slices.Equal(dockerCmd, []string{string(binary[1]), "-healthcheck"}) {
		t.Errorf("the image's HEALTHCHECK runs %q, want the binary it copies with -healthcheck", dockerCmd)
	}

	var compose struct {
		Services map[string]struct {
			Healthcheck struct{ Test []string }
		}
	}
	readYAML(t, "../../deploy/compose.yaml", &compose)
	if got := compose.Services["shop"].Healthcheck.Test; !slices.Equal(got, append([]string{"CMD"}, dockerCmd...)) {
		t.Errorf("compose's shop healthcheck runs %q, want CMD and the image's %q", got, dockerCmd)
	}

	text, err := os.ReadFile("../../deploy/kubernetes/widgetstore.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type labels = map[string]string
	var podLabels, budgetSelector labels
	var minAvailable int
	decoder := yaml.NewDecoder(bytes.NewReader(text))
	for {
		var doc struct {
			Kind string
			Spec struct {
				MinAvailable int `yaml:"minAvailable"`
				Selector     struct {
					MatchLabels labels `yaml:"matchLabels"`
				}
				Template struct {
					Metadata struct{ Labels labels }
				}
			}
		}
		if err := decoder.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("deploy/kubernetes/widgetstore.yaml: %v", err)
		}
		switch doc.Kind {
		case "Deployment":
			podLabels = doc.Spec.Template.Metadata.Labels
		case "PodDisruptionBudget":
			budgetSelector, minAvailable = doc.Spec.Selector.MatchLabels, doc.Spec.MinAvailable
		}
	}
	if len(budgetSelector) == 0 || minAvailable < 1 {
		t.Fatalf("no PodDisruptionBudget keeping a pod available: selector %v, minAvailable %d", budgetSelector, minAvailable)
	}
	for k, v := range budgetSelector {
		if podLabels[k] != v {
			t.Errorf("the PodDisruptionBudget selects %s=%s, which the Deployment's pods (%v) lack", k, v, podLabels)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(text, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The parts of a PromQL expression that name no metric, removed before
// promqlMetrics reads its names.
var (
	promqlStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promqlMatchers = regexp.MustCompile(`\{[^}]*\}`)                                                       // label matchers
	promqlRanges   = regexp.MustCompile(`\[[^\]]*\]`)                                                      // ranges, subqueries
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`) // label lists
	promqlName     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promqlKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan", "atan2"}
)

// promqlMetrics are the metric names a PromQL expression selects: its
// names that are not functions (followed by "("), keywords, label names or
// values, or numbers and durations.
func promqlMetrics(expr string) []string {
	expr = promqlStrings.ReplaceAllString(expr, `""`)
	expr = promqlMatchers.ReplaceAllString(expr, " ")
	expr = promqlRanges.ReplaceAllString(expr, " ")
	expr = promqlGrouping.ReplaceAllString(expr, " ")
	var names []string
	for _, at := range promqlName.FindAllStringIndex(expr, -1) {
		name := expr[at[0]:at[1]]
		if at[0] > 0 && strings.ContainsAny(expr[at[0]-1:at[0]], "0123456789.$") {
			continue // the unit of a number (5m) or a variable
		}
		if rest := strings.TrimLeft(expr[at[1]:], " \t\n"); strings.HasPrefix(rest, "(") || slices.Contains(promqlKeywords, strings.ToLower(name)) {
			continue
		}
		names = append(names, name)
	}
	return names
}

// TestPromqlMetrics: the names promqlMetrics reads.
func TestPromqlMetrics(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`up{job="widgetstore"} == 0`: {"up"},
		`histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval])))`: {"a_bucket"},
		`sum by (instance) (rate(b_total{route="GET /readyz",code="503"}[2m])) > 0 offset 5m`:   {"b_total"},
		`count(c == 0) or vector(0)`:             {"c"},
		`d / on(instance) group_left(x) e > 1e3`: {"d", "e"},
	} {
		if got := promqlMetrics(expr); !slices.Equal(got, want) {
			t.Errorf("promqlMetrics(%q) = %q, want %q", expr, got, want)
		}
	}
}

// servedMetrics are the metric names GET /metrics serves (its # TYPE
// lines), with the series names of histograms and summaries.
func servedMetrics(t *testing.T, addr, token string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, line := range metricsLines(t, addr, token) {
		fields := strings.Fields(line)
		if len(fields) != 4 || fields[0] != "#" || fields[1] != "TYPE" {
			continue
		}
		names[fields[2]] = true
		if fields[3] == "histogram" || fields[3] == "summary" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[fields[2]+suffix] = true
			}
		}
	}
	return names
}
