package grpcapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/redisx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/grpcapi"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/hot"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// BenchmarkGetProfile measures GetProfile over a loopback gRPC connection
// against 100,000 profiles in the hot store, one call at a time, and
// reports the latency percentiles of the calls.
func BenchmarkGetProfile(b *testing.B) {
	for _, be := range []struct {
		name string
		open func(tb testing.TB) hot.Store
	}{
		{"memory", func(testing.TB) hot.Store { return hot.NewMemory() }},
		{"redis", func(tb testing.TB) hot.Store {
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
			h := be.open(b)
			const customers = 100_000
			ps := make([]segment.Profile, customers)
			for i := range ps {
				ps[i] = segment.Profile{CustomerID: fmt.Sprintf("cus_%06d", i), Currency: "EUR", Orders: int64(1 + i%7),
					TotalValue: int64(1000 * (1 + i%97)), FirstOrderAt: now.AddDate(0, 0, -i%700), LastOrderAt: now.AddDate(0, 0, -i%30),
					Channels: []string{"web", "app"}, RFM: segment.RFM{R: 1 + i%5, F: 1 + i%3, M: 1 + i%5}, Segment: segment.Segments[i%11],
					Flags: segment.Flags(i % 32), Prediction: &segment.Prediction{ExpectedPurchases: 1.7, HorizonDays: 365, PAlive: 0.8,
						ExpectedOrderValue: 4200, CLV: int64(i)}}
			}
			if err := h.Replace(ctx, ps, hot.Summary{}); err != nil {
				b.Fatal(err)
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "seg.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			st, err := store.Open(ctx, db, log)
			if err != nil {
				b.Fatal(err)
			}
			a, err := app.New(ctx, st, h, app.Options{}, log)
			if err != nil {
				b.Fatal(err)
			}
			g := grpc.NewServer()
			segmentationv1.RegisterSegmentationServiceServer(g, grpcapi.New(a, "EUR", log))
			cc, err := grpc.NewClient(testkit.GRPC(b, g), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			client := segmentationv1.NewSegmentationServiceClient(cc)
			testkit.TimeCalls(b, func(i int) error {
				resp, err := client.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: fmt.Sprintf("cus_%06d", (i*7919)%customers)})
				if err == nil && resp.GetFeatures().GetOrders() == 0 {
					err = fmt.Errorf("no orders: %v", resp)
				}
				return err
			})
		})
	}
}
