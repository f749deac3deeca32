package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/web"
)

// TestRequestID: a sane X-Request-Id is answered back and logged with its
// request; a missing, overlong or unprintable one is replaced by a fresh
// random id, a different one each time.
func TestRequestID(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, dbtest.NewDatabase(t, "sqlite"), testConfig)
	get := func(id string) string {
		t.Helper()
		req, err := http.NewRequest("GET", s.URL+"/livez", nil)
		if err != nil {
			t.Fatal(err)
		}
		if id != "" {
			req.Header.Set(web.RequestIDHeader, id)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get(web.RequestIDHeader)
	}

	const sane = "proxy-7f3a:42/b"
	if got := get(sane); got != sane {
		t.Errorf("sent %q, answered %q", sane, got)
	}
	if lines := s.logs.Lines("request.id="+sane+" ", "request.path=/livez"); len(lines) != 1 {
		t.Errorf("want one request line with id %q, got %q", sane, lines)
	}

	seen := map[string]bool{}
	for _, bad := range []string{"", strings.Repeat("a", 129), "two words", "tab\there", "caf\u00e9"} {
		got := get(bad)
		if got == bad || len(got) < 16 || seen[got] {
			t.Errorf("sent %q, answered %q; want a fresh random id", bad, got)
		}
		seen[got] = true
		if lines := s.logs.Lines("request.id=" + got + " "); len(lines) != 1 {
			t.Errorf("want one request line with the made id %q, got %q", got, lines)
		}
	}
	if got := get(strings.Repeat("b", 128)); got != strings.Repeat("b", 128) {
		t.Errorf("an id of 128 characters was not kept: %q", got)
	}
}
