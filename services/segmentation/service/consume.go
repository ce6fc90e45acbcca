package service

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/ordergate"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/events"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/scoring"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// consumer applies ORDERS batches: decoding while the previous batch is
// applied, then one transaction per batch through the scorer.
type consumer struct {
	scorer *scoring.Scorer
	relay  *outbox.Relay
	log    *slog.Logger
	tracer trace.Tracer
	now    func() time.Time
	// laterDelay and waitForOrder bound how long an event waits for an
	// earlier event of its order (see ordergate).
	laterDelay, waitForOrder time.Duration

	applied     metric.Int64Counter
	deadLetters metric.Int64Counter
	gaps        metric.Int64Counter
	batchTime   metric.Float64Histogram
}

func newConsumer(sc *scoring.Scorer, relay *outbox.Relay, log *slog.Logger, tp trace.TracerProvider, meter metric.Meter, now func() time.Time) (*consumer, error) {
	c := &consumer{scorer: sc, relay: relay, log: log, tracer: tp.Tracer("boomerang/segmentation"), now: now}
	var err error
	if c.applied, err = meter.Int64Counter("boomerang.segmentation.events_applied",
		metric.WithDescription("Order events applied to customer features")); err != nil {
		return nil, err
	}
	if c.deadLetters, err = meter.Int64Counter("boomerang.segmentation.dead_lettered",
		metric.WithDescription("Messages on ORDERS that were not canonical order events")); err != nil {
		return nil, err
	}
	if c.gaps, err = meter.Int64Counter("boomerang.segmentation.order_gaps",
		metric.WithDescription("Order events applied without an earlier event of their order, after waiting SEGMENTATION_WAIT_FOR_ORDER")); err != nil {
		return nil, err
	}
	if c.batchTime, err = meter.Float64Histogram("boomerang.segmentation.batch.duration",
		metric.WithDescription("Time to apply one batch of order events, rescoring and hot-store write included"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)); err != nil {
		return nil, err
	}
	return c, nil
}

// batch is a decoded batch.
type batch struct {
	events []segment.Event
	dead   []outbox.Message
	// msgs are the events' messages, index for index.
	msgs []jetstream.Msg
	// trace is the trace context of the batch's first event, so that an
	// order's trace reaches segmentation.
	trace context.Context
}

func (c *consumer) prepare(ctx context.Context, msgs []jetstream.Msg) *batch {
	b := &batch{trace: ctx}
	for i, m := range msgs {
		ev, err := orderbus.Decode(m)
		if err != nil {
			b.dead = append(b.dead, orderbus.DeadLetter(m, events.Service, "orders", "not_an_order_event", err.Error()))
			continue
		}
		if i == 0 {
			b.trace = natsx.ExtractTrace(ctx, m.Headers())
		}
		b.events = append(b.events, events.FromOrderEvent(ev))
		b.msgs = append(b.msgs, m)
	}
	return b
}

func (c *consumer) apply(ctx context.Context, msgs []jetstream.Msg, b *batch, attempt int) ([]jetstream.Msg, error) {
	ctx, span := c.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(b.trace)), "segmentation.apply_batch",
		trace.WithAttributes(attribute.Int("messages", len(msgs)), attribute.Int("attempt", attempt)))
	defer span.End()
	start := time.Now()
	var putOff []int
	n, err := c.scorer.Apply(ctx, store.Batch{Events: b.events, Extra: b.dead, Now: c.now().UTC(),
		Later: func(i int) { putOff = append(putOff, i) }})
	if err != nil {
		span.RecordError(err)
		return nil, err
	}
	later, forced, err := c.giveUp(ctx, b, putOff)
	if err != nil {
		span.RecordError(err)
		return nil, err
	}
	n += forced
	c.batchTime.Record(ctx, time.Since(start).Seconds())
	c.applied.Add(ctx, int64(n))
	if len(b.dead) > 0 {
		c.deadLetters.Add(ctx, int64(len(b.dead)))
		c.log.WarnContext(ctx, "messages on ORDERS dead-lettered", "count", len(b.dead))
	}
	c.relay.Notify()
	return later, nil
}

// giveUp applies the events put off that have waited long enough for an
// earlier event of their order, and returns the others, which come back
// after the batch consumer's LaterDelay. The earlier event is then taken
// to be gone (aged out of ORDERS, a consumer recreated past it, or a
// placed event applied before segmentation kept placed orders, when
// migration 00005 ran): the figures are best served by what did come, so
// the event applies out of order rather than being dropped, with a warning
// and boomerang.segmentation.order_gaps to show it.
func (c *consumer) giveUp(ctx context.Context, b *batch, later []int) ([]jetstream.Msg, int, error) {
	msgs := make([]jetstream.Msg, len(later))
	index := make(map[jetstream.Msg]int, len(later))
	for k, i := range later {
		msgs[k], index[b.msgs[i]] = b.msgs[i], i
	}
	keep, expired := ordergate.Expired(msgs, c.laterDelay, c.waitForOrder)
	if len(expired) == 0 {
		return keep, 0, nil
	}
	evs := make([]segment.Event, len(expired))
	for k, m := range expired {
		evs[k] = b.events[index[m]]
	}
	n, err := c.scorer.Apply(ctx, store.Batch{Events: evs, Now: c.now().UTC(), Force: true})
	if err != nil {
		return nil, 0, err
	}
	c.gaps.Add(ctx, int64(len(expired)))
	// Logged once applied, so not again when the batch is retried; not the
	// subject: its last token is the customer id.
	for k, m := range expired {
		c.log.WarnContext(ctx, "order event applied without an earlier event of its order", "reason", ordergate.ReasonGap,
			"source", evs[k].Source, "order_id", evs[k].OrderID, "kind", kindToken(m.Subject()), "order_sequence", evs[k].Seq,
			"waited", c.waitForOrder)
	}
	return keep, n, nil
}

// kindToken is the kind token of a canonical event's subject
// (orderbus.Prefix + <kind>.<customer_id>).
func kindToken(subject string) string {
	kind, _, _ := strings.Cut(strings.TrimPrefix(subject, orderbus.Prefix), ".")
	return kind
}
