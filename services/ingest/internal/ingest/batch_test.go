package ingest

import (
	"testing"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
)

// TestBatch applies events to a batch as a store would load it, without a
// database: duplicates are recognised (stored, or earlier in the batch),
// the most specific linked key names the customer, a new customer's keys
// are linked, and only what was accepted is to be written.
func TestBatch(t *testing.T) {
	p := testPreparer(t)
	prepare := func(o *ingestv1.Order) *Prepared {
		t.Helper()
		pr, err := p.Prepare(o, testNow)
		if err != nil {
			t.Fatal(err)
		}
		return pr
	}
	known := prepare(order(paid, 1000))
	known.Key.OrderID = "stored"
	known.EventID = known.Key.EventID()

	// Order 2's e-mail is linked to cus_ann; its platform id is not.
	second := order(paid, 500)
	second.OrderId = "2"
	second.Customer.PlatformCustomerId = "c2"
	secondPrep := prepare(second)
	// Order 3 is new, from a new customer.
	third := order(paid, 700)
	third.OrderId = "3"
	third.Customer = &ingestv1.CustomerInput{PlatformCustomerId: "c3", Email: "bob@example.com"}
	thirdPrep := prepare(third)

	b := NewBatch()
	b.Ingested(known.EventID, "cus_ann")
	b.Linked(secondPrep.IdentityKeys[1], "cus_ann")

	tests := []struct {
		name         string
		p            *Prepared
		want         Outcome
		wantCustomer string
	}{
		{"stored event", known, Duplicate, "cus_ann"},
		{"e-mail linked, platform id not", secondPrep, Accepted, "cus_ann"},
		{"same event again in the batch", secondPrep, Duplicate, "cus_ann"},
		{"new customer", thirdPrep, Accepted, thirdPrep.NewCustomerID},
		{"refund over the order", prepare(func() *ingestv1.Order { o := refundOf("r", 501); o.OrderId = "2"; return o }()), Rejected, "cus_ann"},
	}
	for _, tt := range tests {
		r, err := b.Apply(tt.p, "EUR")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if r.Outcome != tt.want || r.CustomerID != tt.wantCustomer {
			t.Errorf("%s: outcome %v, customer %q; want %v, %q", tt.name, r.Outcome, r.CustomerID, tt.want, tt.wantCustomer)
		}
	}
	links := b.Links()
	if len(links) != 3 || links[secondPrep.IdentityKeys[0]] != "cus_ann" || links[thirdPrep.IdentityKeys[1]] != thirdPrep.NewCustomerID {
		t.Errorf("links = %v, want c2's platform key to cus_ann and both of the new customer's keys", links)
	}
	if n := len(b.Added()); n != 2 {
		t.Errorf("%d events to write, want 2", n)
	}
	changed := 0
	b.Changed(func(o *Order, stored bool) {
		changed++
		if stored {
			t.Errorf("order %s counted as stored", o.OrderID)
		}
	})
	if changed != 2 {
		t.Errorf("%d orders changed, want 2", changed)
	}
}
