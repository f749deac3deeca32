package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestJSONLogsOnly runs the real binary, under its supervisor, with
// -log-format json: it serves purchases and bad requests, it logs an
// unpaid checkout's timeout, its server is killed by the crash button and
// restarted, and it stops on SIGTERM; a
// second one fails to start on the address taken. Every line either wrote,
// on stdout and stderr, is a JSON record with a time, a level and a
// message.
func TestJSONLogsOnly(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + t.TempDir() + "/widgetstore.db"
	shop := startBinary(t, nil, "-log-format", "json", "-log-level", "debug", "-addr", "127.0.0.1:0", "-db", db, "-payment-timeout", "1s")
	addr := shop.addr(t, 1)
	post := func(path string) string {
		t.Helper()
		resp, err := http.Post("http://"+addr+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		return body.String()
	}
	payment := post("/checkout/json-logs")
	post("/payment_webhook/" + payment + "/paid")
	post("/payment_webhook/pay_nope/paid") // a 400
	post("/checkout/json-logs-unpaid")
	shop.stderr.wait(t, "the line for the unpaid checkout", func(line string) bool { return strings.Contains(line, "no payment by the deadline") })
	post("/crash_application")
	shop.stderr.wait(t, "the supervisor's restart", func(line string) bool { return strings.Contains(line, "restarting") })
	addr = shop.addr(t, 2)

	// A second server on the same address fails, and says so in JSON.
	taken := exec.Command(buildBinary(t), "-log-format", "json", "-supervise=false", "-addr", addr, "-db", "sqlite:"+t.TempDir()+"/other.db")
	var takenOut, takenErr bytes.Buffer
	taken.Stdout, taken.Stderr = &takenOut, &takenErr
	if err := taken.Run(); err == nil || !strings.Contains(takenErr.String(), "address already in use") {
		t.Errorf("a second server on %s: %v, stderr %q; want a failure saying the address is in use", addr, err, takenErr.String())
	}
	if err := shop.stop(t); err != nil {
		t.Errorf("the shop's exit after SIGTERM: %v", err)
	}

	outputs := map[string][]string{
		"stdout": shop.stdout.all(), "stderr": shop.stderr.all(),
		"the second server's stdout": strings.Split(strings.TrimSpace(takenOut.String()), "\n"),
		"the second server's stderr": strings.Split(strings.TrimSpace(takenErr.String()), "\n"),
	}
	for name, lines := range outputs {
		for _, line := range lines {
			if name == "the second server's stdout" && line == "" {
				continue // it wrote nothing there
			}
			var record struct{ Time, Level, Msg string }
			if err := json.Unmarshal([]byte(line), &record); err != nil || record.Time == "" || record.Level == "" || record.Msg == "" {
				t.Errorf("%s has a line that is no JSON record with time, level and msg: %q (%v)", name, line, err)
			}
		}
	}
	t.Logf("%d stdout lines, %d stderr lines; the second server: %q", len(outputs["stdout"]), len(outputs["stderr"]), outputs["the second server's stderr"])
	if len(outputs["stderr"]) < 5 {
		t.Errorf("stderr has %d lines, want the requests' and the supervisor's: %q", len(outputs["stderr"]), outputs["stderr"])
	}
}

// TestJSONLinesWrapsAPanic: a real Go panic's output, through jsonLines
// (what the supervisor does with its server's stderr under -log-format
// json), is JSON records only, the panic's message and trace in them.
func TestJSONLinesWrapsAPanic(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	wrapped := &jsonLines{w: &out, level: 8} // ERROR
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), panicEnv+"=1")
	cmd.Stderr = wrapped
	if err := cmd.Run(); err == nil {
		t.Fatal("the panicking process exited 0")
	}
	if err := wrapped.Flush(); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var record struct{ Time, Level, Msg, Source string }
		if err := json.Unmarshal([]byte(line), &record); err != nil || record.Level != "ERROR" || record.Source != "server output" {
			t.Errorf("not a JSON record at ERROR from the server's output: %q (%v)", line, err)
		}
		msgs = append(msgs, record.Msg)
	}
	text := strings.Join(msgs, "\n")
	if !strings.Contains(text, "panic: the test asked for a panic") || !strings.Contains(text, "goroutine 1") {
		t.Errorf("the wrapped panic lacks its message or trace: %q", text)
	}
	// A JSON line passes as it is.
	out.Reset()
	wrapped.Write([]byte(`{"time":"t","level":"INFO","msg":"m"}` + "\n"))
	if out.String() != `{"time":"t","level":"INFO","msg":"m"}`+"\n" {
		t.Errorf("a JSON line came out as %q", out.String())
	}
}

// TestHealthcheck: -healthcheck exits 0 while a server answers at -addr
// (given as a flag, as its environment twin, or as every interface's
// address) and 1, saying why, once it is gone.
func TestHealthcheck(t *testing.T) {
	t.Parallel()
	shop := startBinary(t, nil, "-supervise=false", "-addr", "127.0.0.1:0", "-db", "sqlite:"+t.TempDir()+"/widgetstore.db")
	addr := shop.addr(t, 1)
	_, port, _ := strings.Cut(addr, ":")
	check := func(env []string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(buildBinary(t), append([]string{"-healthcheck"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if exit, ok := err.(*exec.ExitError); ok {
			return exit.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	for _, tt := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"-addr", addr}},
		{[]string{"WIDGETSTORE_ADDR=" + addr}, nil},
		{nil, []string{"-addr", ":" + port}}, // as a container's server is given, without its secrets
		{nil, []string{"-addr", "0.0.0.0:" + port}},
	} {
		if code, out := check(tt.env, tt.args...); code != 0 {
			t.Errorf("-healthcheck %q with %q: exit %d %s, want 0", tt.args, tt.env, code, out)
		}
	}
	if err := shop.stop(t); err != nil {
		t.Fatal(err)
	}
	if code, out := check(nil, "-addr", addr); code != 1 || !strings.Contains(out, "healthcheck") {
		t.Errorf("-healthcheck of a stopped server: exit %d %q, want 1 saying why", code, out)
	}
}
