// Package consumer takes the order events shops publish on
// boomerang.ingest.orders.<source> (JSON, CloudEvents JSON or protobuf) and
// ingests them in batches. Input that cannot be accepted is parked on the
// dead-letter stream with its reason, in the same transaction, and acked:
// no message can crash or wedge the consumer.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/events"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/intake"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/orderjson"
)

var sourcePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Options configures the consumer.
type Options struct {
	// MaxPayload bounds an input message in bytes.
	MaxPayload int
	// MaxAttempts is how often a message that fails on its own (not a
	// rejection: an error) is tried before it is dead-lettered.
	MaxAttempts int
}

// Consumer decodes, validates and ingests input messages.
type Consumer struct {
	in     *intake.Intake
	val    *grpcx.Validator
	opts   Options
	log    *slog.Logger
	tracer trace.Tracer
}

// New returns a consumer.
func New(in *intake.Intake, val *grpcx.Validator, opts Options, log *slog.Logger, tp trace.TracerProvider) *Consumer {
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = 256 << 10
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	return &Consumer{in: in, val: val, opts: opts, log: log, tracer: tp.Tracer("boomerang/ingest/consumer")}
}

// Handle is a natsx.BatchHandler.
func (c *Consumer) Handle(ctx context.Context, msgs []jetstream.Msg) error {
	items := make([]intake.Item, 0, len(msgs))
	var dead []outbox.Message
	spans := make([]trace.Span, 0, len(msgs))
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()
	for _, m := range msgs {
		mctx, span := c.tracer.Start(natsx.ExtractTrace(ctx, m.Headers()), "ingest order",
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.destination.name", m.Subject())))
		spans = append(spans, span)
		item, dl := c.decode(mctx, m)
		if dl != nil {
			span.SetStatus(codes.Error, dl.Header.Get(events.HeaderReason))
			dead = append(dead, *dl)
			continue
		}
		items = append(items, item)
	}
	_, err := c.in.Ingest(ctx, items, dead)
	if err == nil {
		return nil
	}
	if len(msgs) == 1 {
		return c.failed(ctx, msgs[0], err)
	}
	// Apply one at a time, so that one message that cannot be applied does
	// not hold back the others.
	c.log.WarnContext(ctx, "batch failed; applying its messages one by one", "size", len(msgs), "error", err)
	for _, m := range msgs {
		if err := c.Handle(ctx, []jetstream.Msg{m}); err != nil {
			return err
		}
	}
	return nil
}

// failed decides about a single message that could not be applied: hand
// it back while it has attempts left (the cause may be passing, such as a
// database restart), then dead-letter it.
func (c *Consumer) failed(ctx context.Context, m jetstream.Msg, cause error) error {
	meta, err := m.Metadata()
	if err != nil || int(meta.NumDelivered) < c.opts.MaxAttempts {
		return cause
	}
	source, _ := sourceOf(m.Subject())
	c.log.ErrorContext(ctx, "dead-lettering a message that failed repeatedly", "subject", m.Subject(),
		"stream_seq", meta.Sequence.Stream, "attempts", meta.NumDelivered, "error", cause)
	dl := events.DeadLetter(m, source, ingest.ReasonFailed, cause.Error())
	if _, err := c.in.Ingest(ctx, nil, []outbox.Message{dl}); err != nil {
		return errors.Join(cause, err)
	}
	return nil
}

func sourceOf(subject string) (string, bool) {
	s, ok := strings.CutPrefix(subject, events.InputPrefix)
	if !ok || !sourcePattern.MatchString(s) {
		return "", false
	}
	return s, true
}

// decode turns a message into an item, or into its dead letter.
func (c *Consumer) decode(ctx context.Context, m jetstream.Msg) (intake.Item, *outbox.Message) {
	source, ok := sourceOf(m.Subject())
	deadLetter := func(reason, format string, args ...any) (intake.Item, *outbox.Message) {
		dl := events.DeadLetter(m, source, reason, fmt.Sprintf(format, args...))
		return intake.Item{}, &dl
	}
	if !ok {
		return deadLetter(ingest.ReasonBadSubject, "subject %q: want %s<source> with a source of lower-case letters, digits, '-' and '_'", m.Subject(), events.InputPrefix)
	}
	data := m.Data()
	if len(data) > c.opts.MaxPayload {
		return deadLetter(ingest.ReasonTooLarge, "%d bytes, the limit is %d", len(data), c.opts.MaxPayload)
	}
	order, err := Decode(m.Headers(), data)
	if err != nil {
		var je *orderjson.Error
		switch {
		case errors.Is(err, money.ErrUnknownCurrency):
			return deadLetter(ingest.ReasonUnknownCurr, "%v", err)
		case errors.As(err, &je) && !errors.Is(err, orderjson.ErrSyntax):
			return deadLetter(ingest.ReasonInvalid, "%v", err)
		default:
			return deadLetter(ingest.ReasonMalformed, "%v", err)
		}
	}
	switch order.Source {
	case "":
		order.Source = source
	case source:
	default:
		return deadLetter(ingest.ReasonSourceMismatch, "body names source %q, subject %q", order.Source, source)
	}
	violations, err := c.val.Check(order)
	if err != nil {
		return deadLetter(ingest.ReasonInvalid, "%v", err)
	}
	if len(violations) > 0 {
		return deadLetter(ingest.ReasonInvalid, "%s", grpcx.Summary(violations))
	}
	tc := nats.Header{}
	natsx.InjectTrace(ctx, tc)
	return intake.Item{
		Order: order,
		Trace: tc,
		OnReject: func(r *ingest.Rejection) []outbox.Message {
			return []outbox.Message{events.DeadLetter(m, source, r.Reason, r.Message)}
		},
	}, nil
}

// Decode reads an order from a message body: protobuf when the
// Content-Type says so, JSON (plain or CloudEvents) when it says so, and
// otherwise JSON when the body starts with '{' and protobuf when not.
func Decode(h nats.Header, data []byte) (*ingestv1.Order, error) {
	ct := strings.ToLower(h.Get(natsx.HeaderContentType))
	isJSON := strings.Contains(ct, "json")
	if ct == "" {
		trimmed := strings.TrimLeft(string(data[:min(len(data), 64)]), " \t\r\n")
		isJSON = strings.HasPrefix(trimmed, "{")
	} else if !isJSON && !strings.Contains(ct, "protobuf") {
		return nil, fmt.Errorf("%w: unsupported content type %q", orderjson.ErrSyntax, ct)
	}
	if isJSON {
		return orderjson.Decode(data)
	}
	o := &ingestv1.Order{}
	if err := proto.Unmarshal(data, o); err != nil {
		return nil, fmt.Errorf("%w: protobuf: %v", orderjson.ErrSyntax, err)
	}
	return o, nil
}
