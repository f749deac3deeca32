package checkout_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// reportPercentiles reports the p50 and p99 of the timed operations.
func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkPaymentRoundTrip times the payment webhook's work: from the
// payment's report to the order settled and the checkout told (webhook in,
// order id out), on each engine.
func BenchmarkPaymentRoundTrip(b *testing.B) {
	for _, engine := range dbtest.Engines {
		b.Run(engine, func(b *testing.B) {
			f := setup(b, dbtest.NewDatabase(b, engine), checkout.Config{PaymentTimeout: time.Minute, DispatchSteps: 1, DispatchInterval: 0})
			ctx := context.Background()
			var took []time.Duration
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				if i%50 == 0 {
					if _, err := f.db.Restock(ctx, 1000); err != nil {
						b.Fatal(err)
					}
				}
				paymentID, err := f.co.Start(ctx, fmt.Sprintf("bench-%d", i), checkout.Request{ProductID: 1, Quantity: 1})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				if _, err := f.co.Pay(ctx, paymentID, shop.PaymentPaid); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			reportPercentiles(b, took)
		})
	}
}

// BenchmarkWakeup compares the two ways DBOS can hand a waiting workflow a
// message: dbos.Send to a Recv, as the webhook wakes the checkout now, and
// the SetEvent of another workflow awaited with GetEvent, as a payment
// workflow woke it before. It times from the message to the waiter's
// reply, the waiter already waiting. Nothing waits for the checkout's
// wake-up any more (the webhook settles the order itself), so Recv's
// one-second poll on SQLite costs no purchase any time.
func BenchmarkWakeup(b *testing.B) {
	for _, engine := range dbtest.Engines {
		b.Run(engine, func(b *testing.B) {
			ctx := context.Background()
			db, err := store.Open(ctx, dbtest.NewDatabase(b, engine))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			dbosCtx, err := dbos.NewContext(ctx, dbos.Config{
				AppName: "wakeup-bench", ApplicationVersion: "1", Logger: dbtest.Logger(b),
				SQLiteSystemDB: db.SQLite, SystemDBPool: db.Postgres,
			})
			if err != nil {
				b.Fatal(err)
			}
			recvWaiter := func(ctx dbos.Context, _ string) (string, error) {
				msg, err := dbos.Recv[string](ctx, "msg", time.Minute)
				if err != nil {
					return "", err
				}
				return msg, dbos.SetEvent(ctx, "reply", msg)
			}
			eventWaiter := func(ctx dbos.Context, source string) (string, error) {
				msg, err := dbos.GetEvent[string](ctx, source, "msg", time.Minute)
				if err != nil {
					return "", err
				}
				return msg, dbos.SetEvent(ctx, "reply", msg)
			}
			eventSource := func(ctx dbos.Context, msg string) (string, error) {
				return msg, dbos.SetEvent(ctx, "msg", msg)
			}
			dbos.RegisterWorkflow(dbosCtx, recvWaiter, dbos.WithWorkflowName("recvWaiter"))
			dbos.RegisterWorkflow(dbosCtx, eventWaiter, dbos.WithWorkflowName("eventWaiter"))
			dbos.RegisterWorkflow(dbosCtx, eventSource, dbos.WithWorkflowName("eventSource"))
			if err := dbos.Launch(dbosCtx); err != nil {
				b.Fatal(err)
			}
			defer dbos.Shutdown(dbosCtx, 10*time.Second)

			ways := []struct {
				name   string
				waiter dbos.Workflow[string, string]
				send   func(waiterID, msg string) error
			}{
				{"send-recv", recvWaiter, func(waiterID, msg string) error {
					return dbos.Send(dbosCtx, waiterID, msg, "msg", dbos.WithIdempotencyKey(msg))
				}},
				{"set-get-event", eventWaiter, func(waiterID, msg string) error {
					_, err := dbos.RunWorkflow(dbosCtx, eventSource, msg, dbos.WithWorkflowID("source-"+waiterID))
					return err
				}},
			}
			for _, way := range ways {
				b.Run(way.name, func(b *testing.B) {
					var took []time.Duration
					for i := 0; b.Loop(); i++ {
						b.StopTimer()
						waiterID := fmt.Sprintf("%s-%d", way.name, i)
						if _, err := dbos.RunWorkflow(dbosCtx, way.waiter, "source-"+waiterID, dbos.WithWorkflowID(waiterID)); err != nil {
							b.Fatal(err)
						}
						time.Sleep(20 * time.Millisecond) // let it start waiting
						b.StartTimer()
						start := time.Now()
						if err := way.send(waiterID, "m-"+waiterID); err != nil {
							b.Fatal(err)
						}
						if _, err := dbos.GetEvent[string](dbosCtx, waiterID, "reply", time.Minute); err != nil {
							b.Fatal(err)
						}
						took = append(took, time.Since(start))
					}
					reportPercentiles(b, took)
				})
			}
		})
	}
}
