package app_test

import (
	"context"
	"math/rand/v2"
	"testing"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/ordergate/ordertest"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// The ledger's balances do not depend on the order order-ingest accepted a
// shop's events in (which numbers them), nor on the order JetStream
// delivers the numbered events in, with redeliveries: they equal the
// figures worked out from the shop's histories alone. The programme earns
// one point per unit per order, so that no figure depends on how the
// orders of one customer interleave (tiers and first-order bonuses follow
// the order the ledger applies orders in).
func TestOrderEventsInAnyOrder(t *testing.T) {
	p, err := ledger.ParseProgramme([]byte("base_currency: EUR\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			rounds := 25
			if b.Name != "sqlite" {
				if testing.Short() {
					t.Skip("short")
				}
				rounds = 4
			}
			rng := rand.New(rand.NewPCG(10, 4))
			ctx := context.Background()
			for round := 0; round < rounds; round++ {
				orders := ordertest.Generate(rng, 4, 4, t0)
				var inOrder, reordered []*ordersv1.OrderEvent
				for _, o := range orders {
					inOrder = append(inOrder, ordertest.Canonical(o, ordertest.Accept(o, o.InOrder()))...)
					reordered = append(reordered, ordertest.Canonical(o, ordertest.Accept(o, o.Shuffled(rng)))...)
				}
				want := expectedBalances(orders)

				ref := openStore(t, b.URL(t), testkit.NewClock(t0))
				if _, err := ref.ApplyOrders(ctx, p, inputs(inOrder...), nil); err != nil {
					t.Fatal(err)
				}
				st := openStore(t, b.URL(t), testkit.NewClock(t0))
				deliver(t, st, p, rng, reordered)
				for c, w := range want {
					if got := balance(t, ref, p, c); got != w {
						t.Errorf("round %d: %s in order: balance %d, want %d", round, c, got, w)
					}
					if got := balance(t, st, p, c); got != w {
						t.Errorf("round %d: %s reordered: balance %d, want %d", round, c, got, w)
						for _, o := range orders {
							if o.Customer == c {
								t.Logf("order %s total %d test %v: %+v", o.OrderID, o.Total, o.Test, o.Steps)
							}
						}
					}
				}
				verify(t, ref)
				verify(t, st)
				if t.Failed() {
					return
				}
			}
		})
	}
}

// deliver applies events as a consumer would see them: shuffled, some
// twice, in batches; what ApplyOrders puts off comes back later.
func deliver(tb testing.TB, st *rig, p *ledger.Programme, rng *rand.Rand, evs []*ordersv1.OrderEvent) {
	tb.Helper()
	batches := ordertest.Deliveries(rng, evs, 4, 12)
	for round := 0; len(batches) > 0; round++ {
		if round > 10*len(evs)+100 {
			tb.Fatalf("events still put off after %d batches", round)
		}
		b := batches[0]
		batches = batches[1:]
		out, err := st.ApplyOrders(context.Background(), p, inputs(b...), nil)
		if err != nil {
			tb.Fatal(err)
		}
		var later []*ordersv1.OrderEvent
		for i, o := range out {
			if o == ledger.Later {
				later = append(later, b[i])
			}
		}
		if len(later) > 0 {
			batches = append(batches, later)
		}
	}
}

// expectedBalances works the balances out from the histories: a paid order
// that is neither a test nor cancelled earns a point per unit, less the
// refunded share rounded down (everything when refunded in full).
func expectedBalances(orders []ordertest.Order) map[string]int64 {
	want := map[string]int64{}
	for _, o := range orders {
		if _, ok := want[o.Customer]; !ok && o.Has(ordertest.Paid) {
			want[o.Customer] = 0
		}
		if !o.Has(ordertest.Paid) || o.Test || o.Has(ordertest.Cancelled) {
			continue
		}
		points := o.Total / 100
		refunded, _ := o.RefundedTotal()
		if refunded >= o.Total {
			continue
		}
		want[o.Customer] += points - points*refunded/o.Total
	}
	return want
}
