package main

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/widgetstore/widgetstore/internal/dbtest"
)

func TestParseTracing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		env          map[string]string
		wantEndpoint string // "": off
		wantGRPC     bool
		wantErr      string // in the error; "": none
	}{
		{"nothing set: off", nil, "", false, ""},
		{"a service name alone: off", map[string]string{"OTEL_SERVICE_NAME": "shop"}, "", false, ""},
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http://collector:4318/v1/traces", false, ""},
		{"base endpoint with a slash", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/otlp/"}, "https://collector:4318/otlp/v1/traces", false, ""},
		{"traces endpoint as given", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/in"}, "http://b:4318/in", false, ""},
		{"http/protobuf", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "http://a:4318/v1/traces", false, ""},
		{"grpc: the base endpoint as given", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http://a:4317", true, ""},
		{"the traces' protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "http://a:4317", true, ""},
		{"disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "TRUE"}, "", false, ""},
		{"no exporter", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"}, "", false, ""},
		{"http/json", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "", false, `OTEL_EXPORTER_OTLP_PROTOCOL "http/json"`},
		{"zipkin", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, "", false, `OTEL_TRACES_EXPORTER "zipkin"`},
		{"no URL", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "", false, `OTEL_EXPORTER_OTLP_ENDPOINT "collector:4318"`},
		{"no host", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http:///v1/traces"}, "", false, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "http:///v1/traces"`},
	}
	for _, tt := range tests {
		cfg, err := parseTracing(func(k string) string { return tt.env[k] })
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want one naming %s", tt.name, err, tt.wantErr)
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case cfg.endpoint != tt.wantEndpoint || cfg.grpc != tt.wantGRPC || cfg.on() != (tt.wantEndpoint != ""):
			t.Errorf("%s: endpoint %q grpc %v, want %q %v", tt.name, cfg.endpoint, cfg.grpc, tt.wantEndpoint, tt.wantGRPC)
		}
	}
	// parseConfig refuses, at start-up, what parseTracing does.
	if _, err := parseConfig(nil, func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}[k]
	}, io.Discard); err == nil {
		t.Error("parseConfig took OTEL_EXPORTER_OTLP_PROTOCOL=http/json")
	}
}

// TestTracesAPurchase: with an OTLP endpoint set, one purchase, paid and
// dispatched, reaches a real collector (OTLP/HTTP on each engine, and
// OTLP/gRPC) as one tree: the checkout request's span, and under it a span for each of the
// checkout's steps, each with the workflow's and the order's ids; the
// webhook's span names the workflow too; and the request's log line
// carries its trace id and its workflow.
func TestTracesAPurchase(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ protocol, engine string }{{"http/protobuf", "sqlite"}, {"http/protobuf", "postgres"}, {"grpc", "sqlite"}} {
		protocol := tt.protocol
		t.Run(strings.ReplaceAll(protocol, "/", "-")+"/"+tt.engine, func(t *testing.T) {
			t.Parallel()
			spans := &collected{}
			env := map[string]string{"OTEL_SERVICE_NAME": "widgetstore-test", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
			if protocol == "grpc" {
				env["OTEL_EXPORTER_OTLP_ENDPOINT"] = spans.serveGRPC(t)
			} else {
				env["OTEL_EXPORTER_OTLP_ENDPOINT"] = spans.serveHTTP(t)
			}
			r := startRun(t, env, "-db", dbtest.NewDatabase(t, tt.engine), "-log-format", "json", "-log-level", "debug", "-dispatch-steps", "1", "-dispatch-interval", "10ms",
				"-checkouts-per-minute", "0")
			const key = "traced-1"
			paymentID := post(t, r.addr, "/checkout/"+key, `{"product_id": 1, "quantity": 2, "email": "ann@example.com"}`)
			orderID, err := strconv.ParseInt(post(t, r.addr, "/payment_webhook/"+paymentID+"/paid", ""), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			awaitWorkflow(t, r.addr, key, "SUCCESS")
			if err := r.stop(); err != nil { // flushes the last spans
				t.Fatalf("run: %v", err)
			}

			if got := spans.serviceNames(); !slices.Equal(got, []string{"widgetstore-test"}) {
				t.Errorf("service names %q, want OTEL_SERVICE_NAME's", got)
			}
			request := spans.one(t, "POST /checkout/{key}")
			if request.Kind != tracepb.Span_SPAN_KIND_SERVER || request.ParentSpanId != nil ||
				attr(request, "workflow.id") != key || attr(request, "http.route") != "/checkout/{key}" || attr(request, "http.response.status_code") != "200" {
				t.Errorf("the checkout request's span: %v", request)
			}
			// Each step of the purchase, in the order it ran, under the
			// request's span: the checkout ends at the payment without a
			// step (its paid receipt sent by the webhook's process, the
			// order dispatched by the sweep).
			wantSteps := []string{"checkout.placeOrder"}
			var steps []string
			for _, s := range spans.children(request) {
				steps = append(steps, s.Name)
				if attr(s, "workflow.id") != key || attr(s, "order.id") != fmt.Sprint(orderID) || s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
					t.Errorf("step span %s: workflow %q, order %q, status %v; want %s, %d, no error",
						s.Name, attr(s, "workflow.id"), attr(s, "order.id"), s.Status, key, orderID)
				}
			}
			if !slices.Equal(steps, wantSteps) {
				t.Errorf("the checkout's step spans under its request's: %q, want %q", steps, wantSteps)
			}
			if webhook := spans.one(t, "POST /payment_webhook/{payment_id}/{status}"); attr(webhook, "workflow.id") != key ||
				bytes.Equal(webhook.TraceId, request.TraceId) {
				t.Errorf("the webhook's span: workflow %q, trace %x (the checkout's: %x); want %s, a trace of its own",
					attr(webhook, "workflow.id"), webhook.TraceId, request.TraceId, key)
			}

			var logged bool
			for line := range strings.Lines(r.log.String()) {
				var record struct {
					Msg     string
					TraceID string `json:"trace_id"`
					Request struct{ Path, Workflow string }
				}
				if json.Unmarshal([]byte(line), &record) == nil && record.Msg == "request" && record.Request.Path == "/checkout/"+key {
					logged = true
					if record.TraceID != hex.EncodeToString(request.TraceId) || record.Request.Workflow != key {
						t.Errorf("the checkout request's log line has trace %q and workflow %q, want %x and %s: %s",
							record.TraceID, record.Request.Workflow, request.TraceId, key, line)
					}
				}
			}
			if !logged {
				t.Errorf("no log line of the checkout request:\n%s", r.log.String())
			}
		})
	}
}

// TestRunWithoutTracing: with no endpoint set the shop makes no tracer
// provider, and its request lines carry no trace id.
func TestRunWithoutTracing(t *testing.T) {
	t.Parallel()
	r := startRun(t, map[string]string{"OTEL_SERVICE_NAME": "widgetstore-test"}, "-log-format", "json", "-log-level", "debug", "-checkouts-per-minute", "0")
	post(t, r.addr, "/checkout/untraced-1", "")
	if err := r.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	log := r.log.String()
	if strings.Contains(log, "trace_id") || strings.Contains(log, `"msg":"tracing"`) {
		t.Errorf("traced without an endpoint:\n%s", log)
	}
	if !strings.Contains(log, `"workflow":"untraced-1"`) {
		t.Errorf("the checkout's request line does not name its workflow:\n%s", log)
	}
}

// TestTracingToADeadCollector: a collector that cannot be reached costs
// the shop nothing but its spans: the purchase goes on, the shutdown ends
// in its budget, and the lost spans are logged as a warning, in JSON like
// every other line.
func TestTracingToADeadCollector(t *testing.T) {
	t.Parallel()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + listener.Addr().String()
	listener.Close() // nothing listens there any more
	r := startRun(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": dead}, "-log-format", "json", "-checkouts-per-minute", "0")
	paymentID := post(t, r.addr, "/checkout/dead-collector-1", "")
	post(t, r.addr, "/payment_webhook/"+paymentID+"/paid", "")
	if err := r.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	var warned bool
	for line := range strings.Lines(r.log.String()) {
		var record struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &record); err != nil {
			t.Errorf("a line that is not JSON: %s", line)
		}
		warned = warned || record.Level == "WARN" && strings.Contains(record.Msg, "traces")
	}
	if !warned {
		t.Errorf("no warning that the spans were lost:\n%s", r.log.String())
	}
}

// post posts body to the shop at path, wants 200, and returns the answer.
func post(t *testing.T, addr, path, body string) string {
	t.Helper()
	resp, err := http.Post("http://"+addr+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s %s", path, resp.Status, answer)
	}
	return strings.TrimSpace(string(answer))
}

// awaitWorkflow waits for the workflow to reach status, as the console
// says it.
func awaitWorkflow(t *testing.T, addr, id, status string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/api/workflows/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var detail struct{ Workflow struct{ Status string } }
		err = json.NewDecoder(resp.Body).Decode(&detail)
		resp.Body.Close()
		if got = detail.Workflow.Status; err == nil && got == status {
			return
		}
	}
	t.Fatalf("workflow %s is %q, want %s", id, got, status)
}

// collected holds the spans an OTLP collector received.
type collected struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	services map[string]bool
}

func (c *collected) add(req *coltracepb.ExportTraceServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.services == nil {
		c.services = map[string]bool{}
	}
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				c.services[kv.Value.GetStringValue()] = true
			}
		}
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
}

// serveHTTP serves an OTLP/HTTP collector on a loopback port until the
// test ends, and returns its base URL.
func (c *collected) serveHTTP(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("the collector got %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			http.NotFound(w, r)
			return
		}
		body := io.Reader(r.Body)
		if r.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = gz
		}
		payload, err := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(payload, &req)
		}
		if err != nil {
			t.Errorf("the collector could not read an export: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.add(&req)
		answer, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(answer)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// serveGRPC serves an OTLP/gRPC collector on a loopback port until the
// test ends, and returns its URL.
func (c *collected) serveGRPC(t *testing.T) string {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, grpcCollector{collected: c})
	go srv.Serve(listener)
	t.Cleanup(srv.Stop)
	return "http://" + listener.Addr().String()
}

// grpcCollector is the OTLP/gRPC trace service, collecting.
type grpcCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	collected *collected
}

func (g grpcCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.collected.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (c *collected) serviceNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for name := range c.services {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// one is the one span named name.
func (c *collected) one(t *testing.T, name string) *tracepb.Span {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var found []*tracepb.Span
	for _, s := range c.spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range c.spans {
			names = append(names, s.Name)
		}
		t.Fatalf("%d spans named %q, want 1; got %q", len(found), name, names)
	}
	return found[0]
}

// children are parent's child spans, in the order they started.
func (c *collected) children(parent *tracepb.Span) []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var children []*tracepb.Span
	for _, s := range c.spans {
		if bytes.Equal(s.TraceId, parent.TraceId) && bytes.Equal(s.ParentSpanId, parent.SpanId) {
			children = append(children, s)
		}
	}
	slices.SortFunc(children, func(a, b *tracepb.Span) int { return cmp.Compare(a.StartTimeUnixNano, b.StartTimeUnixNano) })
	return children
}

// attr is the span's attribute key, as text; "" when it has none.
func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			switch v := kv.Value.Value.(type) {
			case *commonpb.AnyValue_StringValue:
				return v.StringValue
			case *commonpb.AnyValue_IntValue:
				return fmt.Sprint(v.IntValue)
			default:
				return kv.Value.String()
			}
		}
	}
	return ""
}
