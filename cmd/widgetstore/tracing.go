package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/widgetstore/widgetstore/internal/checkout"
)

// tracingConfig is where the shop sends its traces, from the standard
// OpenTelemetry variables (docs/tracing.md): tracing is on when an OTLP
// endpoint is set, and off, with no tracer provider at all, otherwise.
type tracingConfig struct {
	endpoint    string // the URL spans are exported to; "": tracing is off
	grpc        bool   // over OTLP/gRPC, else OTLP/HTTP (http/protobuf)
	serviceName string // OTEL_SERVICE_NAME; "": the shop's own name
}

// defaultServiceName names the shop in its traces when OTEL_SERVICE_NAME
// does not.
const defaultServiceName = "widgetstore"

// parseTracing reads the OTEL_* variables that say whether and where the
// shop exports traces. A setting this build cannot honour (http/json,
// another exporter, an endpoint that is no URL) is an error at start-up,
// not traces silently lost.
func parseTracing(getenv func(string) string) (tracingConfig, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return tracingConfig{}, nil
	}
	switch exporter := getenv("OTEL_TRACES_EXPORTER"); exporter {
	case "none":
		return tracingConfig{}, nil
	case "", "otlp":
	default:
		return tracingConfig{}, fmt.Errorf("OTEL_TRACES_EXPORTER %q: this build exports traces with otlp only (or none)", exporter)
	}
	c := tracingConfig{serviceName: getenv("OTEL_SERVICE_NAME")}
	name, endpoint := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		name, endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT", getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if endpoint == "" {
		return tracingConfig{}, nil
	}
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return tracingConfig{}, fmt.Errorf("%s %q: want an http:// or https:// URL, such as http://localhost:4318", name, endpoint)
	}
	protocolName := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	protocol := getenv(protocolName)
	if protocol == "" {
		protocolName, protocol = "OTEL_EXPORTER_OTLP_PROTOCOL", getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch protocol {
	case "", "http/protobuf":
		if name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			// The base endpoint: OTLP/HTTP posts traces to its /v1/traces.
			endpoint = strings.TrimSuffix(endpoint, "/") + "/v1/traces"
		}
	case "grpc":
		c.grpc = true
	default:
		return tracingConfig{}, fmt.Errorf("%s %q: this build exports traces over http/protobuf (the default) or grpc", protocolName, protocol)
	}
	c.endpoint = endpoint
	return c, nil
}

// on reports whether the shop traces.
func (c tracingConfig) on() bool { return c.endpoint != "" }

// protocol is the OTLP protocol the spans go over.
func (c tracingConfig) protocol() string {
	if c.grpc {
		return "grpc"
	}
	return "http/protobuf"
}

// start makes the tracer provider that exports the shop's spans, in
// batches, to the endpoint, and the function that shuts it down, sending
// the last spans: call it after the server and the checkout have stopped.
// Tracing off, the provider is nil and the function does nothing. The
// exporter connects when it first exports: the collector may start after
// the shop, and spans are dropped, with a warning, while it cannot be
// reached. It reads the rest of its settings (OTEL_EXPORTER_OTLP_HEADERS,
// _TIMEOUT, _COMPRESSION, _CERTIFICATE) and the SDK its sampler and
// batching (OTEL_TRACES_SAMPLER, OTEL_BSP_*) from the process's
// environment.
//
// It sets the one global the OpenTelemetry API has no way around: the
// error handler, which the SDK reports failed exports to, so that they are
// logged through the shop's logger (as JSON with -log-format json) rather
// than printed by the API's default logger. Nothing else is global: the
// provider is passed down to web and checkout.
func (c tracingConfig) start(ctx context.Context, logger *slog.Logger) (trace.TracerProvider, func(), error) {
	if !c.on() {
		return nil, func() {}, nil
	}
	var exporter sdktrace.SpanExporter
	var err error
	if c.grpc {
		exporter, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(c.endpoint))
	} else {
		exporter, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(c.endpoint))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("the OTLP trace exporter: %w", err)
	}
	// Later options win: the variables over the shop's defaults, and
	// OTEL_SERVICE_NAME as this process was given it over all.
	options := []resource.Option{
		resource.WithAttributes(semconv.ServiceName(defaultServiceName), semconv.ServiceVersion(checkout.ApplicationVersion)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(),
	}
	if c.serviceName != "" {
		options = append(options, resource.WithAttributes(semconv.ServiceName(c.serviceName)))
	}
	res, err := resource.New(ctx, options...)
	if err != nil {
		return nil, nil, fmt.Errorf("the traces' resource (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	// Logged without a password the URL may hold (parseTracing parsed it).
	endpoint, _ := url.Parse(c.endpoint)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("exporting traces", slog.String("endpoint", endpoint.Redacted()), slog.Any("error", err))
	}))
	logger.Info("tracing", "endpoint", endpoint.Redacted(), "protocol", c.protocol(),
		"service", cmp.Or(c.serviceName, defaultServiceName))
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	flush := func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracesFlushTimeout)
		defer cancel()
		if err := provider.Shutdown(ctx); err != nil {
			logger.Warn("flushing the last traces", slog.Any("error", err))
		}
	}
	return provider, flush, nil
}

// traceLogs is a logger that adds to each line logged with a context
// (logger.InfoContext and the like) the ids of the trace and span in it,
// so that a request's lines are found from its trace and back.
func traceLogs(logger *slog.Logger) *slog.Logger { return slog.New(traceHandler{logger.Handler()}) }

// traceHandler is traceLogs's handler.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if span := trace.SpanContextFromContext(ctx); span.IsValid() {
		r.AddAttrs(slog.String("trace_id", span.TraceID().String()), slog.String("span_id", span.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
