package main

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestDeploymentsGiveTheStopBudget: each deployment file of deploy/ lets
// the shop run its whole stop budget, for the drain it configures, before
// its own SIGKILL. All run the shop without its supervisor.
func TestDeploymentsGiveTheStopBudget(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		file  string
		grace *regexp.Regexp // the grace period, in seconds or a Go duration
		drain *regexp.Regexp // the drain it sets; nil: none (0)
	}{
		{"../../deploy/kubernetes/widgetstore.yaml", regexp.MustCompile(`terminationGracePeriodSeconds:\s*(\d+)\s`),
			regexp.MustCompile(`name: WIDGETSTORE_DRAIN\s+value:\s*"?([0-9a-z.]+)"?`)},
		{"../../deploy/compose.yaml", regexp.MustCompile(`stop_grace_period:\s*([0-9a-z.]+)`), regexp.MustCompile(`WIDGETSTORE_DRAIN:\s*"?([0-9a-z.]+)"?`)},
		{"../../deploy/widgetstore.service", regexp.MustCompile(`TimeoutStopSec=([0-9a-z.]+)`), regexp.MustCompile(`WIDGETSTORE_DRAIN=([0-9a-z.]+)`)},
	} {
		text, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		grace := tt.grace.FindSubmatch(text)
		if grace == nil {
			t.Errorf("%s: no grace period before SIGKILL found (%s)", tt.file, tt.grace)
			continue
		}
		var drain time.Duration
		if m := tt.drain.FindSubmatch(text); m != nil {
			if drain, err = time.ParseDuration(string(m[1])); err != nil {
				t.Errorf("%s: drain %q: %v", tt.file, m[1], err)
			}
		}
		if budget, given := stopBudget(drain), seconds(t, string(grace[1])); given <= budget {
			t.Errorf("%s gives the shop %v before SIGKILL; its stop budget with a %v drain is %v", tt.file, given, drain, budget)
		}
	}
}

// seconds reads a grace period: whole seconds, or a Go duration.
func seconds(t *testing.T, s string) time.Duration {
	t.Helper()
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("grace period %q: %v", s, err)
	}
	return d
}
