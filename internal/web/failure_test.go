package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/widgetstore/widgetstore/internal/checkout/checkouttest"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/web"
)

// lockedBuffer collects a logger's output from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestInternalFailureAnswers500 makes the order's INSERT fail inside a
// checkout (a trigger refuses it): the client reads 500 "internal error",
// never a client error such as 404, and the failure is logged at error
// level once, with its cause.
func TestInternalFailureAnswers500(t *testing.T) {
	dbtest.RunEach(t, func(t *testing.T, url string) {
		var logs lockedBuffer
		logger := slog.New(slog.NewJSONHandler(&logs, nil))
		db, co := checkouttest.Launch(t, url, testConfig, logger)
		srv := httptest.NewServer(web.NewServer(logger, db, co, web.Options{}))
		t.Cleanup(srv.Close)

		trigger := map[string]string{
			"sqlite": `CREATE TRIGGER refuse_orders BEFORE INSERT ON orders BEGIN SELECT RAISE(ABORT, 'orders refused by the test'); END`,
			"postgres": `CREATE FUNCTION refuse_orders() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'orders refused by the test'; END $$;
				CREATE TRIGGER refuse_orders BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION refuse_orders()`,
		}[db.Engine()]
		if _, err := db.Q().Exec(context.Background(), trigger); err != nil {
			t.Fatal(err)
		}

		resp, err := http.Post(srv.URL+"/checkout/refused-by-trigger", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Error string `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusInternalServerError || body.Error != "internal error" {
			t.Errorf("answer %d %q, want 500 \"internal error\"", resp.StatusCode, body.Error)
		}

		var shopErrors []string
		for line := range strings.Lines(logs.String()) {
			var record struct {
				Level string `json:"level"`
				Msg   string `json:"msg"`
			}
			if json.Unmarshal([]byte(line), &record) == nil && record.Level == "ERROR" {
				shopErrors = append(shopErrors, line)
			}
		}
		if len(shopErrors) != 1 || !strings.Contains(shopErrors[0], "refused-by-trigger") || !strings.Contains(shopErrors[0], "orders refused by the test") {
			t.Errorf("want one error line naming the checkout and the cause, got %d:\n%s", len(shopErrors), strings.Join(shopErrors, ""))
		}
	})
}
