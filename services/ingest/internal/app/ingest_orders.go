package app

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
)

// Item is one order to ingest.
type Item struct {
	Order *ingestv1.Order
	// Trace carries the trace context the canonical event continues.
	Trace nats.Header
	// OnReject returns the outbox messages that record a rejection (a dead
	// letter for bus input); nil records nothing. later reports that the
	// rejection is not final: the message is put off and comes back, and is
	// counted once, when it is finally applied or dead-lettered.
	OnReject func(*ingest.Rejection) (msgs []outbox.Message, later bool)
}

// Result is what became of one item.
type Result struct {
	ingest.Result
	// Later is set for a rejection that OnReject put off.
	Later bool
}

// IngestOrders applies items in one transaction and returns one result
// per item. dead are dead letters of input that never became an order,
// written in the same transaction; each counts as one rejected message.
// An error means nothing was applied.
func (a *App) IngestOrders(ctx context.Context, items []Item, dead []outbox.Message) ([]Result, error) {
	results := make([]Result, len(items))
	prepared := make([]*ingest.Prepared, 0, len(items))
	index := make([]int, 0, len(items))
	var rejectedEarly []outbox.Message
	onReject := func(i int, rej *ingest.Rejection) []outbox.Message {
		if items[i].OnReject == nil {
			return nil
		}
		msgs, later := items[i].OnReject(rej)
		results[i].Later = later
		return msgs
	}
	now := a.now()
	for i, it := range items {
		p, err := a.prep.Prepare(it.Order, now)
		if err != nil {
			rej, ok := ingest.AsRejection(err)
			if !ok {
				return nil, fmt.Errorf("prepare: %w", err)
			}
			results[i].Result = ingest.Result{Outcome: ingest.Rejected, Rejection: rej}
			rejectedEarly = append(rejectedEarly, onReject(i, rej)...)
			continue
		}
		prepared = append(prepared, p)
		index = append(index, i)
	}
	orders, identities := ingest.Keys(prepared)
	base := a.prep.BaseCurrency()
	err := a.store.UpdateOrders(ctx, orders, identities, func(b *ingest.Batch) ([]outbox.Message, error) {
		// Called again when the transaction is retried: what it sets is
		// set again, not added to.
		msgs := append(append(make([]outbox.Message, 0, len(prepared)+len(rejectedEarly)+len(dead)), rejectedEarly...), dead...)
		for j, p := range prepared {
			i := index[j]
			r, err := b.Apply(p, base)
			if err != nil {
				return nil, fmt.Errorf("order %s/%s: %w", p.Key.Source, p.Key.OrderID, err)
			}
			results[i] = Result{Result: r}
			switch r.Outcome {
			case ingest.Accepted:
				msgs = append(msgs, canonicalMessage(r, items[i].Trace))
			case ingest.Rejected:
				msgs = append(msgs, onReject(i, r.Rejection)...)
			}
		}
		return msgs, nil
	})
	if err != nil {
		return nil, err
	}
	a.relay.Notify()
	a.count(ctx, results, dead)
	return results, nil
}

// count counts each message's final outcome once: a message put off is
// counted when it comes back for good, and a dead letter of input that
// never became an order as a rejection with its reason.
func (a *App) count(ctx context.Context, results []Result, dead []outbox.Message) {
	add := func(outcome, reason string) {
		a.counts.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome), attribute.String("reason", reason)))
	}
	for _, r := range results {
		if r.Later {
			continue
		}
		switch r.Outcome {
		case ingest.Duplicate:
			add("duplicate", "")
		case ingest.Rejected:
			add("rejected", r.Rejection.Reason)
		default:
			add("accepted", "")
		}
	}
	for _, m := range dead {
		if reason, ok := orderbus.DeadLetterReason(m); ok {
			add("rejected", reason)
		}
	}
}

// canonicalMessage is the outbox message that publishes an accepted
// event on ORDERS; trace carries the trace context the event continues.
func canonicalMessage(r ingest.Result, trace nats.Header) outbox.Message {
	return outbox.Message{
		ID:      r.EventID,
		Subject: orderbus.Subject(orderbus.KindToken(r.Event.GetKind()), r.CustomerID),
		Header:  natsx.ProtoHeader(natsx.ExtractTrace(context.Background(), trace), r.EventID, r.Event),
		Data:    r.Payload,
	}
}
