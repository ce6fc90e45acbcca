package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// BenchmarkIntake records survey responses in batches of 256 (the
// consumer's FEEDBACK_BATCH_SIZE) from 5,000 customers whose profiles
// segmentation gave, with the rollup, and a recovery case with its outbox
// event for each NPS detractor (about one response in five); responses/s is
// the figure to read.
func BenchmarkIntake(b *testing.B) {
	const batch = 256
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			c := testkit.NewClock(t0)
			st := openStore(b, be.URL(b), c)
			ctx := context.Background()
			n := 0
			for b.Loop() {
				in := make([]feedback.Input, batch)
				profiles := map[string]feedback.Profile{}
				for j := range in {
					n++
					cust := fmt.Sprint("cus_", n%5000)
					profiles[cust] = feedback.Profile{Segment: n % 12, CLV: int64(n % 997), Currency: "EUR"}
					k := feedback.Kind(1 + n%3)
					lo, hi, _ := k.Range()
					in[j] = survey(fmt.Sprint("r", n), cust, k, lo+n%(hi-lo+1), t0.Add(time.Duration(n)*time.Second))
				}
				if _, err := st.app.RecordWith(ctx, in, profiles, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "responses/s")
		})
	}
}
