package app_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// BenchmarkApplyOrders applies batches of paid orders (256, or -batch) from 5,000
// customers, as the consumer does; orders/s is the figure to read.
func BenchmarkApplyOrders(b *testing.B) {
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			c := testkit.NewClock(t0)
			st, p := openStore(b, be.URL(b), c), mustProgramme(b)
			ctx := context.Background()
			batch := *benchBatch
			n := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				evs := make([]*ordersv1.OrderEvent, batch)
				for j := range evs {
					n++
					evs[j] = paidEvent(fmt.Sprint("e", n), fmt.Sprint("c", n%5000), fmt.Sprint("o", n), 42_50, t0.Add(time.Duration(n)*time.Second))
					evs[j].OrderSequence = 1 // as order-ingest numbers them
				}
				if _, err := st.ApplyOrders(ctx, p, inputs(evs...), nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "orders/s")
		})
	}
}

// BenchmarkAccount reads accounts of customers with ten orders each; it
// reports the median and the 99th percentile.
func BenchmarkAccount(b *testing.B) {
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			c := testkit.NewClock(t0)
			st, p := openStore(b, be.URL(b), c), mustProgramme(b)
			ctx := context.Background()
			const customers = 2000
			var evs []*ordersv1.OrderEvent
			for n := 0; n < customers*10; n++ {
				evs = append(evs, paidEvent(fmt.Sprint("e", n), fmt.Sprint("c", n%customers), fmt.Sprint("o", n), 42_50, t0))
				if len(evs) == 500 {
					if _, err := st.ApplyOrders(ctx, p, inputs(evs...), nil); err != nil {
						b.Fatal(err)
					}
					evs = evs[:0]
				}
			}
			c.Add(time.Hour)
			testkit.TimeCalls(b, func(i int) error {
				_, err := st.Account(ctx, p, fmt.Sprint("c", i%customers), 30*24*time.Hour)
				return err
			})
		})
	}
}

// benchBatch is the batch size of BenchmarkApplyOrders (LEDGER_BATCH_SIZE
// of the consumer): go test -bench ApplyOrders -args -batch 1024.
var benchBatch = flag.Int("batch", 256, "orders per transaction in BenchmarkApplyOrders")
