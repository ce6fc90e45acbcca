package store_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/ordergate/ordertest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/store"
)

// An order's state and history do not depend on the order its shop's
// events arrive in (shuffled, some twice, in batches; what ingest puts off
// comes back later, as the bus consumer does): they equal the in-order
// result and what the history alone says. The events it numbers keep what
// the consumers downstream rely on: numbers 1..n, a payment before every
// refund, an order's first event placed or paid.
func TestHistoryInAnyOrder(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			rounds := 25
			if b.Name != "sqlite" {
				if testing.Short() {
					t.Skip("short")
				}
				rounds = 4
			}
			rng := rand.New(rand.NewPCG(3, 9))
			p := preparer(t)
			ctx := context.Background()
			for round := 0; round < rounds; round++ {
				orders := ordertest.Generate(rng, 4, 4, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
				var inOrder []*ingestv1.Order
				for _, o := range orders {
					for _, s := range o.Steps {
						inOrder = append(inOrder, shopEvent(o, s))
					}
				}
				ref := openStore(t, b.URL(t))
				ingestAll(t, ref, p, [][]*ingestv1.Order{inOrder})
				st := openStore(t, b.URL(t))
				ingestAll(t, st, p, ordertest.Deliveries(rng, inOrder, 4, 12))

				for _, o := range orders {
					want, wantEvs, err := ref.GetOrder(ctx, o.Source, o.OrderID)
					if err != nil {
						t.Fatal(err)
					}
					got, gotEvs, err := st.GetOrder(ctx, o.Source, o.OrderID)
					if err != nil {
						t.Fatal(err)
					}
					if s := expectedStatus(o); want.Status != s || got.Status != s {
						t.Errorf("round %d: order %s status %v in order, %v reordered, want %v", round, o.OrderID, want.Status, got.Status, s)
					}
					refunded, _ := o.RefundedTotal()
					if got.CustomerID != want.CustomerID || got.Total != want.Total || got.BaseTotal != want.BaseTotal || got.Refunded != refunded ||
						got.Refunded != want.Refunded || got.BaseRefunded != want.BaseRefunded || got.Paid != want.Paid ||
						got.Paid != o.Has(ordertest.Paid) || got.Events != len(o.Steps) || want.Events != len(o.Steps) {
						t.Errorf("round %d: order %s reordered %+v\nin order %+v", round, o.OrderID, *got, *want)
					}
					if len(gotEvs) != len(wantEvs) {
						t.Fatalf("round %d: order %s: %d events reordered, %d in order", round, o.OrderID, len(gotEvs), len(wantEvs))
					}
					for i := range gotEvs {
						g, w := gotEvs[i], wantEvs[i]
						if g.GetEventId() != w.GetEventId() || g.GetCustomerId() != w.GetCustomerId() || !g.GetOccurredAt().AsTime().Equal(w.GetOccurredAt().AsTime()) {
							t.Errorf("round %d: order %s history[%d] = %s %s, in order %s %s", round, o.OrderID, i, g.GetKind(), g.GetEventId(), w.GetKind(), w.GetEventId())
						}
					}
					checkNumbering(t, o, gotEvs)
				}
				if t.Failed() {
					for _, o := range orders {
						t.Logf("order %s of %s: total %d: %+v", o.OrderID, o.Customer, o.Total, o.Steps)
					}
					return
				}
			}
		})
	}
}

// checkNumbering checks what the consumers downstream rely on of the
// numbers ingest gave an order's events.
func checkNumbering(tb testing.TB, o ordertest.Order, evs []*ordersv1.OrderEvent) {
	tb.Helper()
	bySeq := make([]*ordersv1.OrderEvent, len(evs)+1)
	for _, ev := range evs {
		s := ev.GetOrderSequence()
		if s < 1 || int(s) > len(evs) || bySeq[s] != nil {
			tb.Errorf("order %s: sequence %d of %d events", o.OrderID, s, len(evs))
			return
		}
		bySeq[s] = ev
	}
	if k := bySeq[1].GetKind(); k != ordertest.Placed && k != ordertest.Paid {
		tb.Errorf("order %s: first event %v", o.OrderID, k)
	}
	paid := false
	var refunded int64
	for _, ev := range bySeq[1:] {
		switch ev.GetKind() {
		case ordertest.Paid:
			paid = true
		case ordertest.Refunded:
			if !paid {
				tb.Errorf("order %s: refund %d numbered before the payment", o.OrderID, ev.GetOrderSequence())
			}
			refunded = ev.GetRefund().GetRefundedTotal().GetOriginal().GetMinorUnits()
		}
	}
	if want, _ := o.RefundedTotal(); refunded != want {
		tb.Errorf("order %s: last refund says %d refunded, want %d", o.OrderID, refunded, want)
	}
}

func expectedStatus(o ordertest.Order) ingestv1.OrderStatus {
	refunded, _ := o.RefundedTotal()
	switch {
	case o.Has(ordertest.Cancelled):
		return ingestv1.OrderStatus_ORDER_STATUS_CANCELLED
	case refunded > 0 && refunded == o.Total:
		return ingestv1.OrderStatus_ORDER_STATUS_REFUNDED
	case refunded > 0:
		return ingestv1.OrderStatus_ORDER_STATUS_PARTIALLY_REFUNDED
	case o.Has(ordertest.Paid):
		return ingestv1.OrderStatus_ORDER_STATUS_PAID
	}
	return ingestv1.OrderStatus_ORDER_STATUS_PLACED
}

// shopEvent is a step as a shop sends it.
func shopEvent(o ordertest.Order, s ordertest.Step) *ingestv1.Order {
	eur := func(v int64) *commonv1.Money { return &commonv1.Money{MinorUnits: v, Currency: "EUR"} }
	in := &ingestv1.Order{Source: o.Source, OrderId: o.OrderID, Kind: s.Kind, OccurredAt: timestamppb.New(s.At)}
	switch s.Kind {
	case ordertest.Placed, ordertest.Paid:
		in.Total, in.Channel, in.Test = eur(o.Total), o.Channel, o.Test
		in.Customer = &ingestv1.CustomerInput{PlatformCustomerId: o.Customer}
		if o.Discounted {
			in.Discount = &ingestv1.DiscountInput{Codes: []string{"SALE"}}
		}
	case ordertest.Refunded:
		in.Refund = &ingestv1.RefundInput{RefundId: s.RefundID, Amount: eur(s.Refund)}
	}
	return in
}

// ingestAll ingests batches as the bus consumer does: an event rejected
// for want of its order's history comes back in a later batch; any other
// rejection fails the test.
func ingestAll(tb testing.TB, st *store.Store, p *ingest.Preparer, batches [][]*ingestv1.Order) {
	tb.Helper()
	for n := 0; len(batches) > 0; n++ {
		if n > 1000 {
			tb.Fatalf("events still put off after %d batches", n)
		}
		batch := batches[0]
		batches = batches[1:]
		prepared := make([]*ingest.Prepared, len(batch))
		for i, o := range batch {
			pr, err := p.Prepare(o, time.Now())
			if err != nil {
				tb.Fatalf("prepare %v: %v", o, err)
			}
			prepared[i] = pr
		}
		res, err := applyPrepared(st, prepared, nil)
		if err != nil {
			tb.Fatal(err)
		}
		var later []*ingestv1.Order
		for i, r := range res {
			if r.Outcome != ingest.Rejected {
				continue
			}
			if !ingest.AwaitsHistory(r.Rejection) {
				tb.Fatalf("%s %s of order %s rejected: %v", batch[i].GetKind(), batch[i].GetRefund().GetRefundId(), batch[i].GetOrderId(), r.Rejection)
			}
			later = append(later, batch[i])
		}
		if len(later) > 0 {
			batches = append(batches, later)
		}
	}
}
