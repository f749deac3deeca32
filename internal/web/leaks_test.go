package web_test

import (
	"testing"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestHealthzTellsNothingOfTheProcess: a probe learns that the shop
// serves, not its process id.
func TestHealthzTellsNothingOfTheProcess(t *testing.T) {
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), testConfig)
	if r := s.do(t, "GET", "/healthz", ""); r.status != 200 || r.body != "{\"status\":\"ok\"}\n" {
		t.Errorf("GET /healthz: %d %s, want 200 {\"status\":\"ok\"}", r.status, r.body)
	}
}
