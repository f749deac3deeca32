package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackupUnderLoad copies the SQLite database with `widgetstore backup`
// while the real binary serves purchases (placed, paid, refused, left to
// time out) from several clients, then starts the shop on the copy: its
// books of stock and money are clean (store.Audit, GET /api/audit), the
// checkouts the copy caught in flight finish there, and the books are
// clean again. A backup to a file that exists, of a database that does
// not, or of PostgreSQL fails saying why and writes nothing.
func TestBackupUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "shop.db")
	// The restored shop runs as the first did: a checkout the copy caught
	// before it placed its order places it there, under these timings.
	flags := []string{"-checkouts-per-minute", "0", "-pending-units", "0", "-payment-timeout", "2s", "-dispatch-steps", "2", "-dispatch-interval", "100ms"}
	shop := startBinary(t, nil, append([]string{"-supervise=false", "-addr", "127.0.0.1:0", "-db", db}, flags...)...)
	addr := shop.addr(t, 1)

	var stop atomic.Bool
	var purchases, failures atomic.Int64 // failures: answers 5xx
	var load sync.WaitGroup
	for client := range 4 {
		load.Go(func() {
			for n := 0; !stop.Load(); n++ {
				status, payment := tryPost(t, addr, fmt.Sprintf("/checkout/backup-%d-%d", client, n))
				if status >= 500 {
					failures.Add(1)
				}
				if status != 200 {
					continue // out of stock, say
				}
				switch n % 3 {
				case 0:
					status, _ = tryPost(t, addr, "/payment_webhook/"+payment+"/paid")
				case 1:
					status, _ = tryPost(t, addr, "/payment_webhook/"+payment+"/failed")
				}
				if status >= 500 {
					failures.Add(1)
				}
				purchases.Add(1)
			}
		})
	}
	waitFor(t, "purchases under way", func() bool { return purchases.Load() >= 20 })

	backupFile := filepath.Join(dir, "copy.db")
	if code, out := runBinary(t, "backup", "-db", db, backupFile); code != 0 {
		t.Fatalf("widgetstore backup: exit %d %s", code, out)
	}
	during := purchases.Load()
	waitFor(t, "purchases after the backup", func() bool { return purchases.Load() >= during+10 })
	stop.Store(true)
	load.Wait()
	if failures.Load() > 0 {
		t.Errorf("%d requests answered 5xx while the backup ran beside the shop", failures.Load())
	}
	copied, err := os.ReadFile(backupFile)
	if err != nil {
		t.Fatal(err)
	}

	// Refused, with nothing written.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", "-db", db, backupFile}, "exists already"},
		{[]string{"backup", "-db", "sqlite:" + filepath.Join(dir, "none.db"), filepath.Join(dir, "none-copy.db")}, "no database there"},
		{[]string{"backup", "-db", "postgres://127.0.0.1:1/shop", filepath.Join(dir, "pg-copy.db")}, "pg_dump"},
		{[]string{"backup"}, "usage"},
	} {
		if code, out := runBinary(t, tt.args...); code != 1 || !strings.Contains(out, tt.want) {
			t.Errorf("widgetstore %q: exit %d %q, want 1 saying %q", tt.args, code, out, tt.want)
		}
	}
	if again, err := os.ReadFile(backupFile); err != nil || !bytes.Equal(again, copied) {
		t.Errorf("a refused backup changed the existing copy (%v)", err)
	}
	for _, name := range []string{"none.db", "none-copy.db", "pg-copy.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("a refused backup wrote %s", name)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*partial*")); len(leftovers) > 0 {
		t.Errorf("backups left %q", leftovers)
	}
	if err := shop.stop(t); err != nil {
		t.Errorf("the shop's exit: %v", err)
	}
	// A stopped shop's database is copied as well.
	if code, out := runBinary(t, "backup", "-db", db, filepath.Join(dir, "stopped.db")); code != 0 {
		t.Errorf("widgetstore backup of a stopped shop: exit %d %s", code, out)
	}

	restored := startRun(t, nil, append(flags, "-db", "sqlite:"+backupFile)...)
	var orders []struct{ Status string }
	getJSONFrom(t, restored.addr, "/orders", &orders)
	if len(orders) < 20 {
		t.Fatalf("the copy has %d orders; it was taken after 20 purchases", len(orders))
	}
	checkBooks(t, restored.addr, "the restored copy")
	defer func() {
		if t.Failed() {
			var wfs []struct {
				ID string `json:"workflow_id"`
			}
			getJSONFrom(t, restored.addr, "/api/workflows?status=PENDING", &wfs)
			for _, wf := range wfs {
				var d any
				getJSONFrom(t, restored.addr, "/api/workflows/"+wf.ID, &d)
				t.Logf("pending %s: %+v", wf.ID, d)
			}
			t.Logf("orders %+v\nlog %s", orders, restored.log.String())
		}
	}()
	waitFor(t, "the copy's checkouts in flight to finish", func() bool {
		getJSONFrom(t, restored.addr, "/orders", &orders)
		for _, o := range orders {
			if o.Status == "PENDING" || o.Status == "PAID" {
				return false
			}
		}
		return true
	})
	checkBooks(t, restored.addr, "the restored copy, its checkouts finished")
}

// tryPost posts an empty body, returning the answer's status and body. A
// failure to connect is an error of the test, not fatal: the load's
// goroutines call it, where Fatal may not be called.
func tryPost(t *testing.T, addr, path string) (int, string) {
	resp, err := http.Post("http://"+addr+path, "text/plain", nil)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func getJSONFrom(t *testing.T, addr, path string, v any) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET %s: %s %v", path, resp.Status, err)
	}
}

// checkBooks fails the test unless GET /api/audit finds no breach.
func checkBooks(t *testing.T, addr, what string) {
	t.Helper()
	var audit struct{ Breaches *[]string }
	getJSONFrom(t, addr, "/api/audit", &audit)
	if audit.Breaches == nil || len(*audit.Breaches) > 0 {
		t.Errorf("the books of %s: %v", what, audit.Breaches)
	}
}

// runBinary runs the binary to its end: its exit code and its output.
func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(buildBinary(t), args...).CombinedOutput()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// waitFor polls ok for up to 30 s.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30 s for %s", what)
		}
	}
}
