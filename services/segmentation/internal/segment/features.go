// Package segment is segmentation's domain: per-customer features built
// from canonical order events, RFM scores by quintiles of the customer base,
// the R×F segment map, the seller-facing flags, and the population metrics
// (repeat-purchase curve, segment sizes and value, CLV distribution). It
// does no I/O; the store, the hot store and the scoring job use it.
package segment

import (
	"sort"
	"time"
)

// Kind is what happened to an order, as the canonical events say.
type Kind int

const (
	Placed Kind = iota + 1
	Paid
	Refunded
	Cancelled
)

// Event is the part of a canonical order event segmentation uses.
type Event struct {
	ID         string
	Kind       Kind
	CustomerID string
	Source     string
	OrderID    string
	Channel    string
	OccurredAt time.Time
	// BaseTotal is the order total in the base currency (minor units).
	BaseTotal int64
	Currency  string
	// Discounted is set when the order used a discount code or amount.
	Discounted bool
	// RefundedTotal is everything refunded on the order so far, in base
	// currency, on a Refunded event.
	RefundedTotal int64
	// Test orders are carried on the bus but count for nothing.
	Test bool
	// Seq numbers the event within its order (order_sequence, from 1; 0
	// for an unnumbered event): OrderBatch.Apply applies an order's events in
	// this order (see ordergate).
	Seq int32
}

// OrderStatus is where an order stands for segmentation.
type OrderStatus int

const (
	// OrderPaid: paid and counted.
	OrderPaid OrderStatus = iota + 1
	// OrderCancelled: cancelled; counts for nothing. PaidAt says whether
	// it was paid (before or after the cancellation was seen).
	OrderCancelled
	// OrderPlaced: seen (placed, or a test order), not paid.
	OrderPlaced
)

// Order is what segmentation remembers of one order, so that a refund or a
// cancellation takes back exactly what the payment added, whichever order
// order-ingest saw its events in.
type Order struct {
	CustomerID string
	Source     string
	OrderID    string
	Status     OrderStatus
	// PaidAt is zero until a payment was seen.
	PaidAt     time.Time
	Value      int64
	Refunded   int64
	Discounted bool
	Channel    string
	// LastSeq is the order's last event applied (order_sequence), -1 for
	// an order stored before events were numbered.
	LastSeq int32
}

// Day is a purchase day of a customer: the models count purchase days, not
// orders, so same-day orders are one transaction.
type Day struct {
	// Day is the number of days since 1970-01-01 (UTC).
	Day    int32 `json:"d"`
	Orders int32 `json:"n"`
	// Value is the day's order value net of refunds (minor units).
	Value int64 `json:"v"`
	// First and Last are the first and last order times of the day (Unix
	// microseconds).
	First int64 `json:"f"`
	Last  int64 `json:"l"`
}

// Features are one customer's facts, kept durably and updated by every
// order event. Values are in the base currency's minor units.
type Features struct {
	CustomerID string
	Currency   string
	// Orders counts paid orders that were not cancelled.
	Orders           int64
	TotalValue       int64 // net of refunds
	DiscountedOrders int64
	Refunds          int64
	RefundedValue    int64
	// Channels counts paid orders per channel (the source when the shop
	// sent no channel).
	Channels map[string]int64
	// Days are the purchase days in order.
	Days []Day
}

// FirstOrderAt is the time of the customer's first order (zero when none).
func (f *Features) FirstOrderAt() time.Time {
	if len(f.Days) == 0 {
		return time.Time{}
	}
	return time.UnixMicro(f.Days[0].First).UTC()
}

// LastOrderAt is the time of the customer's most recent order.
func (f *Features) LastOrderAt() time.Time {
	if len(f.Days) == 0 {
		return time.Time{}
	}
	return time.UnixMicro(f.Days[len(f.Days)-1].Last).UTC()
}

// LastOrderDay is the day number of the most recent order (0 when none).
func (f *Features) LastOrderDay() int32 {
	if len(f.Days) == 0 {
		return 0
	}
	return f.Days[len(f.Days)-1].Day
}

// AverageOrderValue is the mean net value of an order, rounded down.
func (f *Features) AverageOrderValue() int64 {
	if f.Orders == 0 {
		return 0
	}
	return f.TotalValue / f.Orders
}

// DiscountedShare is the share of orders bought with a discount.
func (f *Features) DiscountedShare() float64 {
	if f.Orders == 0 {
		return 0
	}
	return float64(f.DiscountedOrders) / float64(f.Orders)
}

// ChannelNames are the channels used, sorted.
func (f *Features) ChannelNames() []string {
	out := make([]string, 0, len(f.Channels))
	for c := range f.Channels {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// DayNumber is the UTC day of t counted from 1970-01-01.
func DayNumber(t time.Time) int32 {
	return int32(t.UTC().Unix() / 86400)
}

// Apply adds one event to a customer's features. o is the event's order as
// known before it (nil when unknown); Apply returns the order as it stands
// after, or nil when the event leaves no order to remember, and reports
// whether the features changed. OrderBatch.Apply applies an order's events in the
// order order-ingest numbered them, which is the order it saw them in, not
// always the shop's: a payment may come after the cancellation, a refund
// after the cancellation. The figures are those of the shop's order
// whatever that order was: a cancelled order counts for nothing, and every
// refund of a paid order counts in Refunds and RefundedValue, cancelled or
// not.
func Apply(f *Features, o *Order, ev Event) (*Order, bool) {
	if ev.Test {
		return o, false
	}
	if f.Currency == "" {
		f.Currency = ev.Currency
	}
	switch ev.Kind {
	case Placed:
		if o == nil {
			return &Order{CustomerID: ev.CustomerID, Source: ev.Source, OrderID: ev.OrderID, Status: OrderPlaced}, false
		}
	case Paid:
		if o != nil && (o.Status == OrderPaid || !o.PaidAt.IsZero()) {
			return o, false // paid already
		}
		ch := ev.Channel
		if ch == "" {
			ch = ev.Source
		}
		n := &Order{
			CustomerID: ev.CustomerID, Source: ev.Source, OrderID: ev.OrderID, Status: OrderPaid,
			PaidAt: ev.OccurredAt.UTC(), Value: max(ev.BaseTotal, 0), Discounted: ev.Discounted, Channel: ch,
		}
		if o != nil {
			n.LastSeq = o.LastSeq
			if o.Status == OrderCancelled {
				// Paid, but cancelled first: remembered, so that its
				// refunds count, and counted for nothing.
				n.Status = OrderCancelled
				return n, false
			}
		}
		f.Orders++
		f.TotalValue += n.Value
		if n.Discounted {
			f.DiscountedOrders++
		}
		if f.Channels == nil {
			f.Channels = map[string]int64{}
		}
		f.Channels[ch]++
		f.addToDay(DayNumber(n.PaidAt), n.PaidAt.UnixMicro(), 1, n.Value)
		return n, true
	case Refunded:
		if o == nil || o.PaidAt.IsZero() {
			return o, false
		}
		// refunded_total makes the refund's effect independent of how many
		// refund events were seen; it never takes back more than was paid.
		target := min(max(ev.RefundedTotal, 0), o.Value)
		delta := target - o.Refunded
		n := *o
		f.Refunds++
		if delta > 0 {
			n.Refunded = target
			f.RefundedValue += delta
			if o.Status == OrderPaid {
				// A cancelled order's value is out of the figures already.
				f.TotalValue -= delta
				f.addToDay(DayNumber(o.PaidAt), o.PaidAt.UnixMicro(), 0, -delta)
			}
		}
		return &n, true
	case Cancelled:
		if o == nil {
			// Cancelled before payment: remember it, so that nothing is
			// counted should a payment event still arrive.
			return &Order{CustomerID: ev.CustomerID, Source: ev.Source, OrderID: ev.OrderID, Status: OrderCancelled}, false
		}
		n := *o
		switch o.Status {
		case OrderPlaced:
			n.Status = OrderCancelled
			return &n, false
		case OrderCancelled:
			return o, false
		}
		n.Status = OrderCancelled
		net := o.Value - o.Refunded
		f.Orders--
		f.TotalValue -= net
		if o.Discounted {
			f.DiscountedOrders--
		}
		if f.Channels[o.Channel]--; f.Channels[o.Channel] <= 0 {
			delete(f.Channels, o.Channel)
		}
		f.addToDay(DayNumber(o.PaidAt), o.PaidAt.UnixMicro(), -1, -net)
		return &n, true
	}
	return o, false
}

// addToDay adds orders and value to a purchase day, creating it or
// dropping it when its last order goes.
func (f *Features) addToDay(day int32, at int64, orders int32, value int64) {
	i := sort.Search(len(f.Days), func(i int) bool { return f.Days[i].Day >= day })
	if i == len(f.Days) || f.Days[i].Day != day {
		if orders <= 0 {
			return
		}
		f.Days = append(f.Days, Day{})
		copy(f.Days[i+1:], f.Days[i:])
		f.Days[i] = Day{Day: day, First: at, Last: at}
	}
	d := &f.Days[i]
	d.Orders += orders
	d.Value = max(d.Value+value, 0)
	if orders > 0 {
		d.First, d.Last = min(d.First, at), max(d.Last, at)
	}
	if d.Orders <= 0 {
		f.Days = append(f.Days[:i], f.Days[i+1:]...)
	}
}

// Summary is a customer's repeat-transaction history in the form the
// BG/NBD and Gamma-Gamma models use, in days.
type Summary struct {
	// X is the number of repeat purchase days (days after the first).
	X int
	// TX is the age in days of the last purchase day, from the first.
	TX float64
	// T is the age in days of the customer at the scoring date.
	T float64
	// Monetary is the mean net value of the repeat purchase days; the first
	// purchase is left out, as the spend model expects.
	Monetary float64
}

// Summarize returns the model summary of f as of the day asOf. Purchase days
// after asOf (clock skew between shops) count as made on asOf.
func (f *Features) Summarize(asOf int32) (Summary, bool) {
	if len(f.Days) == 0 {
		return Summary{}, false
	}
	first, last := f.Days[0].Day, f.Days[len(f.Days)-1].Day
	s := Summary{X: len(f.Days) - 1, TX: float64(min(last, asOf) - first), T: float64(asOf - first)}
	if s.T < s.TX {
		s.T = s.TX
	}
	if s.TX < 0 {
		s.TX, s.T = 0, max(s.T, 0)
	}
	if s.X > 0 {
		var sum int64
		for _, d := range f.Days[1:] {
			sum += d.Value
		}
		s.Monetary = float64(sum) / float64(s.X)
	}
	return s, true
}
