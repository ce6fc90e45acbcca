package segment

import (
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/ordergate"
)

// Customer is a customer as segmentation keeps them: their features,
// agony mark and latest score (nil for a customer never scored).
type Customer struct {
	Features *Features
	Agony    bool
	Score    *Score
}

// OrderKey names an order: its shop and the shop's order id.
type OrderKey struct{ Source, OrderID string }

// ByID reports whether an event is recognised by its id rather than
// gated by its order's sequence: an unnumbered event, or one of an order
// stored before events were numbered (o is the stored order, nil when
// none).
func ByID(ev Event, o *Order) bool { return ev.Seq <= 0 || (o != nil && o.LastSeq < 0) }

// OrderBatch is what one transaction of order events reads and changes:
// the customers and orders its events name, as stored. Apply changes it;
// whoever stores it writes the orders and customers it lists as changed.
type OrderBatch struct {
	// Customers by id: those with features, and those the feedback
	// service reported agony for before their first order (Features nil),
	// whose first order takes that agony.
	Customers map[string]*Customer
	// Orders by key, as stored.
	Orders map[OrderKey]*Order
	// Fresh holds the ids of the events recognised by id (ByID) that were
	// not applied before; the store records them as applied as it loads
	// the batch. Apply takes each id out as it applies its event.
	Fresh map[string]bool

	// ChangedOrders are the orders Apply changed, ChangedCustomers the
	// customers whose features changed, in the order of their first
	// change.
	ChangedOrders    []OrderKey
	ChangedCustomers []string
}

// Apply applies events, in the order they were delivered, and returns the
// number applied and the indexes (in evs) of those put off because an
// earlier event of their order has not been applied yet; force applies
// those instead (their predecessor is taken to be gone). An order's
// numbered events go through the gate (see ordergate); an event
// recognised by its id is applied when it is Fresh, once.
func (b *OrderBatch) Apply(evs []Event, force bool) (applied int, later []int) {
	// Whether an event goes by id is decided on the orders as stored.
	gate := ordergate.New()
	byID := make([]bool, len(evs))
	for i, ev := range evs {
		k := OrderKey{ev.Source, ev.OrderID}
		if o := b.Orders[k]; ByID(ev, o) {
			byID[i] = true
		} else if o != nil {
			gate.Load(ordergate.Key{Source: k.Source, OrderID: k.OrderID}, o.LastSeq)
		}
	}
	dirty := map[OrderKey]bool{}
	changed := map[string]bool{}
	for _, i := range ordergate.Sequence(gateEvents(evs)) {
		ev := evs[i]
		k := OrderKey{ev.Source, ev.OrderID}
		if byID[i] {
			// Deleting the id skips a duplicate later in the batch.
			if !b.Fresh[ev.ID] {
				continue
			}
			delete(b.Fresh, ev.ID)
		} else {
			switch gate.Decide(ordergate.Key{Source: k.Source, OrderID: k.OrderID}, ev.Seq) {
			case ordergate.Apply:
			case ordergate.Later:
				if !force {
					later = append(later, i)
					continue
				}
			default:
				continue
			}
		}
		applied++
		b.apply(ev, k, dirty, changed)
	}
	return applied, later
}

func (b *OrderBatch) apply(ev Event, k OrderKey, dirty map[OrderKey]bool, changed map[string]bool) {
	c := b.Customers[ev.CustomerID]
	if c == nil {
		c = &Customer{}
		b.Customers[ev.CustomerID] = c
	}
	if c.Features == nil {
		c.Features = &Features{CustomerID: ev.CustomerID}
	}
	old := b.Orders[k]
	next, ch := Apply(c.Features, old, ev)
	if next == nil {
		// Kept though it counts for nothing yet (placed, a test order), so
		// that its next event finds its predecessor.
		next = &Order{CustomerID: ev.CustomerID, Source: ev.Source, OrderID: ev.OrderID, Status: OrderPlaced}
	}
	if next != old || ev.Seq > next.LastSeq {
		next.LastSeq = max(next.LastSeq, ev.Seq)
		b.Orders[k] = next
		if !dirty[k] {
			dirty[k] = true
			b.ChangedOrders = append(b.ChangedOrders, k)
		}
	}
	if ch && !changed[ev.CustomerID] {
		changed[ev.CustomerID] = true
		b.ChangedCustomers = append(b.ChangedCustomers, ev.CustomerID)
	}
}

// gateEvents is what ordergate.Sequence needs of a batch.
func gateEvents(evs []Event) []ordergate.Event {
	out := make([]ordergate.Event, len(evs))
	for i, ev := range evs {
		out[i] = ordergate.Event{Key: ordergate.Key{Source: ev.Source, OrderID: ev.OrderID}, Seq: ev.Seq}
	}
	return out
}

// AgonyBatch is what one transaction of agony marks reads and changes:
// the agony states of its customers and those customers that have
// features, as stored. Apply (or a mark by hand) changes it; whoever
// stores it writes the states and customers it lists as changed.
type AgonyBatch struct {
	// States by customer, as stored (absent: no mark yet).
	States map[string]AgonyState
	// Customers with features, by id.
	Customers map[string]*Customer

	// Marked are the customers whose state changed, with the event of the
	// mark that set it (EventOf, empty for a mark by hand); Flipped those
	// among them, with features, whose agony turned on or off, in order:
	// their features take the new agony and they are rescored.
	Marked  []string
	EventOf map[string]string
	Flipped []string
}

// Set marks or clears a customer's agony by hand as of now, whatever the
// stored state: the customer is marked and rescored. It reports false for
// a customer without features (not seen yet).
func (b *AgonyBatch) Set(customerID string, on bool, now time.Time) bool {
	c := b.Customers[customerID]
	if c == nil {
		return false
	}
	c.Agony = on
	b.States[customerID] = AgonyState{On: on, AsOf: now}
	b.Marked, b.Flipped = []string{customerID}, []string{customerID}
	b.EventOf = map[string]string{customerID: ""}
	return true
}

// Apply applies marks in the order they were delivered and returns the
// number that took effect: each customer's state moves only forward in
// time (see AgonyState.Apply), so a redelivered or older mark does not.
func (b *AgonyBatch) Apply(marks []AgonyMark) int {
	before := b.States
	after := make(map[string]AgonyState, len(before)+len(marks))
	for c, st := range before {
		after[c] = st
	}
	b.EventOf = map[string]string{}
	var order []string
	seen := map[string]bool{}
	applied := 0
	for _, m := range marks {
		if !seen[m.CustomerID] {
			seen[m.CustomerID] = true
			order = append(order, m.CustomerID)
		}
		// States are kept to the microsecond: a redelivery must compare
		// equal to the stored time.
		m.At = m.At.Truncate(time.Microsecond)
		st, ok := after[m.CustomerID].Apply(m)
		if !ok {
			continue
		}
		applied++
		after[m.CustomerID], b.EventOf[m.CustomerID] = st, m.EventID
	}
	b.Marked, b.Flipped = nil, nil
	for _, id := range order {
		old, known := before[id]
		st := after[id]
		if known && old.On == st.On && old.AsOf.Equal(st.AsOf) {
			continue
		}
		b.Marked = append(b.Marked, id)
		if c := b.Customers[id]; c != nil && old.On != st.On {
			c.Agony = st.On
			b.Flipped = append(b.Flipped, id)
		}
	}
	b.States = after
	return applied
}
