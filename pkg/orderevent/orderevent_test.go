package orderevent_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/fx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderevent"
)

func rates(t *testing.T) *fx.Table {
	t.Helper()
	r, err := fx.Load("EUR", strings.NewReader("date,currency,rate\n2026-01-01,USD,0.9\n2026-06-01,USD,0.8\n"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func usd(minor int64) *commonv1.Money { return &commonv1.Money{MinorUnits: minor, Currency: "USD"} }

// Every amount is converted with the rate of the order's date, and the
// rest of the order is carried over.
func TestBuild(t *testing.T) {
	o := &ingestv1.Order{
		Source: "shop", OrderId: "A-1", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, Channel: "web",
		OccurredAt: timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)),
		Total:      usd(100_01), Shipping: usd(5_00), Tax: usd(15_00),
		Discount: &ingestv1.DiscountInput{Codes: []string{"TEN"}, Amount: usd(10_00)},
		Customer: &ingestv1.CustomerInput{Email: "a@example.com", ReferralCode: "cus_x", Country: "US"},
		Items: []*ingestv1.LineItemInput{
			{Sku: "S1", Category: "shoes", Quantity: 2, UnitPrice: usd(33_33)},
			{Sku: "G1", Quantity: 1, UnitPrice: usd(20_00), GiftCard: true},
		},
	}
	ev, err := orderevent.Build(rates(t), o)
	if err != nil {
		t.Fatal(err)
	}
	base := func(a *ordersv1.Amount) int64 { return a.GetBase().GetMinorUnits() }
	if ev.GetFxRate() != "0.9" || ev.GetTotal().GetMinorUnits() != 100_01 || ev.GetBaseTotal().GetMinorUnits() != 90_01 ||
		base(ev.GetShipping()) != 4_50 || base(ev.GetTax()) != 13_50 || base(ev.GetDiscount().GetAmount()) != 9_00 {
		t.Errorf("amounts: rate %s, total %v / %v, shipping %v, tax %v, discount %v",
			ev.GetFxRate(), ev.GetTotal(), ev.GetBaseTotal(), ev.GetShipping(), ev.GetTax(), ev.GetDiscount())
	}
	if len(ev.GetItems()) != 2 || base(ev.GetItems()[0].GetUnitPrice()) != 30_00 || ev.GetItems()[0].GetQuantity() != 2 || !ev.GetItems()[1].GetGiftCard() {
		t.Errorf("items: %v", ev.GetItems())
	}
	if c := ev.GetCustomer(); !c.GetGuest() || c.GetReferralCode() != "cus_x" || c.GetCountry() != "US" {
		t.Errorf("customer: %v", c)
	}
	if ev.GetEventId() != "" || ev.GetIngestedAt() != nil || ev.GetCustomerId() != "" {
		t.Errorf("identity and history filled: %v", ev)
	}
}

func TestBuildRejects(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name  string
		order *ingestv1.Order
		want  string
	}{
		{"not ISO 4217", &ingestv1.Order{OccurredAt: at, Total: &commonv1.Money{MinorUnits: 1, Currency: "XYZ"}}, orderevent.ReasonUnknownCurrency},
		{"no rate for the currency", &ingestv1.Order{OccurredAt: at, Total: &commonv1.Money{MinorUnits: 1, Currency: "GBP"}}, orderevent.ReasonNoRate},
		{"before the first rate", &ingestv1.Order{OccurredAt: timestamppb.New(time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)), Total: usd(1)}, orderevent.ReasonNoRate},
		{"refund in an unknown currency", &ingestv1.Order{OccurredAt: at, Refund: &ingestv1.RefundInput{RefundId: "R", Amount: &commonv1.Money{MinorUnits: 1, Currency: "XYZ"}}}, orderevent.ReasonUnknownCurrency},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := orderevent.Build(rates(t), tc.order)
			r, ok := err.(*orderevent.Rejection)
			if !ok || r.Reason != tc.want {
				t.Errorf("Build: %v, want a %s rejection", err, tc.want)
			}
		})
	}
}

// A platform's own conversion (Shopify's shop money) decides the base
// values: the total is worth exactly what the seller received, the other
// amounts the same share of it, and an order in a currency the table has
// no rate for is accepted.
func TestBuildSettled(t *testing.T) {
	gbp := func(minor int64) *commonv1.Money { return &commonv1.Money{MinorUnits: minor, Currency: "GBP"} }
	o := &ingestv1.Order{
		Source: "shop", OrderId: "A-2", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
		OccurredAt: timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)),
		Total:      gbp(80_00), Shipping: gbp(4_00),
		Items:        []*ingestv1.LineItemInput{{Sku: "S1", Quantity: 1, UnitPrice: gbp(76_00)}},
		SettledTotal: &commonv1.Money{MinorUnits: 92_00, Currency: "EUR"},
	}
	ev, err := orderevent.Build(rates(t), o)
	if err != nil {
		t.Fatal(err)
	}
	// 92.00 / 80.00 = 1.15 EUR per GBP: 4.00 GBP is 4.60 EUR, 76.00 GBP 87.40 EUR.
	if ev.GetFxRate() != "1.15" || ev.GetBaseTotal().GetMinorUnits() != 92_00 || ev.GetShipping().GetBase().GetMinorUnits() != 4_60 ||
		ev.GetItems()[0].GetUnitPrice().GetBase().GetMinorUnits() != 87_40 || ev.GetSettledTotal().GetMinorUnits() != 92_00 {
		t.Errorf("rate %s, base total %v, shipping %v, item %v, settled %v", ev.GetFxRate(), ev.GetBaseTotal(),
			ev.GetShipping(), ev.GetItems()[0].GetUnitPrice(), ev.GetSettledTotal())
	}

	// Settled in USD, which the table converts at 0.9 on 2026-03-01:
	// 100.00 USD is 90.00 EUR, so the 80.00 GBP are 1.125 EUR each.
	o.SettledTotal = usd(100_00)
	if ev, err = orderevent.Build(rates(t), o); err != nil {
		t.Fatal(err)
	}
	if ev.GetFxRate() != "1.125" || ev.GetFxRateDate() != "2026-01-01" || ev.GetBaseTotal().GetMinorUnits() != 90_00 {
		t.Errorf("settled in a third currency: rate %s of %s, base total %v", ev.GetFxRate(), ev.GetFxRateDate(), ev.GetBaseTotal())
	}

	o.SettledTotal = &commonv1.Money{MinorUnits: 1, Currency: "XYZ"}
	if _, err := orderevent.Build(rates(t), o); err == nil || err.(*orderevent.Rejection).Reason != orderevent.ReasonUnknownCurrency {
		t.Errorf("settled in an unknown currency: %v", err)
	}
}
