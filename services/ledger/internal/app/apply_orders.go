package app

import (
	"context"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/ordergate"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// Input is one canonical order event to apply, with the context (trace)
// its ledger events continue.
type Input struct {
	Ctx   context.Context
	Event *ordersv1.OrderEvent
}

// ApplyOrders applies canonical order events in one transaction, each at
// most once (ledger.Batch.ApplyOrderEvent): an event numbered within its
// order (order_sequence, as order-ingest numbers every event) is
// recognised as seen by its order's last applied sequence, one without a
// number by its event id among the processed events. Events of one order
// are applied in their order (ordergate); one whose predecessor is
// missing is Later.
//
// dead are dead letters of messages that were not order events, written in
// the same transaction.
func (a *App) ApplyOrders(ctx context.Context, p *ledger.Programme, in []Input, dead []outbox.Message) ([]ledger.Outcome, error) {
	evs := make([]*ordersv1.OrderEvent, len(in))
	for i, x := range in {
		evs[i] = x.Event
	}
	out := make([]ledger.Outcome, len(in))
	err := a.store.UpdateOrders(ctx, p, a.now(), evs, dead, func(b *ledger.Batch) error {
		b.KnowReferralCodes(evs)
		gate := ordergate.New()
		for _, o := range b.Orders {
			gate.Load(ordergate.Key{Source: o.Source, OrderID: o.OrderID}, o.LastSeq)
		}
		for _, i := range ordergate.Sequence(gateEvents(evs)) {
			ev := evs[i]
			if b.Processed[ev.GetEventId()] {
				out[i] = ledger.Duplicate
				continue
			}
			out[i] = b.ApplyOrderEvent(in[i].Ctx, gate, ev)
			if out[i] == ledger.Applied && ev.GetOrderSequence() == 0 {
				b.Processed[ev.GetEventId()] = true
				b.Seen = append(b.Seen, ev.GetEventId())
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// gateEvents is what ordergate.Sequence needs of a batch.
func gateEvents(evs []*ordersv1.OrderEvent) []ordergate.Event {
	out := make([]ordergate.Event, len(evs))
	for i, ev := range evs {
		out[i] = ordergate.Event{Key: ordergate.Key{Source: ev.GetSource(), OrderID: ev.GetOrderId()}, Seq: ev.GetOrderSequence()}
	}
	return out
}
