package grpcapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/grpcapi"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const benchResponses = 1_000_000

var benchStart = time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)

// fill writes benchResponses survey responses straight into the table in
// one INSERT … SELECT, so the set-up takes seconds, not the minutes a
// million intake calls would: a recursive counter makes the rows (kinds in
// turn, scores spread over each kind's range, 50,000 customers in 12
// segments, times spread over 90 days). The rollups are then rebuilt from
// them (RebuildRollups), as intake would have kept them.
func fill(tb testing.TB, db *sqldb.DB) {
	tb.Helper()
	ctx := context.Background()
	start := benchStart.UnixMilli()
	q := fmt.Sprintf(`INSERT INTO responses (response_id, customer_id, kind, score, channel, comment, order_id, ticket_id,
			responded_at, segment, segment_pending, recorded_at)
		WITH RECURSIVE n(i) AS (SELECT CAST(0 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < %d)
		SELECT 'r' || i, 'cus_' || (i %% 50000), 1 + i %% 3,
			CASE i %% 3 WHEN 0 THEN (i * 7) %% 11 WHEN 1 THEN 1 + (i * 13) %% 5 ELSE 1 + (i * 17) %% 7 END,
			'email', '', '', '', %d + ((i * 104729) %% 7776000) * 1000, (i %% 50000) %% 12, 0, %d
		FROM n`, benchResponses-1, start, start)
	if _, err := db.W.ExecContext(ctx, q); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkGetScores calls GetScores over a loopback gRPC connection on a
// million stored responses, with UTC, Europe/Berlin and America/New_York as
// reporting zones (FEEDBACK_SCORE_TIME_ZONES): 90 days by day and by
// segment in Berlin (1,080 rows), a year by month in New York, both from
// the day rollup; and 90 days by week in Asia/Kolkata, not a reporting
// zone, summed from quarter hours. It reports the latency percentiles.
func BenchmarkGetScores(b *testing.B) {
	for _, be := range testkit.Databases("feedback.db") {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			db, err := sqldb.Open(ctx, be.URL(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			st, err := store.Open(ctx, db, store.Options{Encode: bus.Encode, Log: log,
				ScoreZones: []string{"UTC", "Europe/Berlin", "America/New_York"}})
			if err != nil {
				b.Fatal(err)
			}
			t := time.Now()
			fill(b, db)
			filled := time.Since(t)
			if _, err := st.RebuildRollups(ctx); err != nil {
				b.Fatal(err)
			}
			if db.Dialect == sqldb.Postgres {
				if _, err := db.W.ExecContext(ctx, "ANALYZE"); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("%s: %d responses stored in %v, rollups rebuilt in %v", be.Name, benchResponses,
				filled.Round(time.Millisecond), (time.Since(t) - filled).Round(time.Millisecond))
			g := grpc.NewServer()
			feedbackv1.RegisterFeedbackServiceServer(g, grpcapi.New(app.New(st, nil, app.Options{}, log), func() {}, log, time.Now))
			cc, err := grpc.NewClient(testkit.GRPC(b, g), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { cc.Close() })
			client := feedbackv1.NewFeedbackServiceClient(cc)
			for _, q := range []struct {
				name string
				req  *feedbackv1.GetScoresRequest
			}{
				{"90d-day-by-segment", &feedbackv1.GetScoresRequest{Granularity: feedbackv1.Granularity_GRANULARITY_DAY, TimeZone: "Europe/Berlin",
					From: timestamppb.New(benchStart), To: timestamppb.New(benchStart.AddDate(0, 0, 90)), BySegment: true}},
				{"90d-week-kolkata", &feedbackv1.GetScoresRequest{Granularity: feedbackv1.Granularity_GRANULARITY_WEEK, TimeZone: "Asia/Kolkata",
					From: timestamppb.New(benchStart), To: timestamppb.New(benchStart.AddDate(0, 0, 90))}},
				{"1y-month", &feedbackv1.GetScoresRequest{Granularity: feedbackv1.Granularity_GRANULARITY_MONTH, TimeZone: "America/New_York",
					From: timestamppb.New(benchStart.AddDate(0, -6, 0)), To: timestamppb.New(benchStart.AddDate(0, 6, 0))}},
			} {
				b.Run(q.name, func(b *testing.B) {
					var lat []time.Duration
					var n int64
					for b.Loop() {
						t := time.Now()
						resp, err := client.GetScores(ctx, q.req)
						if err != nil {
							b.Fatal(err)
						}
						lat = append(lat, time.Since(t))
						n = 0
						for _, r := range resp.GetRows() {
							n += r.GetNpsResponses() + r.GetCsatResponses() + r.GetCesResponses()
						}
					}
					if n != benchResponses {
						b.Fatalf("the scores count %d responses, want %d", n, benchResponses)
					}
					testkit.ReportLatencies(b, lat)
				})
			}
		})
	}
}
