package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
)

func orderAt(kind ordersv1.OrderEventKind, source, id, customer, email string, at time.Time) *ingestv1.Order {
	return &ingestv1.Order{
		Source: source, OrderId: id, Kind: kind, OccurredAt: timestamppb.New(at),
		Total:    &commonv1.Money{MinorUnits: 1000, Currency: "EUR"},
		Customer: &ingestv1.CustomerInput{PlatformCustomerId: customer, Email: email},
	}
}

// TestCustomer: a customer's keys by kind, their most recently placed
// orders with the shop's placed and paid times, the number of orders, and
// look-up by key.
func TestCustomer(t *testing.T) {
	const (
		placed = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED
		paidK  = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
	)
	day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 12, 0, 0, 0, time.UTC) }
	h, err := ingest.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st, p := openStore(t, b.URL(t)), preparer(t)
			res := apply(t, st, p,
				orderAt(paidK, "s", "1", "c1", "ann@example.com", day(5, 1)),
				orderAt(placed, "s", "2", "c1", "", day(6, 1)),
				orderAt(paidK, "s", "2", "c1", "", day(6, 2)),
				orderAt(paidK, "t", "3", "", "ann@example.com", day(4, 1)),
				orderAt(paidK, "s", "9", "c2", "bob@example.com", day(7, 1)),
			)
			id := res[0].CustomerID
			if res[3].CustomerID != id || res[4].CustomerID == id {
				t.Fatalf("customers %v", res)
			}
			c, err := st.Customer(ctx, id, 2)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[ingest.KeyKind]int{}
			for _, k := range c.Keys {
				kinds[k.Kind]++
				if k.FirstSeenAt.IsZero() {
					t.Errorf("key %v without a time", k)
				}
			}
			if len(c.Keys) != 2 || kinds[ingest.KeyPlatform] != 1 || kinds[ingest.KeyEmail] != 1 {
				t.Errorf("keys %v, want one platform and one e-mail key", c.Keys)
			}
			if c.OrderCount != 3 || len(c.Orders) != 2 {
				t.Fatalf("%d orders, %d listed: want 3 and the 2 most recent", c.OrderCount, len(c.Orders))
			}
			o2, o1 := c.Orders[0], c.Orders[1]
			if o2.OrderID != "2" || !o2.PlacedAt.Equal(day(6, 1)) || !o2.PaidAt.Equal(day(6, 2)) || o2.Status != ingestv1.OrderStatus_ORDER_STATUS_PAID {
				t.Errorf("first order %+v, want order 2 placed 1 June, paid 2 June", o2)
			}
			if o1.OrderID != "1" || !o1.PlacedAt.IsZero() || !o1.PaidAt.Equal(day(5, 1)) || o1.BaseTotal != 1000 {
				t.Errorf("second order %+v, want order 1 paid 1 May, never placed", o1)
			}
			for _, k := range []string{h.EmailKey(" Ann@Example.com"), h.PlatformKey("s", "c1")} {
				if got, err := st.CustomerByKey(ctx, k); err != nil || got != id {
					t.Errorf("by key %s: %q %v, want %s", k[:2], got, err, id)
				}
			}
			if _, err := st.CustomerByKey(ctx, h.PlatformKey("t", "c1")); !errors.Is(err, ingest.ErrCustomerNotFound) {
				t.Errorf("a key never seen: %v", err)
			}
			if _, err := st.Customer(ctx, "cus_none", 20); !errors.Is(err, ingest.ErrCustomerNotFound) {
				t.Errorf("an unknown customer: %v", err)
			}
		})
	}
}
