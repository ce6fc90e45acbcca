package store_test

import (
	"context"
	"math/rand/v2"
	"reflect"
	"testing"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/ordergate/ordertest"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// Customer features do not depend on the order order-ingest accepted a
// shop's events in (which numbers them), nor on the order JetStream
// delivers them in, with redeliveries: they equal the features of the
// in-order delivery and the figures worked out from the histories alone.
func TestOrderEventsInAnyOrder(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			rounds := 25
			if b.Name != "sqlite" {
				if testing.Short() {
					t.Skip("short")
				}
				rounds = 4
			}
			rng := rand.New(rand.NewPCG(7, 3))
			for round := 0; round < rounds; round++ {
				orders := ordertest.Generate(rng, 4, 4, t0)
				var inOrder, reordered []*ordersv1.OrderEvent
				for _, o := range orders {
					inOrder = append(inOrder, ordertest.Canonical(o, ordertest.Accept(o, o.InOrder()))...)
					reordered = append(reordered, ordertest.Canonical(o, ordertest.Accept(o, o.Shuffled(rng)))...)
				}
				ref := openStore(t, b.URL(t))
				applyAll(t, ref, [][]*ordersv1.OrderEvent{inOrder})
				st := openStore(t, b.URL(t))
				applyAll(t, st, ordertest.Deliveries(rng, reordered, 4, 12))

				want := expectedFigures(orders)
				got, gotRef := features(t, st), features(t, ref)
				for c, w := range want {
					g, r := got[c], gotRef[c]
					if fig := figuresOf(r); fig != w {
						t.Errorf("round %d: %s in order: %+v, want %+v", round, c, fig, w)
					}
					if fig := figuresOf(g); fig != w {
						t.Errorf("round %d: %s reordered: %+v, want %+v", round, c, fig, w)
					}
					if !reflect.DeepEqual(g, r) {
						t.Errorf("round %d: %s reordered: features %+v, in order %+v", round, c, g, r)
					}
				}
				if t.Failed() {
					for _, o := range orders {
						t.Logf("order %s of %s: total %d test %v: %+v", o.OrderID, o.Customer, o.Total, o.Test, o.Steps)
					}
					return
				}
			}
		})
	}
}

// applyAll applies batches as the consumer does; what the store puts off
// comes back in a later batch.
func applyAll(tb testing.TB, st *store.Store, batches [][]*ordersv1.OrderEvent) {
	tb.Helper()
	rescore := perCustomer(func(f *segment.Features, _ bool, _ *segment.Score) (segment.Score, []outbox.Message) {
		return segment.Score{CustomerID: f.CustomerID, ScoredAt: t0}, nil
	})
	for n := 0; len(batches) > 0; n++ {
		if n > 1000 {
			tb.Fatalf("events still put off after %d batches", n)
		}
		batch := batches[0]
		batches = batches[1:]
		evs := make([]segment.Event, len(batch))
		for i, ev := range batch {
			evs[i] = bus.FromOrderEvent(ev)
		}
		var later []*ordersv1.OrderEvent
		b := store.Batch{Now: t0, Events: evs, Later: func(i int) { later = append(later, batch[i]) }}
		if _, _, err := store.ApplyWith(context.Background(), st, b, rescore); err != nil {
			tb.Fatal(err)
		}
		if len(later) > 0 {
			batches = append(batches, later)
		}
	}
}

type figures struct {
	Orders, NetValue, Discounted, Refunds, RefundedValue int64
}

func figuresOf(f *segment.Features) figures {
	if f == nil {
		return figures{}
	}
	return figures{f.Orders, f.TotalValue, f.DiscountedOrders, f.Refunds, f.RefundedValue}
}

// expectedFigures works a customer's figures out from their histories: a
// paid order that is neither a test nor cancelled counts, net of its
// refunds; every refund of a paid order that is not a test counts,
// cancelled or not.
func expectedFigures(orders []ordertest.Order) map[string]figures {
	want := map[string]figures{}
	for _, o := range orders {
		w := want[o.Customer]
		if o.Has(ordertest.Paid) && !o.Test {
			refunded, n := o.RefundedTotal()
			refunded = min(refunded, o.Total)
			w.Refunds += int64(n)
			w.RefundedValue += refunded
			if !o.Has(ordertest.Cancelled) {
				w.Orders++
				w.NetValue += o.Total - refunded
				if o.Discounted {
					w.Discounted++
				}
			}
		}
		want[o.Customer] = w
	}
	return want
}

func features(tb testing.TB, st *store.Store) map[string]*segment.Features {
	tb.Helper()
	cs, err := st.Customers(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]*segment.Features{}
	for _, c := range cs {
		out[c.Features.CustomerID] = c.Features
	}
	return out
}
