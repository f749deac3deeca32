package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestVersion: -version prints the build and the DBOS application
// version and exits 0, even where the configuration would refuse to serve
// (an exposed address without the secrets).
func TestVersion(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	env := map[string]string{"WIDGETSTORE_ADDR": ":8080"} // refused for a start
	if err := run(context.Background(), []string{"-version"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatalf("run -version: %v", err)
	}
	for _, want := range []string{"github.com/widgetstore/widgetstore", "revision", "DBOS application version: widgetstore-"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-version printed %q, want %q in it", out.String(), want)
		}
	}
}
