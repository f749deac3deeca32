package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestTakeoverSettingsRefused: settings under which an instance could take
// over a live one (a silence within a few of its own heartbeats), or that
// mean nothing (a zero or negative heartbeat, a negative silence), stop
// the start with an error naming the flag; the defaults, and no takeover
// at all, start.
func TestTakeoverSettingsRefused(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	for _, tt := range []struct {
		args     []string
		wantFlag string
	}{
		{[]string{"-heartbeat", "0s"}, "-heartbeat"},
		{[]string{"-heartbeat", "-1s"}, "-heartbeat"},
		{[]string{"-heartbeat", "1ns", "-takeover-after", "1ns"}, "-heartbeat"}, // the old ticker panicked on a quarter of 1 ns
		{[]string{"-takeover-after", "-1s"}, "-takeover-after"},
		{[]string{"-takeover-after", "1ns"}, "-takeover-after"},
		{[]string{"-takeover-after", "2s"}, "-takeover-after"}, // under 3 × the default 1 s heartbeat
		{[]string{"-heartbeat", "11s"}, "-takeover-after"},     // the default 30 s is under 3 × 11 s
	} {
		_, err := parseConfig(tt.args, noEnv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.wantFlag) {
			t.Errorf("%q: %v, want an error naming %s", tt.args, err, tt.wantFlag)
		}
	}
	for _, args := range [][]string{nil, {"-takeover-after", "0"}, {"-takeover-after", "3s"}, {"-heartbeat", "10s"}, {"-heartbeat", "500ms", "-takeover-after", "1500ms"}} {
		if _, err := parseConfig(args, noEnv, io.Discard); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
	cfg, err := parseConfig(nil, func(k string) string {
		return map[string]string{"WIDGETSTORE_HEARTBEAT": "2s", "WIDGETSTORE_TAKEOVER_AFTER": "6s"}[k]
	}, io.Discard)
	if err != nil || cfg.heartbeat != 2*time.Second || cfg.takeover != 6*time.Second {
		t.Errorf("from the environment: heartbeat %v, takeover %v, %v; want 2s, 6s", cfg.heartbeat, cfg.takeover, err)
	}
}
