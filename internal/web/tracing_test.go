package web_test

import (
	"slices"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/web"
)

// TestRequestSpans: with a tracer, a request's span is named for its
// route (the method alone when none matched), records its status, names
// the workflow a checkout request starts, and is the parent of the spans
// of the checkout's steps that run before the answer (a cart's placeOrder
// and createIntent); a client's traceparent makes it the client's child.
func TestRequestSpans(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)) // exported as each ends
	t.Cleanup(func() { tracer.Shutdown(t.Context()) })
	s := newTestServerLaunched(t, dbtest.NewDatabase(t, "sqlite"), checkout.LaunchConfig{Checkout: testConfig, Tracer: tracer},
		web.Options{Tracer: tracer}, nil)

	s.cart(t, "traced-cart", `{"lines": [{"product_id": 1, "quantity": 1}]}`)
	request := findSpan(t, spans, "POST /api/checkouts/{key}")
	if request.SpanKind != trace.SpanKindServer || request.Parent.IsValid() || attrOf(request, "workflow.id") != "traced-cart" ||
		attrOf(request, "http.route") != "/api/checkouts/{key}" || attrOf(request, "http.response.status_code") != "200" {
		t.Errorf("the cart checkout's span: kind %v, parent %v, attributes %v", request.SpanKind, request.Parent, request.Attributes)
	}
	var steps []string
	for _, s := range spans.GetSpans() {
		if s.Parent.SpanID() == request.SpanContext.SpanID() && s.SpanContext.TraceID() == request.SpanContext.TraceID() {
			steps = append(steps, s.Name)
			if attrOf(s, "workflow.id") != "traced-cart" || attrOf(s, "order.id") == "" {
				t.Errorf("step span %s: attributes %v, want the workflow's and the order's ids", s.Name, s.Attributes)
			}
		}
	}
	for _, want := range []string{"checkout.placeOrder", "checkout.createIntent"} {
		if !slices.Contains(steps, want) {
			t.Errorf("no %s span under the request's; its children: %q", want, steps)
		}
	}

	if r := s.do(t, "GET", "/no/such/page", ""); r.status != 404 {
		t.Fatalf("GET /no/such/page: %d", r.status)
	}
	if notFound := findSpan(t, spans, "GET"); attrOf(notFound, "http.response.status_code") != "404" || notFound.Status.Code == codes.Error {
		t.Errorf("an unrouted request's span: status %v, attributes %v; want 404, not an error of the server's", notFound.Status, notFound.Attributes)
	}

	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	s.do(t, "GET", "/livez", "", "traceparent", client)
	if live := findSpan(t, spans, "GET /livez"); live.Parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		live.Parent.SpanID().String() != "00f067aa0ba902b7" || !live.Parent.IsRemote() {
		t.Errorf("the span of a request with a traceparent has parent %v, want the client's", live.Parent)
	}
}

// findSpan is the one span named name that exporter holds.
func findSpan(t *testing.T, exporter *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range exporter.GetSpans() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1", len(found), name)
	}
	return found[0]
}

// attrOf is the span's attribute key, as text; "" when it has none.
func attrOf(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == attribute.Key(key) {
			return kv.Value.Emit()
		}
	}
	return ""
}
