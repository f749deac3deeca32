package receipt_test

import (
	"context"
	"testing"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/dbtest"
	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/receipt/smtptest"
	"github.com/widgetstore/widgetstore/internal/store"
)

// BenchmarkEnqueueAndDeliver times one receipt from its Enqueue, in a
// transaction of its own, to its mark after the loopback SMTP server's 250:
// what a stage's receipt adds to an order, the mail server aside.
func BenchmarkEnqueueAndDeliver(b *testing.B) {
	for _, engine := range dbtest.Engines {
		b.Run(engine, func(b *testing.B) {
			ctx := context.Background()
			db, err := store.Open(ctx, dbtest.NewDatabase(b, engine))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if err := db.Migrate(ctx, dbtest.Logger(b)); err != nil {
				b.Fatal(err)
			}
			server := smtptest.Start(b, smtptest.Options{})
			config, err := receipt.ParseSMTPURL(server.URL("shop@example.com"))
			if err != nil {
				b.Fatal(err)
			}
			sender := receipt.SMTP{Config: config}
			r := paidReceipt()
			b.ResetTimer()
			for i := range b.N {
				r.OrderID = int64(i + 1)
				if err := db.InTx(ctx, func(tx dbos.Tx) error {
					_, err := receipt.Enqueue(ctx, tx, r)
					return err
				}); err != nil {
					b.Fatal(err)
				}
				if sent, err := receipt.Deliver(ctx, db.Q(), sender, r.OrderID, r.Stage); err != nil || !sent {
					b.Fatalf("Deliver = %v, %v", sent, err)
				}
			}
			b.StopTimer()
			if n := len(server.Messages()); n != b.N {
				b.Fatalf("the server got %d messages for %d receipts", n, b.N)
			}
		})
	}
}
