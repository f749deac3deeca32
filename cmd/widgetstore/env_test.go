package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestEnvTwins: every flag may be set from its environment twin, a flag on
// the command line wins, and a bad value names its variable.
func TestEnvTwins(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"WIDGETSTORE_PAYMENT_TIMEOUT":      "45s",
		"WIDGETSTORE_CHECKOUTS_PER_MINUTE": "0",
		"WIDGETSTORE_BEHIND_PROXY":         "true",
		"WIDGETSTORE_SUPERVISE":            "false",
		"WIDGETSTORE_MAX_CONNS":            "7",
		"WIDGETSTORE_ADDR":                 "127.0.0.1:9999",
		"DATABASE_URL":                     "sqlite:env.db",
		"DBOS__VMID":                       "vm-7",
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := parseConfig(nil, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.checkout.PaymentTimeout != 45*time.Second || cfg.limits.PaymentWindow != 45*time.Second || cfg.limits.PerMinute != 0 ||
		!cfg.behindProxy || cfg.supervise || cfg.http.maxConns != 7 || cfg.addr != "127.0.0.1:9999" ||
		cfg.databaseURL != "sqlite:env.db" || cfg.executorID != "vm-7" {
		t.Errorf("from the environment: %+v", cfg)
	}

	cfg, err = parseConfig([]string{"-payment-timeout", "2m", "-supervise=true", "-addr", "127.0.0.1:1", "-db", "sqlite:flag.db"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.checkout.PaymentTimeout != 2*time.Minute || !cfg.supervise || cfg.addr != "127.0.0.1:1" || cfg.databaseURL != "sqlite:flag.db" || cfg.limits.PerMinute != 0 {
		t.Errorf("flags over the environment: %+v", cfg)
	}

	for name, value := range map[string]string{
		"WIDGETSTORE_PAYMENT_TIMEOUT": "soon",
		"WIDGETSTORE_SUPERVISE":       "maybe",
		"WIDGETSTORE_MAX_CONNS":       "many",
	} {
		_, err := parseConfig(nil, func(k string) string {
			if k == name {
				return value
			}
			return ""
		}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v, want an error naming %s", name, value, err, name)
		}
	}
	// A bad twin is refused even when its flag is given: a typo in a
	// unit's environment should not wait for the day the flag goes.
	if _, err := parseConfig([]string{"-max-conns", "3"}, func(k string) string {
		return map[string]string{"WIDGETSTORE_MAX_CONNS": "many"}[k]
	}, io.Discard); err == nil {
		t.Error("a bad WIDGETSTORE_MAX_CONNS was accepted beside -max-conns")
	}
	// The environment goes through the same checks as the flags.
	if _, err := parseConfig(nil, func(k string) string {
		return map[string]string{"WIDGETSTORE_ADDR": ":8080"}[k]
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "-open-demo") {
		t.Errorf("WIDGETSTORE_ADDR=:8080 without the secrets: %v, want refused", err)
	}
}

// TestHelpListsTwins: -h names every flag's twin and run, so the
// program, exits 0 on it.
func TestHelpListsTwins(t *testing.T) {
	t.Parallel()
	var help strings.Builder
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, io.Discard, &help); err != nil {
		t.Fatalf("run -h: %v, want nil (exit 0)", err)
	}
	for _, want := range []string{"-payment-timeout", "[$WIDGETSTORE_PAYMENT_TIMEOUT]", "[$WIDGETSTORE_OPEN_DEMO]", "[$DATABASE_URL]", "[$DBOS__VMID]", "[$WIDGETSTORE_READ_TIMEOUT]", "-version"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("-h does not show %s:\n%s", want, help.String())
		}
	}
	// Each flag's usage names a twin, except -version's and -healthcheck's.
	flags := strings.Count(help.String(), "\n  -")
	twins := strings.Count(help.String(), "[$")
	if flags == 0 || twins != flags-2 {
		t.Errorf("-h shows %d flags and %d twins, want one twin for each but -version and -healthcheck:\n%s", flags, twins, help.String())
	}
}
