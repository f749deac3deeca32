package web_test

import (
	"strings"
	"testing"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestHealthzTellsNothingOfTheProcess: a probe learns that the shop
// serves, not its process id.
func TestHealthzTellsNothingOfTheProcess(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), testConfig)
	if r := s.do(t, "GET", "/healthz", ""); r.status != 200 || r.body != "{\"status\":\"ok\"}\n" {
		t.Errorf("GET /healthz: %d %s, want 200 {\"status\":\"ok\"}", r.status, r.body)
	}
}

// TestStaticServesFilesOnly: the page's files are served; a directory is
// neither listed nor answered with its index.html, but not found, as JSON.
func TestStaticServesFilesOnly(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), testConfig)
	for _, tt := range []struct{ path, contentType string }{
		{"/static/app.js", "text/javascript; charset=utf-8"},
		{"/static/style.css", "text/css; charset=utf-8"},
		{"/static/index.html", "text/html; charset=utf-8"},
	} {
		if r := s.do(t, "GET", tt.path, ""); r.status != 200 || r.contentType != tt.contentType || len(r.body) < 100 {
			t.Errorf("GET %s: %d %s, %d bytes; want 200 %s", tt.path, r.status, r.contentType, len(r.body), tt.contentType)
		}
	}
	for _, path := range []string{"/static/", "/static", "/static/nope.js", "/static/app.js/", "/static/%2E", "/static/..%2Fstatic"} {
		r := s.do(t, "GET", path, "")
		if r.status != 404 || r.contentType != "application/json" || !strings.Contains(r.body, `"error"`) {
			t.Errorf("GET %s: %d %s %.80q, want 404 with a JSON error", path, r.status, r.contentType, r.body)
		}
	}
}
