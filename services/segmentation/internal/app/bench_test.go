package app_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/redisx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/hot"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// BenchmarkApply measures feature updates: batches of 512 paid orders over
// 100,000 customers, each batch one transaction that also rescores and
// values (with a fitted model) the customers and writes the hot store. It
// reports events applied per second.
func BenchmarkApply(b *testing.B) {
	for _, be := range []struct {
		name string
		db   func(tb testing.TB) string
		hot  func(tb testing.TB) hot.Store
	}{
		{"sqlite+memory", func(tb testing.TB) string { return "sqlite:" + filepath.Join(tb.TempDir(), "seg.db") },
			func(testing.TB) hot.Store { return hot.NewMemory() }},
		{"postgres+redis", testkit.Postgres, func(tb testing.TB) hot.Store {
			c, err := redisx.Open(context.Background(), testkit.Redis(tb))
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { c.Close() })
			return hot.NewRedis(c, "bench:")
		}},
	} {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			db, err := sqldb.Open(ctx, be.db(b))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			st, err := store.Open(ctx, db, quiet())
			if err != nil {
				b.Fatal(err)
			}
			now := start.AddDate(0, 0, 200)
			sc, err := app.New(ctx, st, be.hot(b), app.Options{Rules: segment.DefaultFlagRules, Now: func() time.Time { return now }}, quiet())
			if err != nil {
				b.Fatal(err)
			}
			// A fitted model, as in production: every rescored customer is
			// valued too.
			seed := simulate(2000, 200, 5)
			for i := 0; i < len(seed); i += 500 {
				if _, _, err := sc.ApplyOrders(ctx, seed[i:min(i+500, len(seed))], nil, time.Time{}, false); err != nil {
					b.Fatal(err)
				}
			}
			if res, err := sc.Refit(ctx); err != nil || res.Model == nil {
				b.Fatalf("no model to benchmark with: %+v, %v", res, err)
			}
			const batch = 512
			n := 0
			next := func() []segment.Event {
				evs := make([]segment.Event, batch)
				for i := range evs {
					n++
					evs[i] = segment.Event{ID: fmt.Sprintf("ev-%d", n), Kind: segment.Paid, CustomerID: fmt.Sprintf("cust-%06d", (n*7919)%100000),
						Source: "shop", OrderID: fmt.Sprintf("o-%d", n), Channel: "web", OccurredAt: start.Add(time.Duration(n) * time.Minute),
						BaseTotal: int64(1000 + n%5000), Currency: "EUR", Discounted: n%3 == 0, Seq: int32(*benchSeq)}
				}
				return evs
			}
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				evs := next()
				b.StartTimer()
				if _, _, err := sc.ApplyOrders(ctx, evs, nil, time.Time{}, false); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// benchSeq numbers BenchmarkApply's events as order-ingest does (the
// first event of an order, paid without a placed event, is 1): the store
// recognises a redelivery by the order's last sequence. -seq 0 sends them
// unnumbered, recognised by event id (seg_processed), as before events
// were numbered: go test -bench Apply -args -seq 0.
var benchSeq = flag.Int("seq", 1, "order_sequence of BenchmarkApply's events (0: unnumbered)")

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
