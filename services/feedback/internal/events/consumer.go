package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/intake"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/store"
)

// DeadLetterService names the feedback service in dead-letter subjects.
const DeadLetterService = "feedback"

// Dead-letter reasons.
const (
	ReasonUnknownKind = "unknown_kind"
	ReasonUndecodable = "undecodable"
	ReasonInvalid     = "invalid_input"
	// ReasonFailed: the message kept failing while the database answered.
	ReasonFailed = "processing_failed"
)

// Options tune the consumer.
type Options struct {
	// MaxAttempts is how often one message may fail, while Ping says the
	// database answers, before it is dead-lettered (processing_failed).
	MaxAttempts int
	Ping        func(context.Context) error
}

// Consumer stores the intake published on FEEDBACK_IN.
type Consumer struct {
	intake    *intake.Intake
	validator *grpcx.Validator
	log       *slog.Logger
	tracer    trace.Tracer
	applied   metric.Int64Counter
	onCommit  atomic.Pointer[func()]
	opts      Options
	isolated  natsx.BatchHandler
}

// NewConsumer returns the consumer; natsx.BatchConsumer feeds it.
func NewConsumer(in *intake.Intake, v *grpcx.Validator, opts Options, log *slog.Logger, tp trace.TracerProvider, meter metric.Meter) (*Consumer, error) {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	applied, err := meter.Int64Counter("boomerang.feedback.intake",
		metric.WithDescription("Feedback messages consumed from the bus, by outcome"))
	if err != nil {
		return nil, err
	}
	c := &Consumer{intake: in, validator: v, log: log, tracer: tp.Tracer("boomerang/feedback/consumer"), applied: applied, opts: opts}
	c.isolated = natsx.Isolate(c.handle, natsx.IsolateOptions{MaxAttempts: opts.MaxAttempts, Healthy: opts.Ping, Park: c.park, Log: log})
	return c, nil
}

// OnCommit sets a function called after each committed batch (the relay's
// Notify).
func (c *Consumer) OnCommit(fn func()) { c.onCommit.Store(&fn) }

// Decode reads one intake message: its kind from the subject, the payload
// as that kind's request, checked against the .proto rules. An error comes
// with the dead-letter reason.
func Decode(v *grpcx.Validator, subject string, data []byte) (store.Input, string, error) {
	kind, source := split(subject)
	var req proto.Message
	switch kind {
	case InSurvey:
		req = &feedbackv1.SubmitSurveyResponseRequest{}
	case InReview:
		req = &feedbackv1.SubmitReviewRequest{}
	case InReviewResponse:
		req = &feedbackv1.RespondToReviewRequest{}
	case InTicket:
		req = &feedbackv1.RecordTicketEventRequest{}
	default:
		return store.Input{}, ReasonUnknownKind, fmt.Errorf("unknown intake kind %q (from %q)", kind, source)
	}
	if err := proto.Unmarshal(data, req); err != nil {
		return store.Input{}, ReasonUndecodable, fmt.Errorf("not a %s: %v", req.ProtoReflect().Descriptor().FullName(), err)
	}
	// Survey tools and help desks are the subject's source: a message may
	// leave it out but not name another.
	switch r := req.(type) {
	case *feedbackv1.SubmitSurveyResponseRequest:
		if err := sourceOf(&r.Source, source); err != nil {
			return store.Input{}, ReasonInvalid, err
		}
	case *feedbackv1.RecordTicketEventRequest:
		if err := sourceOf(&r.Source, source); err != nil {
			return store.Input{}, ReasonInvalid, err
		}
	}
	violations, err := v.Check(req)
	if err != nil {
		return store.Input{}, ReasonInvalid, err
	}
	violations = append(violations, intake.Check(req)...)
	if len(violations) > 0 {
		return store.Input{}, ReasonInvalid, errors.New(grpcx.Summary(violations))
	}
	switch r := req.(type) {
	case *feedbackv1.SubmitSurveyResponseRequest:
		return store.Input{Response: intake.FromSurvey(r)}, "", nil
	case *feedbackv1.SubmitReviewRequest:
		return store.Input{Review: intake.FromReview(r)}, "", nil
	case *feedbackv1.RespondToReviewRequest:
		return store.Input{ReviewResponse: intake.FromReviewResponse(r)}, "", nil
	case *feedbackv1.RecordTicketEventRequest:
		return store.Input{Ticket: intake.FromTicketEvent(r)}, "", nil
	}
	return store.Input{}, ReasonUnknownKind, fmt.Errorf("unknown intake kind %q", kind)
}

// sourceOf fills a message's source in from its subject's.
func sourceOf(field *string, subject string) error {
	switch *field {
	case "":
		*field = subject
	case subject:
	default:
		return fmt.Errorf("source: the message names %q, its subject %q", *field, subject)
	}
	return nil
}

// split returns the kind and source tokens of an intake subject.
func split(subject string) (kind, source string) {
	rest := strings.TrimPrefix(subject, InPrefix)
	kind, source, _ = strings.Cut(rest, ".")
	return kind, source
}

// Handle is a natsx.BatchHandler: the valid messages are stored, the
// others dead-lettered with the reason, in one transaction. A batch that
// fails is applied message by message, and a message that keeps failing
// while the database answers is dead-lettered, so that it cannot hold up
// all intake. Free text is never logged.
func (c *Consumer) Handle(ctx context.Context, msgs []jetstream.Msg, attempt int) ([]jetstream.Msg, error) {
	return c.isolated(ctx, msgs, attempt)
}

// park dead-letters a message that keeps failing while the database
// answers, rather than stop all intake behind it.
func (c *Consumer) park(ctx context.Context, m jetstream.Msg, err error) error {
	_, source := split(m.Subject())
	dl := orderbus.DeadLetter(m, DeadLetterService, source, ReasonFailed, err.Error())
	if _, err := c.intake.Apply(ctx, nil, []outbox.Message{dl}); err != nil {
		return err
	}
	c.applied.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "dead_letter")))
	if fn := c.onCommit.Load(); fn != nil {
		(*fn)()
	}
	return nil
}

func (c *Consumer) handle(ctx context.Context, msgs []jetstream.Msg, attempt int) ([]jetstream.Msg, error) {
	in := make([]store.Input, 0, len(msgs))
	var dead []outbox.Message
	spans := make([]trace.Span, 0, len(msgs))
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()
	for _, m := range msgs {
		mctx, span := c.tracer.Start(natsx.ExtractTrace(ctx, m.Headers()), "store feedback",
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.destination.name", m.Subject())))
		spans = append(spans, span)
		x, reason, err := Decode(c.validator, m.Subject(), m.Data())
		if err != nil {
			span.SetStatus(codes.Error, reason)
			_, source := split(m.Subject())
			dead = append(dead, orderbus.DeadLetter(m, DeadLetterService, source, reason, err.Error()))
			continue
		}
		x.Ctx = mctx
		in = append(in, x)
	}
	start := time.Now()
	res, err := c.intake.Apply(ctx, in, dead)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		c.log.ErrorContext(ctx, "feedback batch not stored", "size", len(msgs), "attempt", attempt, "error", err)
		return nil, err
	}
	var applied, dup int64
	for _, o := range res.Outcomes {
		if o == store.Duplicate {
			dup++
		} else {
			applied++
		}
	}
	c.applied.Add(ctx, applied, metric.WithAttributes(attribute.String("outcome", "applied")))
	c.applied.Add(ctx, dup, metric.WithAttributes(attribute.String("outcome", "duplicate")))
	c.applied.Add(ctx, int64(len(dead)), metric.WithAttributes(attribute.String("outcome", "dead_letter")))
	if len(res.Cases) > 0 {
		c.log.InfoContext(ctx, "agony detected", "cases", len(res.Cases), "duration", time.Since(start))
	}
	if fn := c.onCommit.Load(); fn != nil {
		(*fn)()
	}
	return nil, nil
}
