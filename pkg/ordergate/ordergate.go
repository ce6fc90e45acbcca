// Package ordergate is how every consumer of the ORDERS stream applies an
// order's canonical events in the order order-ingest numbered them
// (OrderEvent.order_sequence, from 1), whatever order JetStream delivers
// them in. The subject of an event carries its kind as well as its
// customer, and a message redelivered after a crash comes back only when
// its ack wait ends, behind newer ones: without a gate a refund can arrive
// before the payment it refunds.
//
// A consumer keeps, per order, the last sequence it applied, in the same
// transaction as the effects of the events. For each event, Decide says
// whether to apply it now, skip it as already applied, or put it off until
// its predecessor has been applied (the consumer hands it back to
// natsx.BatchConsumer as "later"). Expired bounds the wait, so that a
// predecessor that never comes does not hold the order forever without a
// trace: the ledger then dead-letters the event with ReasonGap, and
// segmentation applies it without its predecessor and logs it.
package ordergate

import (
	"cmp"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Decision is what to do with one event.
type Decision int

const (
	// Apply the event now: it is the next of its order (or unnumbered).
	Apply Decision = iota + 1
	// Duplicate: this position of the order's history was applied before.
	Duplicate
	// Later: an earlier event of the order has not been applied yet.
	Later
)

func (d Decision) String() string {
	switch d {
	case Apply:
		return "apply"
	case Duplicate:
		return "duplicate"
	case Later:
		return "later"
	}
	return "unknown"
}

// ReasonGap names an event whose predecessor never arrived within the
// consumer's wait (the dead-letter reason where the consumer parks it).
const ReasonGap = "order_history_gap"

// Decide returns what to do with the event numbered seq of an order whose
// last applied event is last (0: none applied). An unnumbered event (seq
// 0, from before order-ingest numbered events) is Apply: the consumer
// recognises a redelivery of it by its event id instead.
func Decide(last, seq int32) Decision {
	switch {
	case seq <= 0:
		return Apply
	case seq <= last:
		return Duplicate
	case seq == last+1:
		return Apply
	}
	return Later
}

// Key names an order across sources.
type Key struct{ Source, OrderID string }

// Gate decides a batch's events against the last sequences the consumer
// stored, advancing them as events are applied, so that an event whose
// predecessor is earlier in the same batch applies in the same
// transaction.
type Gate struct {
	last map[Key]int32
}

// New returns a gate; Load fills in what the store knows.
func New() *Gate { return &Gate{last: map[Key]int32{}} }

// Load records the last applied sequence of an order, as stored.
func (g *Gate) Load(k Key, last int32) {
	if last > g.last[k] {
		g.last[k] = last
	}
}

// Last is the order's last applied sequence (0: none).
func (g *Gate) Last(k Key) int32 { return g.last[k] }

// Decide decides the event numbered seq of order k; an Apply of a
// numbered event advances the order's last sequence, so a second copy of
// the event later in the batch is a Duplicate.
func (g *Gate) Decide(k Key, seq int32) Decision {
	d := Decide(g.last[k], seq)
	if d == Apply && seq > 0 {
		g.last[k] = seq
	}
	return d
}

// Event is what Sequence needs of an event: its order and number.
type Event struct {
	Key Key
	Seq int32
}

// Sequence returns the order in which to apply a batch: the indices of
// evs, delivery order kept, except that the numbered events of one order
// are taken in sequence order. An event delivered before its predecessor
// in the same batch (a redelivery overtaken by newer messages) then still
// applies in that batch instead of waiting for a redelivery. Unnumbered
// events keep their place.
func Sequence(evs []Event) []int {
	idx := make([]int, len(evs))
	for i := range idx {
		idx[i] = i
	}
	// Collect each order's positions and refill them with its events
	// sorted by sequence: events of different orders keep their relative
	// places.
	byOrder := map[Key][]int{}
	disordered := false
	for i, e := range evs {
		if e.Seq <= 0 {
			continue
		}
		pos := byOrder[e.Key]
		if n := len(pos); n > 0 && evs[pos[n-1]].Seq > e.Seq {
			disordered = true
		}
		byOrder[e.Key] = append(pos, i)
	}
	if !disordered {
		return idx
	}
	for _, pos := range byOrder {
		sorted := slices.Clone(pos)
		slices.SortStableFunc(sorted, func(a, b int) int { return cmp.Compare(evs[a].Seq, evs[b].Seq) })
		for j, p := range pos {
			idx[p] = sorted[j]
		}
	}
	return idx
}

// Expired splits the messages a consumer put off into those that may wait
// again and those that have waited long enough (delivered often enough
// that delay × deliveries reaches wait): their predecessor is taken to be
// gone (dead-lettered by this consumer, or aged out of the stream), and
// the consumer dead-letters them with ReasonGap.
func Expired(later []jetstream.Msg, delay, wait time.Duration) (keep, expired []jetstream.Msg) {
	for _, m := range later {
		if meta, err := m.Metadata(); err == nil && time.Duration(meta.NumDelivered)*delay >= wait {
			expired = append(expired, m)
			continue
		}
		keep = append(keep, m)
	}
	return keep, expired
}
