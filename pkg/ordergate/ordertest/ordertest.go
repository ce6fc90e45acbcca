// Package ordertest generates order histories for the permutation tests of
// the services that consume orders: what shops send (placed, paid, partial
// and full refunds, cancellations), how order-ingest numbers what it
// accepts when the shop's messages arrive in another order, the canonical
// events that result, and the figures a history must give, worked out
// from the history alone.
package ordertest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// Kinds, short.
const (
	Placed    = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED
	Paid      = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
	Refunded  = ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED
	Cancelled = ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED
)

// Step is one event of an order as its shop sent it.
type Step struct {
	Kind     ordersv1.OrderEventKind
	RefundID string
	// Refund is the amount of a refund (minor units, the order's
	// currency, which is the base currency here).
	Refund int64
	At     time.Time
}

// Order is one order and its history in the shop's own order.
type Order struct {
	Customer, Source, OrderID string
	Currency                  string
	Total                     int64
	Channel                   string
	Discounted, Test          bool
	Steps                     []Step
}

// Generate returns the orders of customers customers (1 to maxOrders
// each) with every kind of history: placed and paid, refunded in part
// or in full by one or more refunds, cancelled before or after payment
// (after refunds too), paid without a placed event, placed only, and now
// and then a test order.
func Generate(rng *rand.Rand, customers, maxOrders int, start time.Time) []Order {
	var out []Order
	n := 0
	for c := 0; c < customers; c++ {
		for k := 1 + rng.IntN(maxOrders); k > 0; k-- {
			n++
			at := start.Add(time.Duration(rng.IntN(60*24)) * time.Hour)
			o := Order{
				Customer: fmt.Sprintf("cus_%d", c), Source: "shop", OrderID: fmt.Sprintf("o%d", n), Currency: "EUR",
				Total: int64(500 + rng.IntN(40000)), Channel: []string{"web", "app"}[rng.IntN(2)],
				Discounted: rng.IntN(3) == 0, Test: rng.IntN(12) == 0,
			}
			step := func(kind ordersv1.OrderEventKind, refundID string, amount int64) {
				at = at.Add(time.Duration(1+rng.IntN(240)) * time.Minute)
				o.Steps = append(o.Steps, Step{Kind: kind, RefundID: refundID, Refund: amount, At: at})
			}
			if rng.IntN(6) != 0 {
				step(Placed, "", 0)
			}
			if len(o.Steps) > 0 && rng.IntN(7) == 0 {
				if rng.IntN(2) == 0 {
					step(Cancelled, "", 0) // cancelled unpaid
				}
				out = append(out, o)
				continue
			}
			step(Paid, "", 0)
			left := o.Total
			for r := rng.IntN(4); r > 0 && left > 0; r-- {
				amount := 1 + rng.Int64N(left)
				if rng.IntN(4) == 0 {
					amount = left // the rest: refunded in full
				}
				left -= amount
				step(Refunded, fmt.Sprintf("r%d", len(o.Steps)), amount)
			}
			if rng.IntN(4) == 0 {
				step(Cancelled, "", 0)
			}
			out = append(out, o)
		}
	}
	return out
}

// Has reports whether the history holds an event of kind k.
func (o Order) Has(k ordersv1.OrderEventKind) bool {
	for _, s := range o.Steps {
		if s.Kind == k {
			return true
		}
	}
	return false
}

// RefundedTotal is everything refunded, and Refunds the number of refunds.
func (o Order) RefundedTotal() (total int64, refunds int) {
	for _, s := range o.Steps {
		if s.Kind == Refunded {
			total += s.Refund
			refunds++
		}
	}
	return total, refunds
}

// Accept returns the steps in the order order-ingest accepts them when
// they arrive in the order arrival gives (indices into o.Steps): a refund
// or cancellation of an order not seen yet, and a refund of an order not
// paid yet, is put off and comes back after the next event that is
// accepted, as a redelivery does.
func Accept(o Order, arrival []int) []Step {
	var out []Step
	var waiting []Step
	known, paid := false, false
	accept := func(s Step) bool {
		switch {
		case !known && (s.Kind == Refunded || s.Kind == Cancelled):
			return false
		case s.Kind == Refunded && !paid:
			return false
		}
		known = true
		if s.Kind == Paid {
			paid = true
		}
		out = append(out, s)
		return true
	}
	for _, i := range arrival {
		if !accept(o.Steps[i]) {
			waiting = append(waiting, o.Steps[i])
			continue
		}
		for progress := true; progress; {
			progress = false
			for j, w := range waiting {
				if accept(w) {
					waiting = append(waiting[:j], waiting[j+1:]...)
					progress = true
					break
				}
			}
		}
	}
	if len(waiting) > 0 {
		panic(fmt.Sprintf("ordertest: order %s: %d events never accepted", o.OrderID, len(waiting)))
	}
	return out
}

// InOrder is the arrival order of the shop's own order.
func (o Order) InOrder() []int {
	idx := make([]int, len(o.Steps))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// Shuffled is a random arrival order.
func (o Order) Shuffled(rng *rand.Rand) []int {
	idx := o.InOrder()
	rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	return idx
}

// EventID is the canonical event id of a step (the real one is derived
// by order-ingest; any stable id per step will do here).
func (o Order) EventID(s Step) string {
	return fmt.Sprintf("evt_%s_%s_%d_%s", o.Source, o.OrderID, int(s.Kind), s.RefundID)
}

// Canonical is the canonical events order-ingest emits for steps accepted
// in that order: numbered from 1, refunds carrying the cumulative refunded
// total, every event the order's customer and amounts.
func Canonical(o Order, accepted []Step) []*ordersv1.OrderEvent {
	money := func(v int64) *commonv1.Money { return &commonv1.Money{MinorUnits: v, Currency: o.Currency} }
	amount := func(v int64) *ordersv1.Amount { return &ordersv1.Amount{Original: money(v), Base: money(v)} }
	var out []*ordersv1.OrderEvent
	var refunded int64
	for i, s := range accepted {
		ev := &ordersv1.OrderEvent{
			EventId: o.EventID(s), Kind: s.Kind, Source: o.Source, OrderId: o.OrderID, CustomerId: o.Customer,
			OccurredAt: timestamppb.New(s.At), IngestedAt: timestamppb.New(s.At), Channel: o.Channel, Test: o.Test,
			Total: money(o.Total), BaseTotal: money(o.Total), OrderSequence: int32(i + 1),
		}
		if o.Discounted {
			ev.Discount = &ordersv1.Discount{Codes: []string{"SALE"}}
		}
		if s.Kind == Refunded {
			refunded += s.Refund
			ev.Refund = &ordersv1.Refund{RefundId: s.RefundID, Amount: amount(s.Refund), RefundedTotal: amount(refunded)}
		}
		out = append(out, ev)
	}
	return out
}

// Deliveries is the stream of messages a consumer sees for events in
// stream order: shuffled, with about one in dup delivered twice (a
// redelivery after a crash), cut into batches of 1 to maxBatch.
func Deliveries[T any](rng *rand.Rand, evs []T, dup, maxBatch int) [][]T {
	all := append([]T(nil), evs...)
	for _, ev := range evs {
		if dup > 0 && rng.IntN(dup) == 0 {
			all = append(all, ev)
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var out [][]T
	for len(all) > 0 {
		n := min(1+rng.IntN(maxBatch), len(all))
		out = append(out, all[:n])
		all = all[n:]
	}
	return out
}
