package ingest

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/fx"
)

var (
	paid     = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
	placed   = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED
	refunded = ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED
	cancel   = ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED
)

func testPreparer(tb testing.TB) *Preparer {
	tb.Helper()
	rates, err := fx.Load("EUR", strings.NewReader("date,currency,rate\n2026-01-01,USD,0.9\n2026-06-01,USD,0.8\n"))
	if err != nil {
		tb.Fatal(err)
	}
	h, err := NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		tb.Fatal(err)
	}
	return NewPreparer(rates, h)
}

// testNow is when the tests ingest.
var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func usd(minor int64) *commonv1.Money { return &commonv1.Money{MinorUnits: minor, Currency: "USD"} }

func order(kind ordersv1.OrderEventKind, total int64) *ingestv1.Order {
	o := &ingestv1.Order{
		Source: "shop", OrderId: "1", Kind: kind,
		OccurredAt: timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)),
		Customer:   &ingestv1.CustomerInput{PlatformCustomerId: "c1", Email: " Ann@Example.com"},
	}
	if total >= 0 {
		o.Total = usd(total)
	}
	return o
}

func refundOf(id string, amount int64) *ingestv1.Order {
	o := order(refunded, -1)
	o.Customer = nil
	o.Refund = &ingestv1.RefundInput{RefundId: id, Amount: usd(amount)}
	return o
}

func TestNormaliseEmailAndKeys(t *testing.T) {
	h, _ := NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	other, _ := NewHasher([]byte("another secret of at least 32 bytes!"))
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"case and spaces", "  Ann@Example.COM ", "ann@example.com", true},
		{"different people", "ann@example.com", "bob@example.com", false},
		{"plus addressing is kept", "ann+shop@example.com", "ann@example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.EmailKey(tt.a) == h.EmailKey(tt.b); got != tt.same {
				t.Fatalf("EmailKey(%q) == EmailKey(%q) is %v, want %v", tt.a, tt.b, got, tt.same)
			}
		})
	}
	if h.EmailKey("ann@example.com") == other.EmailKey("ann@example.com") {
		t.Error("keys do not depend on the secret")
	}
	if strings.Contains(h.EmailKey("ann@example.com"), "ann") {
		t.Error("the key shows the address")
	}
	if h.PlatformKey("shop-a", "42") == h.PlatformKey("shop-b", "42") {
		t.Error("platform ids of different sources collide")
	}
	if _, err := NewHasher([]byte("short")); err == nil {
		t.Error("a short secret was accepted")
	}
}

func TestPrepare(t *testing.T) {
	p := testPreparer(t)
	tests := []struct {
		name       string
		order      func() *ingestv1.Order
		wantReason string
		check      func(t *testing.T, got *Prepared)
	}{
		{
			name:  "paid order converted at the rate of its date",
			order: func() *ingestv1.Order { return order(paid, 10000) },
			check: func(t *testing.T, got *Prepared) {
				if got.BaseTotal != 9000 || got.Event.GetFxRate() != "0.9" || got.Event.GetFxRateDate() != "2026-01-01" {
					t.Errorf("base %d at %s of %s", got.BaseTotal, got.Event.GetFxRate(), got.Event.GetFxRateDate())
				}
				if len(got.IdentityKeys) != 2 || !strings.HasPrefix(got.IdentityKeys[0], "p:") || got.Guest {
					t.Errorf("identity keys %v, guest %v", got.IdentityKeys, got.Guest)
				}
				if got.NewCustomerID == "" || !strings.HasPrefix(got.NewCustomerID, "cus_") {
					t.Errorf("new customer id %q", got.NewCustomerID)
				}
			},
		},
		{
			name: "later rate applies from its date",
			order: func() *ingestv1.Order {
				o := order(paid, 10000)
				o.OccurredAt = timestamppb.New(time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
				return o
			},
			check: func(t *testing.T, got *Prepared) {
				if got.BaseTotal != 8000 {
					t.Errorf("base total %d, want 8000", got.BaseTotal)
				}
			},
		},
		{
			name: "guest by e-mail",
			order: func() *ingestv1.Order {
				o := order(paid, 100)
				o.Customer.PlatformCustomerId = ""
				return o
			},
			check: func(t *testing.T, got *Prepared) {
				if !got.Guest || len(got.IdentityKeys) != 1 || !strings.HasPrefix(got.IdentityKeys[0], "e:") {
					t.Errorf("guest %v keys %v", got.Guest, got.IdentityKeys)
				}
			},
		},
		{
			name: "base currency needs no rate",
			order: func() *ingestv1.Order {
				o := order(paid, 100)
				o.Total.Currency = "EUR"
				o.OccurredAt = timestamppb.New(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
				return o
			},
			check: func(t *testing.T, got *Prepared) {
				if got.BaseTotal != 100 || got.Event.GetFxRate() != "1" {
					t.Errorf("base %d rate %s", got.BaseTotal, got.Event.GetFxRate())
				}
			},
		},
		{
			name: "unknown currency",
			order: func() *ingestv1.Order {
				o := order(paid, 100)
				o.Total.Currency = "ABC"
				return o
			},
			wantReason: ReasonUnknownCurr,
		},
		{
			name: "no rate before the order's date",
			order: func() *ingestv1.Order {
				o := order(paid, 100)
				o.OccurredAt = timestamppb.New(time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC))
				return o
			},
			wantReason: ReasonNoRate,
		},
		{
			name:  "refund keys include the refund id",
			order: func() *ingestv1.Order { return refundOf("r-1", 500) },
			check: func(t *testing.T, got *Prepared) {
				if got.Key.RefundID != "r-1" || got.RefundAmount != 500 || len(got.IdentityKeys) != 0 {
					t.Errorf("key %+v amount %d keys %v", got.Key, got.RefundAmount, got.IdentityKeys)
				}
				other := Key{Source: got.Key.Source, OrderID: got.Key.OrderID, Kind: got.Key.Kind, RefundID: "r-2"}
				if got.EventID == other.EventID() {
					t.Error("event id ignores the refund id")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Prepare(tt.order(), testNow)
			if tt.wantReason != "" {
				rej, ok := AsRejection(err)
				if !ok || rej.Reason != tt.wantReason {
					t.Fatalf("Prepare error = %v, want rejection %s", err, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}

func TestEventID(t *testing.T) {
	a := Key{Source: "s", OrderID: "1", Kind: refunded, RefundID: "r1"}
	b := Key{Source: "s", OrderID: "1", Kind: refunded, RefundID: "r2"}
	c := Key{Source: "s1", OrderID: "", Kind: refunded, RefundID: "r1"}
	if a.EventID() == b.EventID() || a.EventID() != a.EventID() {
		t.Fatal("event ids are not a function of the key")
	}
	// The separator keeps ("s", "1") and ("s1", "") apart.
	if (Key{Source: "s", OrderID: "1"}).EventID() == (Key{Source: "s1"}).EventID() || c.EventID() == a.EventID() {
		t.Fatal("event ids of different keys collide")
	}
}

// history applies events in turn, as the store does.
func history(t *testing.T, p *Preparer, orders ...*ingestv1.Order) (*Order, error) {
	t.Helper()
	var cur *Order
	for _, o := range orders {
		prep, err := p.Prepare(o, testNow)
		if err != nil {
			return cur, err
		}
		next, err := Apply(cur, prep, "cus_x", "EUR")
		if err != nil {
			return cur, err
		}
		cur = &next
	}
	return cur, nil
}

func TestApply(t *testing.T) {
	p := testPreparer(t)
	cancelled := order(cancel, -1)
	cancelled.Customer = nil
	tests := []struct {
		name       string
		events     []*ingestv1.Order
		wantReason string
		want       Order
	}{
		{
			name:   "placed then paid",
			events: []*ingestv1.Order{order(placed, 10000), order(paid, 11000)},
			want:   Order{Status: ingestv1.OrderStatus_ORDER_STATUS_PAID, Total: 11000, BaseTotal: 9900, Events: 2},
		},
		{
			name:   "paid then a late placed keeps the paid amounts",
			events: []*ingestv1.Order{order(paid, 11000), order(placed, 10000)},
			want:   Order{Status: ingestv1.OrderStatus_ORDER_STATUS_PAID, Total: 11000, BaseTotal: 9900, Events: 2},
		},
		{
			name:   "partial refunds",
			events: []*ingestv1.Order{order(paid, 10000), refundOf("r1", 3000), refundOf("r2", 3333)},
			want:   Order{Status: ingestv1.OrderStatus_ORDER_STATUS_PARTIALLY_REFUNDED, Total: 10000, BaseTotal: 9000, Refunded: 6333, BaseRefunded: 2700 + 3000, Events: 3},
		},
		{
			name:   "refunding the rest gives back exactly the base value",
			events: []*ingestv1.Order{order(paid, 1001), refundOf("r1", 333), refundOf("r2", 668)},
			want:   Order{Status: ingestv1.OrderStatus_ORDER_STATUS_REFUNDED, Total: 1001, BaseTotal: 901, Refunded: 1001, BaseRefunded: 901, Events: 3},
		},
		{
			name:       "refund beyond what is left",
			events:     []*ingestv1.Order{order(paid, 10000), refundOf("r1", 6000), refundOf("r2", 4001)},
			wantReason: ReasonRefundExceeds,
		},
		{
			name:       "refund of an unknown order",
			events:     []*ingestv1.Order{refundOf("r1", 1)},
			wantReason: ReasonUnknownOrder,
		},
		{
			name:       "refund of an unpaid order",
			events:     []*ingestv1.Order{order(placed, 100), refundOf("r1", 1)},
			wantReason: ReasonNotPaid,
		},
		{
			name:   "cancellation",
			events: []*ingestv1.Order{order(paid, 100), cancelled},
			want:   Order{Status: ingestv1.OrderStatus_ORDER_STATUS_CANCELLED, Total: 100, BaseTotal: 90, Events: 2},
		},
		{
			name:   "refund after cancellation is recorded; the order stays cancelled",
			events: []*ingestv1.Order{order(paid, 100), cancelled, refundOf("r1", 1)},
			want:   Order{Status: ingestv1.OrderStatus_ORDER_STATUS_CANCELLED, Total: 100, BaseTotal: 90, Refunded: 1, BaseRefunded: 1, Paid: true, Events: 3},
		},
		{
			name:   "payment that arrives after the cancellation is recorded",
			events: []*ingestv1.Order{order(placed, 100), cancelled, order(paid, 110)},
			want:   Order{Status: ingestv1.OrderStatus_ORDER_STATUS_CANCELLED, Total: 110, BaseTotal: 99, Paid: true, Events: 3},
		},
		{
			name:   "placed after the cancellation of a paid order keeps the paid amounts",
			events: []*ingestv1.Order{order(paid, 110), cancelled, order(placed, 100)},
			want:   Order{Status: ingestv1.OrderStatus_ORDER_STATUS_CANCELLED, Total: 110, BaseTotal: 99, Paid: true, Events: 3},
		},
		{
			name:       "refund of an order cancelled before payment waits for the payment",
			events:     []*ingestv1.Order{order(placed, 100), cancelled, refundOf("r1", 1)},
			wantReason: ReasonNotPaid,
		},
		{
			name:       "cancelling an unknown order",
			events:     []*ingestv1.Order{cancelled},
			wantReason: ReasonUnknownOrder,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := history(t, p, tt.events...)
			if tt.wantReason != "" {
				rej, ok := AsRejection(err)
				if !ok || rej.Reason != tt.wantReason {
					t.Fatalf("error = %v, want rejection %s", err, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.want.Status || got.Total != tt.want.Total || got.BaseTotal != tt.want.BaseTotal ||
				got.Refunded != tt.want.Refunded || got.BaseRefunded != tt.want.BaseRefunded || got.Events != tt.want.Events ||
				(tt.want.Paid && !got.Paid) {
				t.Fatalf("order = %+v\nwant    %+v", *got, tt.want)
			}
		})
	}
}

func TestApplyFillsTheEvent(t *testing.T) {
	p := testPreparer(t)
	cur, err := history(t, p, order(paid, 10000))
	if err != nil {
		t.Fatal(err)
	}
	prep, err := p.Prepare(refundOf("r1", 2500), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(cur, prep, "", "EUR"); err != nil {
		t.Fatal(err)
	}
	ev := prep.Event
	if ev.GetCustomerId() != "cus_x" || ev.GetOrderSequence() != 2 || ev.GetTotal().GetMinorUnits() != 10000 ||
		ev.GetRefund().GetAmount().GetBase().GetMinorUnits() != 2250 || ev.GetRefund().GetRefundedTotal().GetOriginal().GetMinorUnits() != 2500 {
		t.Fatalf("refund event = %v", ev)
	}
}

func TestProportion(t *testing.T) {
	const big = 100_000_000_000_000
	if got := proportion(big, big-1, big); got != big-1 {
		t.Fatalf("proportion near the bound = %d", got)
	}
	if got := proportion(901, 333, 1001); got != 300 { // 299.73 rounds up
		t.Fatalf("proportion(901, 333, 1001) = %d, want 300", got)
	}
}
