package store

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"testing"
	"testing/fstest"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// TestUpgradeKeepsData migrates a database written by the first schema
// (features and scores in two tables) to the current one: every customer,
// score, order, applied event and agony state survives.
func TestUpgradeKeepsData(t *testing.T) {
	for _, be := range testkit.Databases("segmentation.db") {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqldb.Open(ctx, be.URL(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			first := fstest.MapFS{}
			for _, name := range []string{"00001_segmentation.sql", "00002_agony.sql"} {
				b, err := fs.ReadFile(migrations, "migrations/"+name)
				if err != nil {
					t.Fatal(err)
				}
				first[name] = &fstest.MapFile{Data: b}
			}
			if err := sqldb.Migrate(ctx, db, "segmentation", first, log); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
			days := encodeDays([]segment.Day{{Day: segment.DayNumber(at), Orders: 1, Value: 5000, First: at.UnixMicro(), Last: at.UnixMicro()}})
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO seg_features (customer_id, currency, orders, total_value, discounted_orders, refunds, refunded_value, channels, days, agony, updated_at)
					VALUES ($1, 'EUR', 1, 5000, 0, 0, 0, '{"web":1}', $2, 1, 0), ($3, 'EUR', 0, 0, 0, 0, 0, '{}', $4, 0, 0)`, []any{"alice", days, "bob", []byte{}}},
				{`INSERT INTO seg_scores (customer_id, r, f, m, segment, flags, predicted, expected_purchases, horizon_days, p_alive, order_value, clv, scored_at)
					VALUES ($1, 5, 1, 3, $2, 2, 1, 1.25, 365, 0.875, 4200, 9000, $3)`, []any{"alice", int(segment.New), at.UnixMicro()}},
				{`INSERT INTO seg_orders (source, order_id, customer_id, status, paid_at, value, refunded, discounted, channel)
					VALUES ('shop', 'o1', 'alice', 1, $1, 5000, 0, 0, 'web')`, []any{at.UnixMicro()}},
				{`INSERT INTO seg_processed (event_id, processed_at) VALUES ('e1', 0)`, nil},
				{`INSERT INTO seg_agony (customer_id, agony, as_of, event_id, updated_at) VALUES ('alice', 1, 0, 'a1', 0)`, nil},
			} {
				if _, err := db.W.ExecContext(ctx, q.sql, q.args...); err != nil {
					t.Fatal(err)
				}
			}
			st, err := Open(ctx, db, log)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := st.Customers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 2 {
				t.Fatalf("%d customers, want 2", len(cs))
			}
			a, b := cs[0], cs[1]
			want := segment.Score{CustomerID: "alice", RFM: segment.RFM{R: 5, F: 1, M: 3}, Segment: segment.New, Flags: 2, ScoredAt: at,
				Prediction: &segment.Prediction{ExpectedPurchases: 1.25, HorizonDays: 365, PAlive: 0.875, ExpectedOrderValue: 4200, CLV: 9000}}
			if a.Score == nil || a.Score.Prediction == nil || *a.Score.Prediction != *want.Prediction || a.Score.RFM != want.RFM ||
				a.Score.Segment != want.Segment || a.Score.Flags != want.Flags || !a.Score.ScoredAt.Equal(at) {
				t.Errorf("alice's score %+v, want %+v", a.Score, want)
			}
			if !a.Agony || a.Features.Orders != 1 || a.Features.TotalValue != 5000 || len(a.Features.Days) != 1 || a.Features.Channels["web"] != 1 {
				t.Errorf("alice %+v, agony %v", a.Features, a.Agony)
			}
			if b.Features.CustomerID != "bob" || b.Score != nil {
				t.Errorf("bob %+v, score %+v", b.Features, b.Score)
			}
			// The applied event is still known, and the order still there
			// for a refund to find.
			rescore := func(items []Rescore) ([]segment.Score, []outbox.Message) {
				out := make([]segment.Score, len(items))
				for i, it := range items {
					out[i] = segment.Score{CustomerID: it.Features.CustomerID, ScoredAt: at}
				}
				return out, nil
			}
			_, applied, err := ApplyWith(ctx, st, Batch{Now: at, Events: []segment.Event{
				{ID: "e1", Kind: segment.Paid, CustomerID: "alice", Source: "shop", OrderID: "o1", OccurredAt: at, BaseTotal: 5000, Currency: "EUR"},
				{ID: "e2", Kind: segment.Refunded, CustomerID: "alice", Source: "shop", OrderID: "o1", RefundedTotal: 1000},
			}}, rescore)
			if err != nil || applied != 1 {
				t.Fatalf("applied %d, %v; want 1", applied, err)
			}
			cs, _ = st.Customers(ctx)
			if f := cs[0].Features; f.Orders != 1 || f.TotalValue != 4000 || f.RefundedValue != 1000 {
				t.Errorf("alice after the refund %+v", f)
			}
		})
	}
}
