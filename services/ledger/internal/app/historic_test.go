package app_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// TestHistoricOrdersThroughTheStore: on both databases, historic orders
// of a customer already in the top tier earn at the tier of their time
// (the spend of their window is loaded though the account cannot rise),
// their expired lots are written off at once, dated at their expiry, no
// first-order bonus is given, and QuoteOrder agrees with what an order
// earns whether it occurred now or long ago.
func TestHistoricOrdersThroughTheStore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			c := testkit.NewClock(t0)
			st, p := openStore(t, b.URL(t), c), mustProgramme(t) // Bronze, Silver from 500.00 at ×2; expiry 100 days
			ctx := context.Background()
			historic := func(id, order string, total int64, at time.Time) *ordersv1.OrderEvent {
				ev := paidEvent(id, "c", order, total, at)
				ev.IngestedAt = timestamppb.New(t0.Add(-time.Hour))
				return ev
			}
			live := paidEvent("l1", "c", "L1", 600_00, t0.Add(-2*time.Hour))
			live.IngestedAt = live.GetOccurredAt()
			steps := []*ordersv1.OrderEvent{
				live, // 600 + 10 first order; Silver at once
				historic("h1", "H1", 600_00, time.Date(2019, 4, 1, 12, 0, 0, 0, time.UTC)), // nothing in its window: 600 at Bronze
				historic("h2", "H2", 100_00, time.Date(2019, 5, 1, 12, 0, 0, 0, time.UTC)), // H1 in its window: Silver, 200
			}
			for _, ev := range steps {
				if _, err := st.ApplyOrders(ctx, p, inputs(ev), nil); err != nil {
					t.Fatal(err)
				}
			}
			es, _, err := st.Entries(ctx, "c", 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			// Newest first; the 2019 lots expired 100 days after their
			// orders: 10 July and 9 August 2019.
			want := []struct {
				id     string
				points int64
				at     time.Time
			}{
				{"expiry:h2:base", -200, time.Date(2019, 8, 9, 12, 0, 0, 0, time.UTC)},
				{"h2:base", 200, time.Date(2019, 5, 1, 12, 0, 0, 0, time.UTC)},
				{"expiry:h1:base", -600, time.Date(2019, 7, 10, 12, 0, 0, 0, time.UTC)},
				{"h1:base", 600, time.Date(2019, 4, 1, 12, 0, 0, 0, time.UTC)},
				{"l1:first_order", 10, t0.Add(-2 * time.Hour)},
				{"l1:base", 600, t0.Add(-2 * time.Hour)},
			}
			if len(es) != len(want) {
				t.Fatalf("%d entries, want %d: %+v", len(es), len(want), es)
			}
			for i, w := range want {
				if e := es[i]; e.ID != w.id || e.Points != w.points || !e.OccurredAt.Equal(w.at) {
					t.Errorf("entry %d: %s %+d at %s, want %s %+d at %s", i, e.ID, e.Points, e.OccurredAt, w.id, w.points, w.at)
				}
			}
			if got := balance(t, st, p, "c"); got != 610 {
				t.Errorf("balance %d, want L1's 610", got)
			}

			quote := func(customer string, at time.Time) int64 {
				t.Helper()
				f := ledger.FactsOf(paidEvent("q", customer, "Q", 100_00, at))
				awards, err := st.QuoteOrder(ctx, p, customer, f)
				if err != nil {
					t.Fatal(err)
				}
				var n int64
				for _, a := range awards {
					n += a.Points
				}
				return n
			}
			quotes := []struct {
				name     string
				customer string
				at       time.Time
				want     int64
			}{
				{"live, Silver, not the first order", "c", t0, 200},
				{"historic, Silver by the spend of 2019", "c", time.Date(2019, 5, 2, 0, 0, 0, 0, time.UTC), 200},
				{"historic, nothing in its window", "c", time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), 100},
				{"a new customer's live first order", "n", t0, 110},
				{"a new customer's historic first order", "n", time.Date(2019, 5, 2, 0, 0, 0, 0, time.UTC), 100},
			}
			for _, q := range quotes {
				if got := quote(q.customer, q.at); got != q.want {
					t.Errorf("quote of %s: %d, want %d", q.name, got, q.want)
				}
			}
			// What the quotes said is what the orders earn.
			h3 := historic("h3", "H3", 100_00, time.Date(2019, 5, 2, 0, 0, 0, 0, time.UTC))
			l2 := paidEvent("l2", "c", "L2", 100_00, t0)
			l2.IngestedAt = l2.GetOccurredAt()
			if _, err := st.ApplyOrders(ctx, p, inputs(h3, l2), nil); err != nil {
				t.Fatal(err)
			}
			es, _, err = st.Entries(ctx, "c", 0, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 3 || es[0].ID != "l2:base" || es[0].Points != 200 || es[2].ID != "h3:base" || es[2].Points != 200 {
				t.Errorf("newest entries %+v, want h3:base 200, its expiry, l2:base 200", es)
			}

			// Sweeps now and years later change only what expires.
			for _, at := range []time.Time{t0, t0.AddDate(5, 0, 0)} {
				if _, err := st.Sweep(ctx, p, at, 10); err != nil {
					t.Fatal(err)
				}
			}
			c.Set(t0.AddDate(5, 0, 0))
			if got := balance(t, st, p, "c"); got != 0 {
				t.Errorf("balance five years on %d, want 0", got)
			}
			verify(t, st)
		})
	}
}
