package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/busrouter"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/orderjson"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/webhook"
)

// RouteOrders is the name of the consumer of the shops' order subjects in
// metrics, logs and spans.
const RouteOrders = "ingest.orders"

// Ingester is the use case the consumer hands its batches to.
type Ingester interface {
	IngestOrders(ctx context.Context, items []app.Item, dead []outbox.Message) ([]app.Result, error)
}

// Options configures the consumer.
type Options struct {
	// MaxPayload bounds an input message in bytes.
	MaxPayload int
	// MaxAttempts is how often a message that fails on its own (not a
	// rejection: an error) is tried before it is dead-lettered.
	MaxAttempts int
	// WaitForOrder is how long a refund or cancellation whose order has
	// not arrived yet is kept coming back before it is dead-lettered
	// (shops publish from several systems, and redelivery after a crash
	// can reorder messages).
	WaitForOrder time.Duration
	// LaterDelay is how long a message put off waits (the batch consumer's
	// redelivery delay).
	LaterDelay time.Duration
	// Ping checks the database: nothing is dead-lettered for failing
	// while it does not answer.
	Ping func(context.Context) error
}

// Orders returns the route of the shops' order subjects. Decoding (size,
// subject, body, platform mapping, field rules) runs in parallel, ahead of
// the batch in hand; a batch is ingested in one transaction. A message is
// one order, or a shop platform's webhook delivery that tells of several
// (or none).
func Orders(in Ingester, val *grpcx.Validator, opts Options) busrouter.Route[[]app.Item] {
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = 256 << 10
	}
	if opts.LaterDelay <= 0 {
		opts.LaterDelay = 30 * time.Second
	}
	c := &orders{in: in, val: val, opts: opts}
	return busrouter.Route[[]app.Item]{
		Name:   RouteOrders,
		Decode: c.decode,
		// Only a decoder panic is not a rejection: the input is what
		// could not be read.
		InvalidReason: ingest.ReasonMalformed,
		DeadLetter: func(m jetstream.Msg, reason, detail string) outbox.Message {
			source, _ := sourceOf(m.Subject())
			return DeadLetter(m, source, reason, detail)
		},
		Handle:      c.handle,
		Parallel:    true,
		MaxAttempts: opts.MaxAttempts,
		Healthy:     opts.Ping,
	}
}

// OutcomeIgnored counts a webhook delivery that tells of no order event.
const OutcomeIgnored = "ignored"

type orders struct {
	in   Ingester
	val  *grpcx.Validator
	opts Options
}

// handle ingests a batch: a rejection waiting for its order's history
// puts its message off (the message's other orders are applied now and
// are duplicates when it comes back), any other is dead-lettered in the
// transaction.
func (c *orders) handle(ctx context.Context, b busrouter.Batch[[]app.Item]) (busrouter.Result, error) {
	var items []app.Item
	for _, m := range b.Messages {
		items = append(items, m.Body...)
	}
	results, err := c.in.IngestOrders(ctx, items, b.Dead)
	if err != nil {
		return busrouter.Result{}, err
	}
	var res busrouter.Result
	count := map[string]int{}
	next := 0
	for _, m := range b.Messages {
		rs := results[next : next+len(m.Body)]
		next += len(m.Body)
		switch outcome := messageOutcome(rs); outcome {
		case busrouter.OutcomeLater:
			res.Later = append(res.Later, m.Msg)
		case busrouter.OutcomeApplied:
		default:
			count[outcome]++
		}
	}
	if len(count) > 0 {
		res.Count = count
	}
	return res, nil
}

// messageOutcome is what became of a message from the results of its
// orders: put off when one of them is, applied when one of them produced
// an event, else dead-lettered when one was rejected, a duplicate when
// all were, and ignored when it had none.
func messageOutcome(rs []app.Result) string {
	if len(rs) == 0 {
		return OutcomeIgnored
	}
	var accepted, rejected bool
	for _, r := range rs {
		switch {
		case r.Later:
			return busrouter.OutcomeLater
		case r.Outcome == ingest.Rejected:
			rejected = true
		case r.Outcome != ingest.Duplicate:
			accepted = true
		}
	}
	switch {
	case accepted:
		return busrouter.OutcomeApplied
	case rejected:
		return busrouter.OutcomeDeadLetter
	}
	return busrouter.OutcomeDuplicate
}

// waitForOrder reports whether a refund or cancellation of an order not
// seen yet should come back later rather than be dead-lettered now.
func (c *orders) waitForOrder(m jetstream.Msg) bool {
	meta, err := m.Metadata()
	if err != nil {
		return false
	}
	waited := time.Duration(meta.NumDelivered-1) * c.opts.LaterDelay
	return waited < c.opts.WaitForOrder
}

// decode turns a message into its items, or a *busrouter.Rejection that
// parks it. Each item's OnReject puts a refund or cancellation of an
// unknown order off while waitForOrder allows, and dead-letters any other
// rejection.
func (c *orders) decode(ctx context.Context, m jetstream.Msg) ([]app.Item, error) {
	source, ok := sourceOf(m.Subject())
	if !ok {
		return nil, busrouter.Reject(ingest.ReasonBadSubject, "subject %q: want %s<source> with a source of lower-case letters, digits, '-' and '_'", m.Subject(), InputPrefix)
	}
	data := m.Data()
	if len(data) > c.opts.MaxPayload {
		return nil, busrouter.Reject(ingest.ReasonTooLarge, "%d bytes, the limit is %d", len(data), c.opts.MaxPayload)
	}
	orders, err := decodeOrders(m.Headers(), data)
	if err != nil {
		var je *orderjson.Error
		switch {
		case errors.Is(err, money.ErrUnknownCurrency):
			return nil, busrouter.Reject(ingest.ReasonUnknownCurr, "%v", err)
		case errors.As(err, &je) && !errors.Is(err, orderjson.ErrSyntax):
			return nil, busrouter.Reject(ingest.ReasonInvalid, "%v", err)
		default:
			return nil, busrouter.Reject(ingest.ReasonMalformed, "%v", err)
		}
	}
	tc := nats.Header{}
	natsx.InjectTrace(ctx, tc)
	items := make([]app.Item, 0, len(orders))
	for i, order := range orders {
		switch order.Source {
		case "":
			order.Source = source
		case source:
		default:
			return nil, busrouter.Reject(ingest.ReasonSourceMismatch, "body names source %q, subject %q", order.Source, source)
		}
		violations, err := Check(c.val, order)
		if err != nil {
			return nil, busrouter.Reject(ingest.ReasonInvalid, "%v", err)
		}
		if len(violations) > 0 {
			detail := grpcx.Summary(violations)
			if len(orders) > 1 {
				detail = fmt.Sprintf("order event %d of %d (%s %s): %s", i+1, len(orders), order.GetOrderId(), orderbus.KindToken(order.GetKind()), detail)
			}
			return nil, busrouter.Reject(ingest.ReasonInvalid, "%s", detail)
		}
		items = append(items, app.Item{
			Order: order,
			Trace: tc,
			OnReject: func(r *ingest.Rejection) ([]outbox.Message, bool) {
				if ingest.AwaitsHistory(r) && c.waitForOrder(m) {
					return nil, true
				}
				if len(orders) == 1 {
					return []outbox.Message{DeadLetter(m, source, r.Reason, r.Message)}, false
				}
				dl := DeadLetter(m, source, r.Reason, fmt.Sprintf("order event %d of %d (%s %s): %s", i+1, len(orders), order.GetOrderId(), orderbus.KindToken(order.GetKind()), r.Message))
				dl.ID += "-" + strconv.Itoa(i+1)
				return []outbox.Message{dl}, false
			},
		})
	}
	return items, nil
}

// decodeOrders reads the orders of a message: a platform's delivery
// through its Map, anything else as one canonical order.
func decodeOrders(h nats.Header, data []byte) ([]*ingestv1.Order, error) {
	name := h.Get(webhook.HeaderPlatform)
	if name == "" {
		o, err := Decode(h, data)
		if err != nil {
			return nil, err
		}
		return []*ingestv1.Order{o}, nil
	}
	p, ok := webhook.Lookup(name)
	if !ok || p.Map == nil {
		return nil, fmt.Errorf("%w: %s %q is not a platform with its own format", orderjson.ErrSyntax, webhook.HeaderPlatform, name)
	}
	return p.Map(h, data)
}
