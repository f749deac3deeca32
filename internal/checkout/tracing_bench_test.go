package checkout_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/checkout/checkouttest"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
)

// BenchmarkTracing times a purchase's start and payment (Start, which
// runs placeOrder, then Pay) with tracing off, as the shop runs with no
// OTEL_* endpoint set, and on: every step in a span, batched and exported
// over OTLP/HTTP to a collector on loopback that reads and drops them. The
// checkouts' later steps (the wake-up, the dispatch, their spans) run
// beside, as in the shop. Run it with -count 3 or more: the two ways then
// take turns, and their ratio means something on a busy machine.
func BenchmarkTracing(b *testing.B) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		answer, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(answer)
	}))
	defer collector.Close()
	for _, engine := range dbtest.Engines {
		for _, tracing := range []string{"off", "on"} {
			b.Run(engine+"/"+tracing, func(b *testing.B) {
				cfg := checkout.LaunchConfig{Checkout: checkout.Config{PaymentTimeout: time.Minute, DispatchSteps: 1, DispatchInterval: 0},
					ExecutorID: "test", Logger: dbtest.Logger(b)}
				if tracing == "on" {
					exporter, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(collector.URL+"/v1/traces"))
					if err != nil {
						b.Fatal(err)
					}
					provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter))
					// Registered before the launch: cleanups run last first,
					// so DBOS is shut down before the provider.
					b.Cleanup(func() { provider.Shutdown(context.Background()) })
					cfg.Tracer = provider
				}
				db, co := checkouttest.LaunchWith(b, dbtest.NewDatabase(b, engine), cfg)
				ctx := context.Background()
				var took []time.Duration
				for i := 0; b.Loop(); i++ {
					if i%50 == 0 {
						b.StopTimer()
						if _, err := db.Restock(ctx, 1000); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					start := time.Now()
					paymentID, err := co.Start(ctx, fmt.Sprintf("bench-%d", i), checkout.Request{ProductID: 1, Quantity: 1})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := co.Pay(ctx, paymentID, shop.PaymentPaid); err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(start))
				}
				reportPercentiles(b, took)
			})
		}
	}
}
