package main

import (
	"flag"
	"fmt"
	"strings"
)

// envPrefix names the environment twin of a flag: -payment-timeout is
// WIDGETSTORE_PAYMENT_TIMEOUT. Containers and systemd units configure a
// program through its environment more easily than through its command
// line.
const envPrefix = "WIDGETSTORE_"

// envTwins are the flags whose twin was an environment variable before the
// WIDGETSTORE_ ones, kept so that existing deployments work unchanged.
// (PORT is not a twin: it sets only the port of -addr's default.)
var envTwins = map[string]string{
	"db":          "DATABASE_URL", // DBOS_SYSTEM_DATABASE_URL is read too, after it
	"executor-id": "DBOS__VMID",   // DBOS's own name for it
	// Stripe's own names, as its docs and tools use them.
	"stripe-secret-key":     "STRIPE_SECRET_KEY",
	"stripe-webhook-secret": "STRIPE_WEBHOOK_SECRET",
	"stripe-api-url":        "STRIPE_API_URL",
}

// envNone are the flags without a twin: they ask for an answer and an
// exit, so one in the environment would stop every start.
var envNone = map[string]bool{"version": true}

// envName is the environment variable of the flag named name.
func envName(name string) string {
	if twin, ok := envTwins[name]; ok {
		return twin
	}
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyEnv sets every flag of fs from its environment twin, when set, and
// names the twin in the flag's usage so that -h lists it. It is called
// after the flags are defined and before fs.Parse, so a flag on the
// command line wins over its twin.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if envNone[f.Name] {
			return
		}
		name := envName(f.Name)
		f.Usage += " [$" + name + "]"
		value := getenv(name)
		if value == "" || err != nil {
			return
		}
		if setErr := fs.Set(f.Name, value); setErr != nil {
			// The value is shown: only a string may hold a secret (the
			// database URL's password), and setting a string never fails.
			err = fmt.Errorf("environment variable %s=%q (the twin of -%s): %w", name, value, f.Name, setErr)
		}
	})
	return err
}
