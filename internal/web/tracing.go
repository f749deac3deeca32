package web

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/widgetstore/widgetstore/internal/checkout"
)

// tracerName names the server's tracer, as the OpenTelemetry API asks: the
// instrumenting package.
const tracerName = "github.com/widgetstore/widgetstore/internal/web"

// traceRequest starts the span of a request when the server traces
// (Options.Tracer), and returns the request with the span in its context:
// a checkout it starts is the span's child. A client's W3C traceparent
// header makes the span a child of the client's. Without a tracer it
// returns r and a nil span, and costs nothing.
func (s *Server) traceRequest(r *http.Request) (*http.Request, trace.Span) {
	if s.tracer == nil {
		return r, nil
	}
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	// Named for the route once the mux has found it (endRequestSpan).
	ctx, span := s.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path)))
	return r.WithContext(ctx), span
}

// endRequestSpan names the request's span for its route, as the mux set
// it in r.Pattern ("POST /checkout/{key}"; the method alone when no route
// matched), records how the request was answered, and ends it. A 5xx is
// an error of the span's; a 4xx is the client's, not the server's.
func endRequestSpan(span trace.Span, r *http.Request, rec *statusRecorder) {
	if span == nil {
		return
	}
	if r.Pattern != "" {
		name, route := r.Pattern, r.Pattern
		if _, path, hasMethod := strings.Cut(r.Pattern, " "); hasMethod {
			route = path
		} else {
			name = r.Method + " " + r.Pattern
		}
		span.SetName(name)
		span.SetAttributes(semconv.HTTPRoute(route))
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(rec.status))
	if rec.workflow != "" {
		span.SetAttributes(checkout.AttrWorkflowID.String(rec.workflow))
	}
	if rec.status >= 500 {
		if rec.err != nil {
			span.RecordError(rec.err)
		}
		span.SetStatus(codes.Error, http.StatusText(rec.status))
	}
	span.End()
}
