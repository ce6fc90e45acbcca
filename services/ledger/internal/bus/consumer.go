package bus

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/busrouter"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/ordergate"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// RouteName names the consumer of canonical order events in metrics
// (boomerang.consumer.*{consumer}), logs and spans.
const RouteName = "ledger.orders"

// ReasonInvalid is the dead-letter reason of a message that is not a
// canonical order event.
const ReasonInvalid = "invalid_event"

// Orders is the use case the consumer runs (app.App).
type Orders interface {
	ApplyOrders(ctx context.Context, p *ledger.Programme, in []app.Input, dead []outbox.Message) ([]ledger.Outcome, error)
}

var _ Orders = (*app.App)(nil)

// Programme returns the programme in force (it may be reloaded).
type Programme func() *ledger.Programme

// Options are the consumer's dependencies and tuning.
type Options struct {
	// LaterDelay is how long an event waiting for an earlier event of its
	// order is put off; WaitForOrder is how long it may wait in all before
	// it is dead-lettered (its predecessor is gone from the stream).
	LaterDelay, WaitForOrder time.Duration
	// MaxAttempts is how often one event may fail, while Healthy says the
	// database answers, before it is dead-lettered (processing_failed).
	MaxAttempts int
	Healthy     func(context.Context) error
	// OnCommit is called after each committed batch (the relay's Notify).
	OnCommit func()
	// Log receives the gap warnings (default: slog.Default()).
	Log *slog.Logger
}

// Route is the consumer of the canonical order events: each batch is
// applied to the ledger in one transaction (app.ApplyOrders) with the dead
// letters of the messages that are not order events; an event waiting for
// an earlier event of its order comes back after LaterDelay, and is
// dead-lettered (ordergate.ReasonGap) once it has waited WaitForOrder.
func Route(orders Orders, programme Programme, o Options) busrouter.Route[*ordersv1.OrderEvent] {
	if o.LaterDelay <= 0 {
		o.LaterDelay = 2 * time.Second
	}
	if o.WaitForOrder <= 0 {
		o.WaitForOrder = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	c := &consumer{orders: orders, programme: programme, opts: o}
	return busrouter.Route[*ordersv1.OrderEvent]{
		Name: RouteName,
		Decode: func(_ context.Context, m jetstream.Msg) (*ordersv1.OrderEvent, error) {
			return orderbus.Decode(m)
		},
		InvalidReason: ReasonInvalid,
		DeadLetter:    deadLetter,
		Handle:        c.handle,
		MaxAttempts:   o.MaxAttempts,
		Healthy:       o.Healthy,
		OnCommit:      o.OnCommit,
	}
}

// deadLetter parks a message of ORDERS as the ledger's.
func deadLetter(m jetstream.Msg, reason, detail string) outbox.Message {
	return orderbus.DeadLetter(m, "ledger", "orders", reason, detail)
}

type consumer struct {
	orders    Orders
	programme Programme
	opts      Options
}

func (c *consumer) handle(ctx context.Context, b busrouter.Batch[*ordersv1.OrderEvent]) (busrouter.Result, error) {
	in := make([]app.Input, len(b.Messages))
	for i, m := range b.Messages {
		in[i] = app.Input{Ctx: m.Ctx, Event: m.Body}
	}
	out, err := c.orders.ApplyOrders(ctx, c.programme(), in, b.Dead)
	if err != nil {
		return busrouter.Result{}, err
	}
	dup := 0
	var putOff []busrouter.Message[*ordersv1.OrderEvent]
	for i, o := range out {
		switch o {
		case ledger.Duplicate:
			dup++
		case ledger.Later:
			putOff = append(putOff, b.Messages[i])
		}
	}
	later, gaps, err := c.giveUp(ctx, putOff)
	if err != nil {
		return busrouter.Result{}, err
	}
	return busrouter.Result{Later: later, Count: map[string]int{busrouter.OutcomeDuplicate: dup, busrouter.OutcomeDeadLetter: gaps}}, nil
}

// giveUp dead-letters the put-off events that have waited too long for an
// earlier event of their order (ordergate.ReasonGap), logging each once
// its dead letter is committed, and returns the others' messages and how
// many it dead-lettered.
func (c *consumer) giveUp(ctx context.Context, later []busrouter.Message[*ordersv1.OrderEvent]) ([]jetstream.Msg, int, error) {
	msgs := make([]jetstream.Msg, len(later))
	byMsg := make(map[jetstream.Msg]busrouter.Message[*ordersv1.OrderEvent], len(later))
	for i, x := range later {
		msgs[i], byMsg[x.Msg] = x.Msg, x
	}
	keep, expired := ordergate.Expired(msgs, c.opts.LaterDelay, c.opts.WaitForOrder)
	if len(expired) == 0 {
		return keep, 0, nil
	}
	dead := make([]outbox.Message, len(expired))
	for i, m := range expired {
		dead[i] = deadLetter(m, ordergate.ReasonGap, "an earlier event of this order never arrived")
	}
	if _, err := c.orders.ApplyOrders(ctx, c.programme(), nil, dead); err != nil {
		return nil, 0, err
	}
	// The subject and the event's customer id are left out: they name the
	// customer.
	for _, m := range expired {
		x := byMsg[m]
		ev := x.Body
		c.opts.Log.WarnContext(x.Ctx, "order event dead-lettered without an earlier event of its order", "reason", ordergate.ReasonGap,
			"source", ev.GetSource(), "order_id", ev.GetOrderId(), "kind", orderbus.KindToken(ev.GetKind()),
			"order_sequence", ev.GetOrderSequence(), "waited", c.opts.WaitForOrder)
	}
	return keep, len(expired), nil
}
