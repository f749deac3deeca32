package main

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

// TestMetricsCountPurchases makes purchases of every kind on the real
// program, then scrapes GET /metrics (the operator's) and checks each
// counter against what was done.
func TestMetricsCountPurchases(t *testing.T) {
	t.Parallel()
	dbtest.RunEach(t, func(t *testing.T, url string) {
		t.Parallel()
		env := map[string]string{"OPERATOR_TOKEN": "op-token"}
		r := startRun(t, env, "-db", url, "-payment-timeout", "3s", "-dispatch-steps", "1", "-dispatch-interval", "10ms",
			"-checkouts-per-minute", "0", "-pending-units", "0")
		post := func(path string, wantStatus int) string {
			t.Helper()
			resp, err := http.Post("http://"+r.addr+path, "text/plain", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != wantStatus {
				t.Fatalf("POST %s: %s %s, want %d", path, resp.Status, body, wantStatus)
			}
			return string(body)
		}

		payments := map[string]string{}
		for _, key := range []string{"paid-1", "paid-2", "paid-3", "refused-1", "unpaid-1"} {
			payments[key] = post("/checkout/"+key, 200)
		}
		post("/checkout/paid-1", 200) // a retry: no new checkout
		for _, key := range []string{"paid-1", "paid-2", "paid-3"} {
			post("/payment_webhook/"+payments[key]+"/paid", 200)
		}
		post("/payment_webhook/"+payments["refused-1"]+"/failed", 200)
		post("/payment_webhook/"+payments["paid-1"]+"/paid", 200)   // redelivered
		post("/payment_webhook/"+payments["paid-2"]+"/failed", 409) // conflict
		post("/payment_webhook/pay_"+strings.Repeat("A", 26)+"/paid", 404)

		resp, err := http.Get("http://" + r.addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /metrics without the operator's token: %s, want 401", resp.Status)
		}

		want := map[string]string{
			`widgetstore_checkouts_started_total`:                                                             "5",
			`widgetstore_payment_reports_total{result="settled"}`:                                             "4",
			`widgetstore_payment_reports_total{result="redelivered"}`:                                         "1",
			`widgetstore_payment_reports_total{result="conflict"}`:                                            "1",
			`widgetstore_payment_reports_total{result="unknown"}`:                                             "1",
			`widgetstore_payment_reports_total{result="error"}`:                                               "0",
			`widgetstore_orders_settled_total{outcome="paid"}`:                                                "3",
			`widgetstore_orders_settled_total{outcome="refused"}`:                                             "1",
			`widgetstore_orders_settled_total{outcome="timed_out"}`:                                           "1",
			`widgetstore_orders_settled_total{outcome="dispatched"}`:                                          "3",
			`widgetstore_http_requests_total{code="200",route="POST /checkout/{key}"}`:                        "6",
			`widgetstore_http_requests_total{code="200",route="POST /payment_webhook/{payment_id}/{status}"}`: "5",
			`widgetstore_http_requests_total{code="409",route="POST /payment_webhook/{payment_id}/{status}"}`: "1",
			`widgetstore_http_requests_total{code="404",route="POST /payment_webhook/{payment_id}/{status}"}`: "1",
			`widgetstore_http_requests_total{code="401",route="GET /metrics"}`:                                "1",
			`widgetstore_http_request_duration_seconds_count{route="POST /checkout/{key}"}`:                   "6",
		}
		// The unpaid order times out 3 s after its checkout, and the paid
		// ones are dispatched meanwhile.
		var got map[string]string
		for deadline := time.Now().Add(20 * time.Second); ; {
			got = scrape(t, r.addr, "op-token")
			if got[`widgetstore_orders_settled_total{outcome="timed_out"}`] == "1" && got[`widgetstore_orders_settled_total{outcome="dispatched"}`] == "3" ||
				time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for series, value := range want {
			if got[series] != value {
				t.Errorf("%s = %q, want %s", series, got[series], value)
			}
		}
		if _, ok := got["go_goroutines"]; !ok {
			t.Error("no go_goroutines: the Go collector is not registered")
		}
	})
}

// scrape reads GET /metrics with the operator's token: each series (name
// and labels) to its value.
func scrape(t *testing.T, addr, token string) map[string]string {
	t.Helper()
	series := map[string]string{}
	for _, line := range metricsLines(t, addr, token) {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("a line of /metrics is not a series and its value: %q", line)
		}
		series[line[:i]] = line[i+1:]
	}
	return series
}

// metricsLines are the lines of GET /metrics, read with the operator's
// token.
func metricsLines(t *testing.T, addr, token string) []string {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var lines []string
	scanner := bufio.NewScanner(resp.Body)
	for scanner.Scan() {
		lines = append(lines, scanner.Text())
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
