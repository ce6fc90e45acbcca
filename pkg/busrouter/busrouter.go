// Package busrouter turns a durable consumer's batches into calls of a
// service's handler over typed messages. What every consumer must do the
// same way is done here once, as layers around the handler:
//
//   - trace: a consumer span per message, continuing the publisher's trace
//     (the span is in Message.Ctx);
//   - decode-or-park: a message that cannot be decoded becomes a dead
//     letter with its reason, handed to the handler to store in the same
//     transaction as the batch's effects, so that it is parked exactly when
//     the batch commits;
//   - metrics: messages by outcome, batch time and the delay from publish
//     to commit, under the same names for every consumer;
//   - isolate-and-retry: a failing batch is applied again message by
//     message, and a single message that keeps failing while the handler's
//     dependencies answer is parked (processing_failed), so that no message
//     holds back the others and an outage parks nothing;
//   - log once: the layers do not log a failed batch; natsx.BatchConsumer,
//     the outermost, logs each failed attempt once and tries again.
//
// A route is run by natsx.RunPipeline: the next batch is decoded while the
// previous one is applied, and batches are applied strictly in order.
package busrouter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
)

// ReasonFailed is the dead-letter reason of a message parked after
// repeated failures.
const ReasonFailed = "processing_failed"

// Outcomes every route counts; a handler may add its own (Result.Count).
const (
	OutcomeApplied    = "applied"
	OutcomeDuplicate  = "duplicate"
	OutcomeLater      = "later"
	OutcomeDeadLetter = "dead_letter"
)

// Message is one decoded message.
type Message[T any] struct {
	Msg jetstream.Msg
	// Ctx carries the message's consumer span: pass it on (to the outbox,
	// to logs) so that the trace goes on.
	Ctx  context.Context
	Body T
}

// Batch is what a handler applies, in one transaction: the decoded
// messages, and the dead letters of the messages that could not be
// decoded or are parked, which it stores with the outbox of that
// transaction.
type Batch[T any] struct {
	Messages []Message[T]
	Dead     []outbox.Message
	// Attempt counts from 1 for each try of the same messages.
	Attempt int
}

// Result is what a handler did with a batch.
type Result struct {
	// Later are the messages to see again after the consumer's LaterDelay
	// (an event waiting for an earlier one); every other message is done.
	Later []jetstream.Msg
	// Count is the number of messages by outcome, beyond those the router
	// counts itself (dead letters of Batch.Dead, and Later); messages not
	// counted here are counted as applied.
	Count map[string]int
}

// Handler applies a batch. An error means nothing was applied: the
// router isolates and retries.
type Handler[T any] func(ctx context.Context, b Batch[T]) (Result, error)

// Rejection is a decoder's error for a message that is not acceptable:
// the message is parked with Reason.
type Rejection struct {
	Reason, Detail string
}

func (r *Rejection) Error() string { return r.Reason + ": " + r.Detail }

// Reject returns a Rejection with a formatted detail.
func Reject(reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Route is one consumer: how to decode its messages, how to park one, and
// the handler.
type Route[T any] struct {
	// Name names the consumer in metrics (attribute consumer), logs and
	// span names ("<Name> message").
	Name string
	// Decode turns a message into its typed body; a *Rejection (or any
	// error, parked with InvalidReason) parks the message. It runs
	// concurrently with itself when Parallel is set, and with the handler
	// of the previous batch, so it must not touch the handler's state.
	Decode func(ctx context.Context, m jetstream.Msg) (T, error)
	// InvalidReason is the dead-letter reason of a decoding error that is
	// not a *Rejection.
	InvalidReason string
	// DeadLetter builds the dead letter of a message.
	DeadLetter func(m jetstream.Msg, reason, detail string) outbox.Message
	// Handle applies a batch.
	Handle Handler[T]
	// Parallel spreads decoding over the cores (for decoders that do
	// real work: parsing, validation, hashing).
	Parallel bool
	// MaxAttempts is how often one message may fail, while Healthy says
	// the dependencies answer, before it is parked (default 5).
	MaxAttempts int
	// Healthy reports whether the handler's dependencies (its database)
	// answer; nil means nothing is ever parked for failing.
	Healthy func(context.Context) error
	// OnCommit, if set, is called after each applied batch (an outbox
	// relay's Notify).
	OnCommit func()
}

// Router runs routes with shared telemetry.
type Router struct {
	log      *slog.Logger
	tracer   trace.Tracer
	messages metric.Int64Counter
	batch    metric.Float64Histogram
	delay    metric.Float64Histogram
}

// New returns a router whose metrics are:
// boomerang.consumer.messages (by consumer and outcome),
// boomerang.consumer.batch.duration and boomerang.consumer.delay (publish
// to commit), by consumer.
func New(log *slog.Logger, tp trace.TracerProvider, meter metric.Meter) (*Router, error) {
	messages, err := meter.Int64Counter("boomerang.consumer.messages",
		metric.WithDescription("Messages a consumer finished with, by consumer and outcome"))
	if err != nil {
		return nil, err
	}
	batch, err := meter.Float64Histogram("boomerang.consumer.batch.duration",
		metric.WithDescription("Time to apply one batch in its transaction, by consumer"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
	if err != nil {
		return nil, err
	}
	delay, err := meter.Float64Histogram("boomerang.consumer.delay",
		metric.WithDescription("Time from a message's publish to the commit of its effects, by consumer"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
	if err != nil {
		return nil, err
	}
	return &Router{log: log, tracer: tp.Tracer("boomerang/busrouter"), messages: messages, batch: batch, delay: delay}, nil
}

// item is a message as the layers see it: decoded, or parked.
type item[T any] struct {
	msg  jetstream.Msg
	ctx  context.Context
	span trace.Span
	body T
	dead *outbox.Message
}

// prepared is a decoded batch.
type prepared[T any] struct {
	items []item[T]
	ended atomic.Bool
}

func (p *prepared[T]) end() {
	if p.ended.CompareAndSwap(false, true) {
		for _, it := range p.items {
			it.span.End()
		}
	}
}

// Run consumes with c until ctx ends.
func Run[T any](ctx context.Context, r *Router, c *natsx.BatchConsumer, rt Route[T]) error {
	h := Handle(r, rt)
	return natsx.RunPipeline(ctx, c, h.prepare, h.apply)
}

// Handled is a route bound to a router: Prepare and Apply are the two
// stages natsx.RunPipeline runs, and BatchHandler both at once (for
// tests and for callers that feed batches themselves).
type Handled[T any] struct {
	r     *Router
	rt    Route[T]
	attrs metric.MeasurementOption
}

// Handle binds a route to the router.
func Handle[T any](r *Router, rt Route[T]) *Handled[T] {
	if rt.MaxAttempts <= 0 {
		rt.MaxAttempts = 5
	}
	if rt.InvalidReason == "" {
		rt.InvalidReason = "invalid_message"
	}
	return &Handled[T]{r: r, rt: rt, attrs: metric.WithAttributes(attribute.String("consumer", rt.Name))}
}

// BatchHandler decodes and applies a batch in one call.
func (h *Handled[T]) BatchHandler() natsx.BatchHandler {
	return func(ctx context.Context, msgs []jetstream.Msg, attempt int) ([]jetstream.Msg, error) {
		return h.apply(ctx, msgs, h.prepare(ctx, msgs), attempt)
	}
}

func (h *Handled[T]) prepare(ctx context.Context, msgs []jetstream.Msg) *prepared[T] {
	p := &prepared[T]{items: make([]item[T], len(msgs))}
	decode := func(i int) {
		m := msgs[i]
		mctx, span := h.r.tracer.Start(natsx.ExtractTrace(ctx, m.Headers()), h.rt.Name+" message",
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.destination.name", m.Subject())))
		it := item[T]{msg: m, ctx: mctx, span: span}
		body, err := h.decode(mctx, m)
		if err != nil {
			var rej *Rejection
			if !errors.As(err, &rej) {
				rej = &Rejection{Reason: h.rt.InvalidReason, Detail: err.Error()}
			}
			span.SetStatus(codes.Error, rej.Reason)
			dl := h.rt.DeadLetter(m, rej.Reason, rej.Detail)
			it.dead = &dl
		} else {
			it.body = body
		}
		p.items[i] = it
	}
	if h.rt.Parallel {
		parallel(len(msgs), decode)
	} else {
		for i := range msgs {
			decode(i)
		}
	}
	return p
}

// decode runs the route's decoder, turning a panic into a rejection: no
// input can crash the consumer.
func (h *Handled[T]) decode(ctx context.Context, m jetstream.Msg) (body T, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &Rejection{Reason: h.rt.InvalidReason, Detail: fmt.Sprintf("decoder panic: %v", v)}
		}
	}()
	return h.rt.Decode(ctx, m)
}

func (h *Handled[T]) apply(ctx context.Context, _ []jetstream.Msg, p *prepared[T], attempt int) ([]jetstream.Msg, error) {
	later, err := h.isolated(ctx, p.items, attempt)
	if err == nil || errors.Is(err, context.Canceled) {
		p.end()
	}
	return later, err
}

// isolated applies items, and when that fails, each of them alone; a
// single item that keeps failing while the dependencies answer is parked.
// Items applied before a failing one are duplicates when the batch comes
// back, so the handler must be idempotent (it is: the outbox and the
// stores recognise redelivery).
func (h *Handled[T]) isolated(ctx context.Context, items []item[T], attempt int) ([]jetstream.Msg, error) {
	later, err := h.measured(ctx, items, attempt)
	if err == nil || errors.Is(err, context.Canceled) {
		return later, err
	}
	if len(items) > 1 {
		h.r.log.DebugContext(ctx, "batch failed; applying its messages one by one", "consumer", h.rt.Name, "size", len(items), "error", err)
		var all []jetstream.Msg
		for i := range items {
			l, err := h.isolated(ctx, items[i:i+1], attempt)
			if err != nil {
				return nil, err
			}
			all = append(all, l...)
		}
		return all, nil
	}
	it := items[0]
	if attempt < h.rt.MaxAttempts || h.rt.Healthy == nil || it.dead != nil {
		return nil, err
	}
	if herr := h.rt.Healthy(ctx); herr != nil {
		return nil, errors.Join(err, fmt.Errorf("dependencies unavailable: %w", herr))
	}
	// Parked, not logged with its subject: the subject may name a customer.
	h.r.log.ErrorContext(it.ctx, "message parked after repeated failures", "consumer", h.rt.Name, "attempt", attempt, "error", err)
	it.span.SetStatus(codes.Error, ReasonFailed)
	dl := h.rt.DeadLetter(it.msg, ReasonFailed, err.Error())
	parked := item[T]{msg: it.msg, ctx: it.ctx, span: it.span, dead: &dl}
	return h.measured(ctx, []item[T]{parked}, attempt)
}

// measured runs the handler on items and records the outcome.
func (h *Handled[T]) measured(ctx context.Context, items []item[T], attempt int) ([]jetstream.Msg, error) {
	b := Batch[T]{Messages: make([]Message[T], 0, len(items)), Attempt: attempt}
	for _, it := range items {
		if it.dead != nil {
			b.Dead = append(b.Dead, *it.dead)
			continue
		}
		b.Messages = append(b.Messages, Message[T]{Msg: it.msg, Ctx: it.ctx, Body: it.body})
	}
	start := time.Now()
	res, err := h.call(ctx, b)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	h.r.batch.Record(ctx, now.Sub(start).Seconds(), h.attrs)
	counted := len(res.Later)
	h.count(ctx, OutcomeLater, len(res.Later))
	for outcome, n := range res.Count {
		h.count(ctx, outcome, n)
		counted += n
	}
	h.count(ctx, OutcomeDeadLetter, len(b.Dead))
	h.count(ctx, OutcomeApplied, len(b.Messages)-counted)
	for _, it := range items {
		if meta, err := it.msg.Metadata(); err == nil {
			h.r.delay.Record(ctx, now.Sub(meta.Timestamp).Seconds(), h.attrs)
		}
	}
	if h.rt.OnCommit != nil {
		h.rt.OnCommit()
	}
	return res.Later, nil
}

func (h *Handled[T]) count(ctx context.Context, outcome string, n int) {
	if n > 0 {
		h.r.messages.Add(ctx, int64(n), metric.WithAttributes(attribute.String("consumer", h.rt.Name), attribute.String("outcome", outcome)))
	}
}

// call runs the handler, turning a panic into an error.
func (h *Handled[T]) call(ctx context.Context, b Batch[T]) (res Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("handler panic: %v", v)
		}
	}()
	return h.rt.Handle(ctx, b)
}

// parallel runs fn(0..n-1) on up to GOMAXPROCS goroutines, in batches of
// at least 16 so that small batches stay on one.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/16+1)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}
