package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/busrouter"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/orderjson"
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
// subject, body, field rules) runs in parallel, ahead of the batch in
// hand; a batch is ingested in one transaction.
func Orders(in Ingester, val *grpcx.Validator, opts Options) busrouter.Route[app.Item] {
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = 256 << 10
	}
	if opts.LaterDelay <= 0 {
		opts.LaterDelay = 30 * time.Second
	}
	c := &orders{in: in, val: val, opts: opts}
	return busrouter.Route[app.Item]{
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

type orders struct {
	in   Ingester
	val  *grpcx.Validator
	opts Options
}

// handle ingests a batch: a rejection waiting for its order's history is
// put off, any other is dead-lettered in the transaction.
func (c *orders) handle(ctx context.Context, b busrouter.Batch[app.Item]) (busrouter.Result, error) {
	items := make([]app.Item, len(b.Messages))
	for i, m := range b.Messages {
		items[i] = m.Body
	}
	results, err := c.in.IngestOrders(ctx, items, b.Dead)
	if err != nil {
		return busrouter.Result{}, err
	}
	var res busrouter.Result
	var duplicates, rejected int
	for i, r := range results {
		switch {
		case r.Later:
			res.Later = append(res.Later, b.Messages[i].Msg)
		case r.Outcome == ingest.Duplicate:
			duplicates++
		case r.Outcome == ingest.Rejected:
			rejected++
		}
	}
	if duplicates+rejected > 0 {
		res.Count = map[string]int{busrouter.OutcomeDuplicate: duplicates, busrouter.OutcomeDeadLetter: rejected}
	}
	return res, nil
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

// decode turns a message into an item, or a *busrouter.Rejection that
// parks it. The item's OnReject puts a refund or cancellation of an
// unknown order off while waitForOrder allows, and dead-letters any other
// rejection.
func (c *orders) decode(ctx context.Context, m jetstream.Msg) (app.Item, error) {
	source, ok := sourceOf(m.Subject())
	if !ok {
		return app.Item{}, busrouter.Reject(ingest.ReasonBadSubject, "subject %q: want %s<source> with a source of lower-case letters, digits, '-' and '_'", m.Subject(), InputPrefix)
	}
	data := m.Data()
	if len(data) > c.opts.MaxPayload {
		return app.Item{}, busrouter.Reject(ingest.ReasonTooLarge, "%d bytes, the limit is %d", len(data), c.opts.MaxPayload)
	}
	order, err := Decode(m.Headers(), data)
	if err != nil {
		var je *orderjson.Error
		switch {
		case errors.Is(err, money.ErrUnknownCurrency):
			return app.Item{}, busrouter.Reject(ingest.ReasonUnknownCurr, "%v", err)
		case errors.As(err, &je) && !errors.Is(err, orderjson.ErrSyntax):
			return app.Item{}, busrouter.Reject(ingest.ReasonInvalid, "%v", err)
		default:
			return app.Item{}, busrouter.Reject(ingest.ReasonMalformed, "%v", err)
		}
	}
	switch order.Source {
	case "":
		order.Source = source
	case source:
	default:
		return app.Item{}, busrouter.Reject(ingest.ReasonSourceMismatch, "body names source %q, subject %q", order.Source, source)
	}
	violations, err := Check(c.val, order)
	if err != nil {
		return app.Item{}, busrouter.Reject(ingest.ReasonInvalid, "%v", err)
	}
	if len(violations) > 0 {
		return app.Item{}, busrouter.Reject(ingest.ReasonInvalid, "%s", grpcx.Summary(violations))
	}
	tc := nats.Header{}
	natsx.InjectTrace(ctx, tc)
	return app.Item{
		Order: order,
		Trace: tc,
		OnReject: func(r *ingest.Rejection) ([]outbox.Message, bool) {
			if ingest.AwaitsHistory(r) && c.waitForOrder(m) {
				return nil, true
			}
			return []outbox.Message{DeadLetter(m, source, r.Reason, r.Message)}, false
		},
	}, nil
}
