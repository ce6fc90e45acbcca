package bus

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/boomerang-loyalty/boomerang/pkg/busrouter"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/ordergate"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// OrdersRoute names the ORDERS consumer in the router's metrics.
const OrdersRoute = "segmentation.orders"

// OrderApplier applies a batch of order events in one transaction, with
// the dead letters of the batch. It returns the number of events applied
// (redeliveries are not) and the indexes of the events put off because an
// earlier event of their order has not been applied yet; force applies
// those too.
type OrderApplier interface {
	ApplyOrders(ctx context.Context, evs []segment.Event, dead []outbox.Message, now time.Time, force bool) (applied int, later []int, err error)
}

// Orders consumes canonical order events from ORDERS.
type Orders struct {
	app OrderApplier
	log *slog.Logger
	now func() time.Time
	// laterDelay and waitForOrder bound how long an event waits for an
	// earlier event of its order (see ordergate).
	laterDelay, waitForOrder time.Duration
	gaps                     metric.Int64Counter
}

// OrdersOptions configure the ORDERS consumer.
type OrdersOptions struct {
	// LaterDelay is how long an event waiting for an earlier event of its
	// order is put off; WaitForOrder how long it may wait in all before it
	// is applied without it.
	LaterDelay, WaitForOrder time.Duration
	// Healthy answers when the database does: a message that keeps
	// failing is parked only then.
	Healthy func(context.Context) error
	// OnCommit is called after each applied batch (the relay's Notify).
	OnCommit func()
	Now      func() time.Time
}

// NewOrders returns the ORDERS consumer and its route.
func NewOrders(app OrderApplier, log *slog.Logger, meter metric.Meter, o OrdersOptions) (busrouter.Route[segment.Event], error) {
	gaps, err := meter.Int64Counter("boomerang.segmentation.order_gaps",
		metric.WithDescription("Order events applied without an earlier event of their order, after waiting SEGMENTATION_WAIT_FOR_ORDER"))
	if err != nil {
		return busrouter.Route[segment.Event]{}, err
	}
	c := &Orders{app: app, log: log, now: o.Now, laterDelay: o.LaterDelay, waitForOrder: o.WaitForOrder, gaps: gaps}
	return busrouter.Route[segment.Event]{
		Name:          OrdersRoute,
		Decode:        decodeOrder,
		InvalidReason: "not_an_order_event",
		DeadLetter: func(m jetstream.Msg, reason, detail string) outbox.Message {
			return orderbus.DeadLetter(m, Service, "orders", reason, detail)
		},
		Handle:   c.handle,
		Parallel: true,
		Healthy:  o.Healthy,
		OnCommit: o.OnCommit,
	}, nil
}

func decodeOrder(_ context.Context, m jetstream.Msg) (segment.Event, error) {
	ev, err := orderbus.Decode(m)
	if err != nil {
		return segment.Event{}, err
	}
	return FromOrderEvent(ev), nil
}

func (c *Orders) handle(ctx context.Context, b busrouter.Batch[segment.Event]) (busrouter.Result, error) {
	evs := make([]segment.Event, len(b.Messages))
	for i, m := range b.Messages {
		evs[i] = m.Body
	}
	// The batch's outbox carries the trace of its first event, so that an
	// order's trace goes on through segmentation.
	if len(b.Messages) > 0 {
		ctx = trace.ContextWithSpan(ctx, trace.SpanFromContext(b.Messages[0].Ctx))
	}
	applied, putOff, err := c.app.ApplyOrders(ctx, evs, b.Dead, c.now().UTC(), false)
	if err != nil {
		return busrouter.Result{}, err
	}
	later, err := c.giveUp(ctx, b, putOff)
	if err != nil {
		return busrouter.Result{}, err
	}
	// Events neither applied nor put off were applied before (redelivered).
	res := busrouter.Result{Later: later}
	if dup := len(evs) - applied - len(putOff); dup > 0 {
		res.Count = map[string]int{busrouter.OutcomeDuplicate: dup}
	}
	return res, nil
}

// giveUp applies the events put off that have waited long enough for an
// earlier event of their order, and returns the others, which come back
// after the batch consumer's LaterDelay. The earlier event is then taken
// to be gone (aged out of ORDERS, a consumer recreated past it, or a
// placed event applied before segmentation kept placed orders, when
// migration 00005 ran): the figures are best served by what did come, so
// the event applies out of order rather than being dropped, with a warning
// and boomerang.segmentation.order_gaps to show it.
func (c *Orders) giveUp(ctx context.Context, b busrouter.Batch[segment.Event], later []int) ([]jetstream.Msg, error) {
	if len(later) == 0 {
		return nil, nil
	}
	msgs := make([]jetstream.Msg, len(later))
	index := make(map[jetstream.Msg]int, len(later))
	for k, i := range later {
		msgs[k], index[b.Messages[i].Msg] = b.Messages[i].Msg, i
	}
	keep, expired := ordergate.Expired(msgs, c.laterDelay, c.waitForOrder)
	if len(expired) == 0 {
		return keep, nil
	}
	evs := make([]segment.Event, len(expired))
	for k, m := range expired {
		evs[k] = b.Messages[index[m]].Body
	}
	if _, _, err := c.app.ApplyOrders(ctx, evs, nil, c.now().UTC(), true); err != nil {
		return nil, err
	}
	c.gaps.Add(ctx, int64(len(expired)))
	// Logged once applied, so not again when the batch is retried; not the
	// subject: its last token is the customer id.
	for k, m := range expired {
		c.log.WarnContext(b.Messages[index[m]].Ctx, "order event applied without an earlier event of its order", "reason", ordergate.ReasonGap,
			"source", evs[k].Source, "order_id", evs[k].OrderID, "kind", kindToken(m.Subject()), "order_sequence", evs[k].Seq,
			"waited", c.waitForOrder)
	}
	return keep, nil
}

// kindToken is the kind token of a canonical event's subject
// (orderbus.Prefix + <kind>.<customer_id>).
func kindToken(subject string) string {
	kind, _, _ := strings.Cut(strings.TrimPrefix(subject, orderbus.Prefix), ".")
	return kind
}
