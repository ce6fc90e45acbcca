// Package intake is order-ingest's use case, shared by its gRPC API and its
// bus consumer: prepare each order, apply the batch in one transaction with
// the outbox messages it produces, and wake the relay.
package intake

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/events"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/store"
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

// Notifier is told when new outbox messages are committed.
type Notifier interface{ Notify() }

// Intake ingests batches of orders.
type Intake struct {
	prep   *ingest.Preparer
	store  *store.Store
	relay  Notifier
	counts metric.Int64Counter
}

// New returns an intake.
func New(prep *ingest.Preparer, st *store.Store, relay Notifier, meter metric.Meter) (*Intake, error) {
	counts, err := meter.Int64Counter("boomerang.ingest.orders",
		metric.WithDescription("Orders ingested, by outcome and reason"))
	if err != nil {
		return nil, err
	}
	return &Intake{prep: prep, store: st, relay: relay, counts: counts}, nil
}

// Ingest applies items in one transaction and returns one result per item.
// extra are dead letters of input that never became an order; each counts
// as one rejected message. An error means nothing was applied.
func (in *Intake) Ingest(ctx context.Context, items []Item, extra []outbox.Message) ([]store.Result, error) {
	results := make([]store.Result, len(items))
	prepared := make([]*ingest.Prepared, 0, len(items))
	index := make([]int, 0, len(items))
	msgs := append([]outbox.Message(nil), extra...)
	// Whether each rejected item was put off: set again, not added to, when
	// the store retries its transaction, so that only what was committed is
	// counted.
	later := make([]bool, len(items))
	onReject := func(i int, rej *ingest.Rejection) []outbox.Message {
		if items[i].OnReject == nil {
			return nil
		}
		msgs, putOff := items[i].OnReject(rej)
		later[i] = putOff
		return msgs
	}
	for i, it := range items {
		p, err := in.prep.Prepare(it.Order)
		if err != nil {
			rej, ok := ingest.AsRejection(err)
			if !ok {
				return nil, fmt.Errorf("prepare: %w", err)
			}
			results[i] = store.Result{Outcome: store.Rejected, Rejection: rej}
			msgs = append(msgs, onReject(i, rej)...)
			continue
		}
		prepared = append(prepared, p)
		index = append(index, i)
	}
	applied, err := in.store.Apply(ctx, store.Batch{
		Orders:       prepared,
		BaseCurrency: in.prep.BaseCurrency(),
		Extra:        msgs,
		Messages: func(j int, r store.Result) []outbox.Message {
			it := items[index[j]]
			switch r.Outcome {
			case store.Accepted:
				return []outbox.Message{events.CanonicalMessage(r, r.Payload, it.Trace)}
			case store.Rejected:
				return onReject(index[j], r.Rejection)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	for j, r := range applied {
		results[index[j]] = r
	}
	in.relay.Notify()
	in.count(ctx, results, later, extra)
	return results, nil
}

// count counts each message's final outcome once: a message put off is
// counted when it comes back for good, and a dead letter of input that
// never became an order as a rejection with its reason.
func (in *Intake) count(ctx context.Context, results []store.Result, later []bool, extra []outbox.Message) {
	add := func(outcome, reason string) {
		in.counts.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome), attribute.String("reason", reason)))
	}
	for i, r := range results {
		if later[i] {
			continue
		}
		switch r.Outcome {
		case store.Duplicate:
			add("duplicate", "")
		case store.Rejected:
			add("rejected", r.Rejection.Reason)
		default:
			add("accepted", "")
		}
	}
	for _, m := range extra {
		if reason, ok := orderbus.DeadLetterReason(m); ok {
			add("rejected", reason)
		}
	}
}

// GetOrder returns an order and its history.
func (in *Intake) GetOrder(ctx context.Context, source, orderID string) (*ingest.Order, []*ordersv1.OrderEvent, error) {
	return in.store.GetOrder(ctx, source, orderID)
}
