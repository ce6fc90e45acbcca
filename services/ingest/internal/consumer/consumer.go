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
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/events"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/orderjson"
)

var sourcePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Options configures the consumer.
type Options struct {
	// MaxPayload bounds an input message in bytes.
	MaxPayload int
	// MaxAttempts is how often a message that fails on its own (not a
	// rejection: an error) is tried before it is dead-lettered. Nothing is
	// dead-lettered while the database is unreachable.
	MaxAttempts int
	// WaitForOrder is how long a refund or cancellation whose order has
	// not arrived yet is kept coming back before it is dead-lettered
	// (shops publish from several systems, and redelivery after a crash
	// can reorder messages).
	WaitForOrder time.Duration
	// LaterDelay is how long a message put off waits (the batch consumer's
	// redelivery delay).
	LaterDelay time.Duration
	// Ping checks the database: a failing batch is not blamed on its
	// messages while the database is down.
	Ping func(context.Context) error
}

// Consumer decodes, validates and ingests input messages.
type Consumer struct {
	in     *app.App
	val    *grpcx.Validator
	opts   Options
	log    *slog.Logger
	tracer trace.Tracer
	delay  metric.Float64Histogram
	batch  metric.Float64Histogram
}

// New returns a consumer.
func New(in *app.App, val *grpcx.Validator, opts Options, log *slog.Logger, tp trace.TracerProvider, meter metric.Meter) (*Consumer, error) {
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = 256 << 10
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.LaterDelay <= 0 {
		opts.LaterDelay = 30 * time.Second
	}
	delay, err := meter.Float64Histogram("boomerang.ingest.delay",
		metric.WithDescription("Time from a shop's publish to the commit of its order"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
	if err != nil {
		return nil, err
	}
	batch, err := meter.Float64Histogram("boomerang.ingest.batch.duration",
		metric.WithDescription("Time to apply one batch of input in its transaction"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
	if err != nil {
		return nil, err
	}
	return &Consumer{in: in, val: val, opts: opts, log: log, tracer: tp.Tracer("boomerang/ingest/consumer"), delay: delay, batch: batch}, nil
}

// Batch is a decoded batch, ready to be applied.
type Batch struct {
	items  []app.Item
	dead   []outbox.Message
	putOff []bool
	spans  []trace.Span
}

// Handle is a natsx.BatchHandler: Prepare then Apply.
func (c *Consumer) Handle(ctx context.Context, msgs []jetstream.Msg, attempt int) ([]jetstream.Msg, error) {
	return c.Apply(ctx, msgs, c.Prepare(ctx, msgs), attempt)
}

// Prepare decodes and checks a batch: pure CPU work, done while the
// previous batch is being applied.
func (c *Consumer) Prepare(ctx context.Context, msgs []jetstream.Msg) *Batch {
	b := &Batch{items: make([]app.Item, 0, len(msgs)), putOff: make([]bool, len(msgs)), spans: make([]trace.Span, 0, len(msgs))}
	for _, m := range msgs {
		_, span := c.tracer.Start(natsx.ExtractTrace(ctx, m.Headers()), "ingest order",
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.destination.name", m.Subject())))
		b.spans = append(b.spans, span)
	}
	// Spread the work over the cores; the batch keeps its order.
	decoded := make([]decodedMsg, len(msgs))
	parallel(len(msgs), func(i int) {
		mctx := trace.ContextWithSpan(ctx, b.spans[i])
		decoded[i].item, decoded[i].dead = c.decode(mctx, msgs[i], func() bool {
			if c.waitForOrder(msgs[i]) {
				b.putOff[i] = true
				return true
			}
			return false
		})
	})
	for i, d := range decoded {
		if d.dead != nil {
			b.spans[i].SetStatus(codes.Error, d.dead.Header.Get(events.HeaderReason))
			b.dead = append(b.dead, *d.dead)
			continue
		}
		b.items = append(b.items, d.item)
	}
	return b
}

// Apply ingests a prepared batch in one transaction and returns the
// messages put off for later.
func (c *Consumer) Apply(ctx context.Context, msgs []jetstream.Msg, b *Batch, attempt int) ([]jetstream.Msg, error) {
	defer func() {
		for _, s := range b.spans {
			s.End()
		}
	}()
	items, dead, putOff := b.items, b.dead, b.putOff
	start := time.Now()
	_, err := c.in.IngestOrders(ctx, items, dead)
	if err == nil {
		now := time.Now()
		c.batch.Record(ctx, now.Sub(start).Seconds())
		for _, m := range msgs {
			if meta, err := m.Metadata(); err == nil {
				c.delay.Record(ctx, now.Sub(meta.Timestamp).Seconds())
			}
		}
		var later []jetstream.Msg
		for i, p := range putOff {
			if p {
				later = append(later, msgs[i])
			}
		}
		return later, nil
	}
	if len(msgs) == 1 {
		return nil, c.failed(ctx, msgs[0], attempt, err)
	}
	// Apply one at a time, so that one message that cannot be applied does
	// not hold back the others.
	c.log.WarnContext(ctx, "batch failed; applying its messages one by one", "size", len(msgs), "error", err)
	var later []jetstream.Msg
	for _, m := range msgs {
		l, err := c.Handle(ctx, []jetstream.Msg{m}, attempt)
		if err != nil {
			return nil, err
		}
		later = append(later, l...)
	}
	return later, nil
}

// waitForOrder reports whether a refund or cancellation of an order not
// seen yet should come back later rather than be dead-lettered now.
func (c *Consumer) waitForOrder(m jetstream.Msg) bool {
	meta, err := m.Metadata()
	if err != nil {
		return false
	}
	waited := time.Duration(meta.NumDelivered-1) * c.opts.LaterDelay
	return waited < c.opts.WaitForOrder
}

// failed decides about a single message that could not be applied: while
// it has attempts left, or the database is unreachable, the batch is tried
// again (the cause may be passing); then it is dead-lettered, so that one
// message cannot wedge the consumer.
func (c *Consumer) failed(ctx context.Context, m jetstream.Msg, attempt int, cause error) error {
	if attempt < c.opts.MaxAttempts {
		return cause
	}
	if c.opts.Ping != nil {
		if err := c.opts.Ping(ctx); err != nil {
			return errors.Join(cause, fmt.Errorf("database unreachable: %w", err))
		}
	}
	source, _ := sourceOf(m.Subject())
	c.log.ErrorContext(ctx, "dead-lettering a message that failed repeatedly", "subject", m.Subject(),
		"attempts", attempt, "error", cause)
	dl := events.DeadLetter(m, source, ingest.ReasonFailed, cause.Error())
	if _, err := c.in.IngestOrders(ctx, nil, []outbox.Message{dl}); err != nil {
		return errors.Join(cause, err)
	}
	return nil
}

type decodedMsg struct {
	item app.Item
	dead *outbox.Message
}

// parallel runs fn(0..n-1) on up to GOMAXPROCS goroutines.
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

func sourceOf(subject string) (string, bool) {
	s, ok := strings.CutPrefix(subject, events.InputPrefix)
	if !ok || !sourcePattern.MatchString(s) {
		return "", false
	}
	return s, true
}

// decode turns a message into an item, or into its dead letter. waitOrder
// decides, for a refund or cancellation of an unknown order, whether to
// put the message off instead of dead-lettering it.
func (c *Consumer) decode(ctx context.Context, m jetstream.Msg, waitOrder func() bool) (app.Item, *outbox.Message) {
	source, ok := sourceOf(m.Subject())
	deadLetter := func(reason, format string, args ...any) (app.Item, *outbox.Message) {
		dl := events.DeadLetter(m, source, reason, fmt.Sprintf(format, args...))
		return app.Item{}, &dl
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
	violations, err := Check(c.val, order)
	if err != nil {
		return deadLetter(ingest.ReasonInvalid, "%v", err)
	}
	if len(violations) > 0 {
		return deadLetter(ingest.ReasonInvalid, "%s", grpcx.Summary(violations))
	}
	tc := nats.Header{}
	natsx.InjectTrace(ctx, tc)
	return app.Item{
		Order: order,
		Trace: tc,
		OnReject: func(r *ingest.Rejection) ([]outbox.Message, bool) {
			if ingest.AwaitsHistory(r) && waitOrder() {
				return nil, true
			}
			return []outbox.Message{events.DeadLetter(m, source, r.Reason, r.Message)}, false
		},
	}, nil
}

// Check applies every field rule of an order: those declared in
// ingest.proto and the text rules of ingest.CheckText. The gRPC port
// applies the same (the server validates the .proto rules of each
// request, the port the text rules).
func Check(val *grpcx.Validator, o *ingestv1.Order) ([]grpcx.FieldViolation, error) {
	violations, err := val.Check(o)
	if err != nil {
		return nil, err
	}
	for _, v := range ingest.CheckText(o) {
		violations = append(violations, grpcx.FieldViolation{Field: v.Field, Description: v.Description})
	}
	return violations, nil
}

// notUTF8 returns the path of the first string field in the protobuf
// message b (of type md) that is not UTF-8, or "" if it finds none: the
// protobuf runtime does not say which field it refused.
func notUTF8(b []byte, md protoreflect.MessageDescriptor, prefix string) string {
	seen := map[protowire.Number]int{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return ""
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		name := prefix + string(fd.Name())
		if fd.IsList() {
			name += "[" + strconv.Itoa(seen[num]) + "]"
			seen[num]++
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				return name
			}
		case protoreflect.MessageKind:
			if p := notUTF8(v, fd.Message(), name+"."); p != "" {
				return p
			}
		}
	}
	return ""
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
		// The protobuf runtime refuses a string field that is not UTF-8
		// and names the problem only in its text: that is a broken text
		// rule (invalid), as it is in JSON, not an undecodable message.
		if strings.Contains(err.Error(), "invalid UTF-8") {
			if field := notUTF8(data, o.ProtoReflect().Descriptor(), ""); field != "" {
				return nil, &orderjson.Error{Field: field, Err: errors.New("must be valid UTF-8")}
			}
			return nil, &orderjson.Error{Err: fmt.Errorf("a string field is not valid UTF-8: %v", err)}
		}
		return nil, fmt.Errorf("%w: protobuf: %v", orderjson.ErrSyntax, err)
	}
	return o, nil
}
