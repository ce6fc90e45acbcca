package events

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/ordergate"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// Programme returns the programme in force (it may be reloaded).
type Programme func() *ledger.Programme

// Orders is the use case the consumer runs (*app.App).
type Orders interface {
	ApplyOrders(ctx context.Context, p *ledger.Programme, in []app.Input, dead []outbox.Message) ([]ledger.Outcome, error)
}

// input is an order event with the message it came in.
type input struct {
	app.Input
	msg jetstream.Msg
}

// Consumer applies batches of canonical order events to the ledger.
type Consumer struct {
	store     Orders
	programme Programme
	log       *slog.Logger
	tracer    trace.Tracer
	applied   metric.Int64Counter
	batch     metric.Float64Histogram
	delay     metric.Float64Histogram
	onCommit  atomic.Pointer[func()]
	opts      Options
	isolated  natsx.BatchHandler
}

// NewConsumer returns the consumer; natsx.BatchConsumer feeds it.
func NewConsumer(st Orders, p Programme, opts Options, log *slog.Logger, tp trace.TracerProvider, meter metric.Meter) (*Consumer, error) {
	if opts.LaterDelay <= 0 {
		opts.LaterDelay = 2 * time.Second
	}
	if opts.WaitForOrder <= 0 {
		opts.WaitForOrder = 10 * time.Minute
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	applied, err := meter.Int64Counter("boomerang.ledger.order_events",
		metric.WithDescription("Order events the ledger consumed, by outcome"))
	if err != nil {
		return nil, err
	}
	batch, err := meter.Float64Histogram("boomerang.ledger.batch.duration",
		metric.WithDescription("Time to apply one batch of order events in its transaction"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
	if err != nil {
		return nil, err
	}
	delay, err := meter.Float64Histogram("boomerang.ledger.delay",
		metric.WithDescription("Time from an order event's publish to the commit of its points"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
	if err != nil {
		return nil, err
	}
	c := &Consumer{store: st, programme: p, log: log, tracer: tp.Tracer("boomerang/ledger/consumer"),
		applied: applied, batch: batch, delay: delay, opts: opts}
	c.isolated = natsx.Isolate(c.handle, natsx.IsolateOptions{MaxAttempts: opts.MaxAttempts, Healthy: opts.Ping, Park: c.park, Log: log})
	return c, nil
}

// Options tune the consumer.
type Options struct {
	// LaterDelay is how long an event waiting for an earlier event of its
	// order is put off; WaitForOrder is how long it may wait in all before
	// it is dead-lettered (its predecessor is gone from the stream).
	LaterDelay, WaitForOrder time.Duration
	// MaxAttempts is how often one event may fail, while Ping says the
	// database answers, before it is dead-lettered (processing_failed).
	MaxAttempts int
	Ping        func(context.Context) error
}

// giveUp dead-letters the put-off events that have waited too long for an
// earlier event of their order (ordergate.ReasonGap), logging each once
// its dead letter is committed, and returns the others' messages.
func (c *Consumer) giveUp(ctx context.Context, later []input) ([]jetstream.Msg, error) {
	msgs := make([]jetstream.Msg, len(later))
	byMsg := make(map[jetstream.Msg]input, len(later))
	for i, x := range later {
		msgs[i], byMsg[x.msg] = x.msg, x
	}
	keep, expired := ordergate.Expired(msgs, c.opts.LaterDelay, c.opts.WaitForOrder)
	if len(expired) == 0 {
		return keep, nil
	}
	dead := make([]outbox.Message, len(expired))
	for i, m := range expired {
		dead[i] = orderbus.DeadLetter(m, "ledger", "orders", ordergate.ReasonGap, "an earlier event of this order never arrived")
	}
	if _, err := c.store.ApplyOrders(ctx, c.programme(), nil, dead); err != nil {
		return nil, err
	}
	c.applied.Add(ctx, int64(len(dead)), metric.WithAttributes(attribute.String("outcome", "dead_letter")))
	// The subject and the event's customer id are left out: they name the
	// customer.
	for _, m := range expired {
		x := byMsg[m]
		ev := x.Event
		c.log.WarnContext(x.Ctx, "order event dead-lettered without an earlier event of its order", "reason", ordergate.ReasonGap,
			"source", ev.GetSource(), "order_id", ev.GetOrderId(), "kind", orderbus.KindToken(ev.GetKind()),
			"order_sequence", ev.GetOrderSequence(), "waited", c.opts.WaitForOrder)
	}
	return keep, nil
}

// OnCommit sets a function called after each committed batch (the relay's
// Notify).
func (c *Consumer) OnCommit(fn func()) { c.onCommit.Store(&fn) }

// Handle is a natsx.BatchHandler. A message that is not a canonical order
// event is dead-lettered with the reason in the batch's transaction; a
// batch that fails is tried again in place, its events one by one
// (natsx.Isolate), and an event that keeps failing while the database
// answers is dead-lettered (processing_failed).
func (c *Consumer) Handle(ctx context.Context, msgs []jetstream.Msg, attempt int) ([]jetstream.Msg, error) {
	return c.isolated(ctx, msgs, attempt)
}

// park dead-letters an event that keeps failing while the database
// answers (processing_failed), rather than stop every customer behind it.
func (c *Consumer) park(ctx context.Context, m jetstream.Msg, err error) error {
	dl := orderbus.DeadLetter(m, "ledger", "orders", "processing_failed", err.Error())
	if _, err := c.store.ApplyOrders(ctx, c.programme(), nil, []outbox.Message{dl}); err != nil {
		return err
	}
	c.applied.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "dead_letter")))
	return nil
}

func (c *Consumer) handle(ctx context.Context, msgs []jetstream.Msg, attempt int) ([]jetstream.Msg, error) {
	in := make([]app.Input, 0, len(msgs))
	inMsgs := make([]jetstream.Msg, 0, len(msgs))
	var dead []outbox.Message
	spans := make([]trace.Span, 0, len(msgs))
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()
	for _, m := range msgs {
		mctx, span := c.tracer.Start(natsx.ExtractTrace(ctx, m.Headers()), "apply order event",
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.destination.name", m.Subject())))
		spans = append(spans, span)
		ev, err := orderbus.Decode(m)
		if err != nil {
			span.SetStatus(codes.Error, "not an order event")
			dead = append(dead, orderbus.DeadLetter(m, "ledger", "orders", "invalid_event", err.Error()))
			continue
		}
		in = append(in, app.Input{Ctx: mctx, Event: ev})
		inMsgs = append(inMsgs, m)
	}
	start := time.Now()
	out, err := c.store.ApplyOrders(ctx, c.programme(), in, dead)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		c.log.ErrorContext(ctx, "order events not applied", "size", len(msgs), "attempt", attempt, "error", err)
		return nil, err
	}
	now := time.Now()
	c.batch.Record(ctx, now.Sub(start).Seconds())
	var applied, dup int64
	var putOff []input
	for i, o := range out {
		switch o {
		case ledger.Duplicate:
			dup++
		case ledger.Later:
			putOff = append(putOff, input{in[i], inMsgs[i]})
		default:
			applied++
		}
	}
	c.applied.Add(ctx, applied, metric.WithAttributes(attribute.String("outcome", "applied")))
	c.applied.Add(ctx, dup, metric.WithAttributes(attribute.String("outcome", "duplicate")))
	c.applied.Add(ctx, int64(len(dead)), metric.WithAttributes(attribute.String("outcome", "dead_letter")))
	for _, m := range msgs {
		if meta, err := m.Metadata(); err == nil {
			c.delay.Record(ctx, now.Sub(meta.Timestamp).Seconds())
		}
	}
	later, err := c.giveUp(ctx, putOff)
	if err != nil {
		return nil, err
	}
	if fn := c.onCommit.Load(); fn != nil {
		(*fn)()
	}
	return later, nil
}
