package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/events"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/scoring"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// feedbackConsumer applies the feedback service's agony events from the
// FEEDBACK stream: one transaction per batch through the scorer, which
// keeps each customer's agony moving only forward in event time, so a
// redelivered or replayed old event changes nothing.
type feedbackConsumer struct {
	scorer *scoring.Scorer
	relay  *outbox.Relay
	log    *slog.Logger
	tracer trace.Tracer
	now    func() time.Time

	marks     metric.Int64Counter
	batchTime metric.Float64Histogram
}

func newFeedbackConsumer(sc *scoring.Scorer, relay *outbox.Relay, log *slog.Logger, tp trace.TracerProvider, meter metric.Meter, now func() time.Time) (*feedbackConsumer, error) {
	c := &feedbackConsumer{scorer: sc, relay: relay, log: log, tracer: tp.Tracer("boomerang/segmentation"), now: now}
	var err error
	if c.marks, err = meter.Int64Counter("boomerang.segmentation.feedback_events",
		metric.WithDescription("Feedback events consumed from FEEDBACK, by outcome: applied, ignored (redelivered or older than the customer's state), dead_letter")); err != nil {
		return nil, err
	}
	if c.batchTime, err = meter.Float64Histogram("boomerang.segmentation.feedback_batch.duration",
		metric.WithDescription("Time to apply one batch of feedback events, rescoring and hot-store write included"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)); err != nil {
		return nil, err
	}
	return c, nil
}

// feedbackBatch is a decoded batch.
type feedbackBatch struct {
	marks []segment.AgonyMark
	dead  []outbox.Message
	trace context.Context
}

func (c *feedbackConsumer) prepare(ctx context.Context, msgs []jetstream.Msg) *feedbackBatch {
	b := &feedbackBatch{trace: ctx}
	for _, m := range msgs {
		mark, reason, err := events.FromFeedbackEvent(m.Subject(), m.Data())
		if err != nil {
			b.dead = append(b.dead, orderbus.DeadLetter(m, events.Service, events.FeedbackSource(m.Subject()), reason, err.Error()))
			continue
		}
		if len(b.marks) == 0 {
			b.trace = natsx.ExtractTrace(ctx, m.Headers())
		}
		b.marks = append(b.marks, mark)
	}
	return b
}

func (c *feedbackConsumer) apply(ctx context.Context, msgs []jetstream.Msg, b *feedbackBatch, attempt int) ([]jetstream.Msg, error) {
	ctx, span := c.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(b.trace)), "segmentation.apply_feedback",
		trace.WithAttributes(attribute.Int("messages", len(msgs)), attribute.Int("attempt", attempt)))
	defer span.End()
	start := time.Now()
	n, err := c.scorer.MarkAgony(ctx, store.AgonyBatch{Marks: b.marks, Extra: b.dead, Now: c.now().UTC()})
	if err != nil {
		span.RecordError(err)
		return nil, err
	}
	c.batchTime.Record(ctx, time.Since(start).Seconds())
	c.marks.Add(ctx, int64(n), metric.WithAttributes(attribute.String("outcome", "applied")))
	c.marks.Add(ctx, int64(len(b.marks)-n), metric.WithAttributes(attribute.String("outcome", "ignored")))
	if len(b.dead) > 0 {
		c.marks.Add(ctx, int64(len(b.dead)), metric.WithAttributes(attribute.String("outcome", "dead_letter")))
		c.log.WarnContext(ctx, "messages on FEEDBACK dead-lettered", "count", len(b.dead))
	}
	c.relay.Notify()
	return nil, nil
}
