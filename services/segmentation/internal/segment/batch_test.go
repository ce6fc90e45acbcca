package segment

import (
	"slices"
	"testing"
	"time"
)

// TestOrderBatchApply checks the batch rules without a store: numbered
// events wait for their predecessor (or apply when forced), an event
// recognised by id applies once and only when fresh, and the changed
// orders and customers are listed once each.
func TestOrderBatchApply(t *testing.T) {
	numbered := func(id string, kind Kind, order string, seq int32) Event {
		ev := paid(id, order, day0, 1000, false, "web")
		ev.Kind, ev.Seq = kind, seq
		return ev
	}
	key := func(order string) OrderKey { return OrderKey{"shopify", order} }
	tests := []struct {
		name        string
		orders      map[OrderKey]*Order
		fresh       map[string]bool
		evs         []Event
		force       bool
		wantApplied int
		wantLater   []int
		wantOrders  int64
	}{
		{name: "in order", evs: []Event{numbered("a", Placed, "o1", 1), numbered("b", Paid, "o1", 2)},
			wantApplied: 2, wantOrders: 1},
		{name: "payment before its placed event, in one batch", evs: []Event{numbered("b", Paid, "o1", 2), numbered("a", Placed, "o1", 1)},
			wantApplied: 2, wantOrders: 1},
		{name: "payment without its placed event waits", evs: []Event{numbered("b", Paid, "o1", 2)},
			wantApplied: 0, wantLater: []int{0}},
		{name: "forced, it applies", evs: []Event{numbered("b", Paid, "o1", 2)}, force: true,
			wantApplied: 1, wantOrders: 1},
		{name: "a position applied before is skipped", orders: map[OrderKey]*Order{key("o1"): {Source: "shopify", OrderID: "o1", Status: OrderPlaced, LastSeq: 2}},
			evs: []Event{numbered("b", Paid, "o1", 2)}, wantApplied: 0},
		{name: "unnumbered, fresh, once", fresh: map[string]bool{"u": true},
			evs: []Event{paid("u", "o2", day0, 500, false, "web"), paid("u", "o2", day0, 500, false, "web")}, wantApplied: 1, wantOrders: 1},
		{name: "unnumbered, applied before", fresh: map[string]bool{},
			evs: []Event{paid("u", "o2", day0, 500, false, "web")}, wantApplied: 0},
		{name: "numbered event of an order stored before numbering goes by id",
			orders: map[OrderKey]*Order{key("o3"): {Source: "shopify", OrderID: "o3", Status: OrderPlaced, LastSeq: -1}},
			fresh:  map[string]bool{"p": true}, evs: []Event{numbered("p", Paid, "o3", 5)}, wantApplied: 1, wantOrders: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &OrderBatch{Customers: map[string]*Customer{}, Orders: map[OrderKey]*Order{}, Fresh: tt.fresh}
			for k, o := range tt.orders {
				b.Orders[k] = o
			}
			applied, later := b.Apply(tt.evs, tt.force)
			if applied != tt.wantApplied || !slices.Equal(later, tt.wantLater) {
				t.Errorf("applied %d, later %v; want %d, %v", applied, later, tt.wantApplied, tt.wantLater)
			}
			var orders int64
			if c := b.Customers["c1"]; c != nil && c.Features != nil {
				orders = c.Features.Orders
			}
			if orders != tt.wantOrders {
				t.Errorf("orders %d, want %d", orders, tt.wantOrders)
			}
			if tt.wantOrders > 0 && !slices.Equal(b.ChangedCustomers, []string{"c1"}) {
				t.Errorf("changed customers %v, want [c1]", b.ChangedCustomers)
			}
		})
	}
}

// TestAgonyBatchApply checks that only a state that moved is written and
// only a flip of a customer with features rescores them.
func TestAgonyBatchApply(t *testing.T) {
	t1, t2 := day0, day0.Add(time.Hour)
	b := &AgonyBatch{
		States:    map[string]AgonyState{"known": {On: true, AsOf: t2}, "same": {On: true, AsOf: t1}},
		Customers: map[string]*Customer{"known": {Features: &Features{CustomerID: "known"}, Agony: true}, "new": {Features: &Features{CustomerID: "new"}}},
	}
	applied := b.Apply([]AgonyMark{
		{EventID: "e1", CustomerID: "known", At: t1},         // older than the state: ignored
		{EventID: "e2", CustomerID: "new", On: true, At: t1}, // first mark, with features: flips
		{EventID: "e3", CustomerID: "same", On: true, At: t2.Add(500 * time.Nanosecond)},
		{EventID: "e4", CustomerID: "nobody", On: true, At: t1}, // no features: waits for a first order
	})
	if applied != 3 {
		t.Errorf("applied %d, want 3", applied)
	}
	if want := []string{"new", "same", "nobody"}; !slices.Equal(b.Marked, want) {
		t.Errorf("marked %v, want %v", b.Marked, want)
	}
	if want := []string{"new"}; !slices.Equal(b.Flipped, want) || !b.Customers["new"].Agony {
		t.Errorf("flipped %v, want %v with agony", b.Flipped, want)
	}
	if got := b.States["same"].AsOf; !got.Equal(t2) {
		t.Errorf("state kept to %v, want the microsecond %v", got, t2)
	}
	if b.EventOf["new"] != "e2" {
		t.Errorf("event of new %q, want e2", b.EventOf["new"])
	}
}

func TestAgonyBatchSet(t *testing.T) {
	now := day0.Add(time.Hour)
	b := &AgonyBatch{
		States:    map[string]AgonyState{"known": {On: true, AsOf: now.Add(time.Hour)}},
		Customers: map[string]*Customer{"known": {Features: &Features{CustomerID: "known"}, Agony: true}},
	}
	if b.Set("nobody", true, now) {
		t.Error("set a customer without features")
	}
	// By hand the mark holds whatever the stored state says.
	if !b.Set("known", false, now) {
		t.Fatal("could not clear a known customer")
	}
	if b.Customers["known"].Agony || b.States["known"] != (AgonyState{On: false, AsOf: now}) {
		t.Errorf("agony %v, state %+v; want cleared as of %v", b.Customers["known"].Agony, b.States["known"], now)
	}
	if !slices.Equal(b.Marked, []string{"known"}) || !slices.Equal(b.Flipped, []string{"known"}) || b.EventOf["known"] != "" {
		t.Errorf("marked %v, flipped %v, event %q; want known, known, none", b.Marked, b.Flipped, b.EventOf["known"])
	}
}
