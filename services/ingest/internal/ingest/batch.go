package ingest

import (
	"fmt"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	"google.golang.org/protobuf/proto"
)

// Outcome of one order event in a batch.
type Outcome int

const (
	Accepted Outcome = iota + 1
	Duplicate
	Rejected
)

// Result is what became of one order event.
type Result struct {
	Outcome    Outcome
	EventID    string
	CustomerID string
	Rejection  *Rejection
	// Event is the canonical event, for accepted events, and Payload its
	// protobuf encoding.
	Event   *ordersv1.OrderEvent
	Payload []byte
}

// OrderKey names an order: its source and the shop's order id.
type OrderKey struct{ Source, OrderID string }

// Keys returns what a batch of prepared events needs to know, each once:
// the orders they touch and their identity keys.
func Keys(events []*Prepared) (orders []OrderKey, identities []string) {
	seenOrder := make(map[OrderKey]bool, len(events))
	seenID := make(map[string]bool, 2*len(events))
	for _, p := range events {
		k := OrderKey{p.Key.Source, p.Key.OrderID}
		if !seenOrder[k] {
			seenOrder[k] = true
			orders = append(orders, k)
		}
		for _, ik := range p.IdentityKeys {
			if !seenID[ik] {
				seenID[ik] = true
				identities = append(identities, ik)
			}
		}
	}
	return orders, identities
}

// Batch is the state a batch of events is applied to, in memory: the
// events already ingested for its orders, the orders, and the identity
// links of its keys, as the store found them; and what applying the
// events changed, for the store to write.
type Batch struct {
	events   map[string]string // event id → customer of events already ingested
	orders   map[OrderKey]*Order
	existing map[OrderKey]bool // orders that were stored before the batch
	ids      map[string]string // identity key → customer
	links    map[string]string // identity links the batch made

	added   []AddedEvent
	changed []OrderKey
	isDirty map[OrderKey]bool
}

// AddedEvent is a canonical event a batch accepted.
type AddedEvent struct {
	Prepared   *Prepared
	Seq        int
	CustomerID string
	OccurredAt int64 // Unix microseconds
	Payload    []byte
}

// NewBatch returns an empty batch, for the store to fill with what it
// finds (Ingested, Found, Linked).
func NewBatch() *Batch {
	return &Batch{
		events: map[string]string{}, orders: map[OrderKey]*Order{}, existing: map[OrderKey]bool{},
		ids: map[string]string{}, links: map[string]string{}, isDirty: map[OrderKey]bool{},
	}
}

// Ingested records an event already ingested.
func (b *Batch) Ingested(eventID, customerID string) { b.events[eventID] = customerID }

// Found records a stored order.
func (b *Batch) Found(o *Order) {
	k := OrderKey{o.Source, o.OrderID}
	b.orders[k], b.existing[k] = o, true
}

// Linked records an identity key's customer.
func (b *Batch) Linked(key, customerID string) { b.ids[key] = customerID }

// Apply applies one prepared event to the batch's state: a duplicate is
// recognised, the order's history is checked, the customer is found (the
// most specific linked key names it) or created, and the event is
// completed and encoded. A rejection is a Result; an error means the
// event could not be worked out.
func (b *Batch) Apply(p *Prepared, baseCurrency string) (Result, error) {
	if c, ok := b.events[p.EventID]; ok {
		return Result{Outcome: Duplicate, EventID: p.EventID, CustomerID: c}, nil
	}
	k := OrderKey{p.Key.Source, p.Key.OrderID}
	cur := b.orders[k]
	customerID, newCustomer := "", false
	if cur == nil && len(p.IdentityKeys) > 0 {
		// The most specific key that is linked names the customer; with
		// none linked, the customer is new.
		for _, ik := range p.IdentityKeys {
			if c := b.ids[ik]; c != "" {
				customerID = c
				break
			}
		}
		if customerID == "" {
			customerID, newCustomer = p.NewCustomerID, true
		}
	}
	// Apply fills the event in place; work on a copy so that a rejection or
	// a retried transaction starts from the prepared event.
	prep := *p
	prep.Event = proto.Clone(p.Event).(*ordersv1.OrderEvent)
	next, err := Apply(cur, &prep, customerID, baseCurrency)
	if err != nil {
		if rej, ok := AsRejection(err); ok {
			r := Result{Outcome: Rejected, EventID: p.EventID, Rejection: rej}
			if cur != nil {
				r.CustomerID = cur.CustomerID
			}
			return r, nil
		}
		return Result{}, err
	}
	if newCustomer && prep.Event.Customer != nil {
		prep.Event.Customer.NewCustomer = true
	}
	payload, err := proto.Marshal(prep.Event)
	if err != nil {
		return Result{}, fmt.Errorf("marshal event: %w", err)
	}
	if cur == nil {
		for _, ik := range p.IdentityKeys {
			if b.ids[ik] == "" {
				b.ids[ik] = next.CustomerID
				b.links[ik] = next.CustomerID
			}
		}
	}
	b.events[p.EventID] = next.CustomerID
	b.orders[k] = &next
	if !b.isDirty[k] {
		b.isDirty[k] = true
		b.changed = append(b.changed, k)
	}
	b.added = append(b.added, AddedEvent{
		Prepared: p, Seq: next.Events, CustomerID: next.CustomerID,
		OccurredAt: prep.Event.GetOccurredAt().AsTime().UnixMicro(), Payload: payload,
	})
	return Result{Outcome: Accepted, EventID: p.EventID, CustomerID: next.CustomerID, Event: prep.Event, Payload: payload}, nil
}

// Links are the identity links the batch made (key → customer).
func (b *Batch) Links() map[string]string { return b.links }

// Added are the canonical events the batch accepted, in order.
func (b *Batch) Added() []AddedEvent { return b.added }

// Changed calls fn for each order the batch changed, saying whether it
// was stored before the batch.
func (b *Batch) Changed(fn func(o *Order, stored bool)) {
	for _, k := range b.changed {
		fn(b.orders[k], b.existing[k])
	}
}
