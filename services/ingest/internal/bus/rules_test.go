package bus

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

// TestOrderRules checks the field rules declared in ingest.proto and the
// text rules (ingest.CheckText), which every input applies.
func TestOrderRules(t *testing.T) {
	valid := func() *ingestv1.Order {
		return &ingestv1.Order{
			Source: "shop-eu", OrderId: "1", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
			OccurredAt: timestamppb.New(time.Now().Add(-time.Hour)),
			Total:      &commonv1.Money{MinorUnits: 1000, Currency: "EUR"},
			Customer:   &ingestv1.CustomerInput{Email: " Ann@Example.com "},
			Items: []*ingestv1.LineItemInput{{Sku: "A", Quantity: 1,
				UnitPrice: &commonv1.Money{MinorUnits: 1000, Currency: "EUR"}}},
		}
	}
	tests := []struct {
		name      string
		mutate    func(o *ingestv1.Order)
		wantField string // "" means valid
	}{
		{"valid", func(*ingestv1.Order) {}, ""},
		{"guest refund needs no customer", func(o *ingestv1.Order) {
			o.Kind, o.Customer, o.Total = ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, nil, nil
			o.Refund = &ingestv1.RefundInput{RefundId: "r", Amount: &commonv1.Money{MinorUnits: 1, Currency: "EUR"}}
		}, ""},
		{"no order id", func(o *ingestv1.Order) { o.OrderId = "" }, "order_id"},
		{"long order id", func(o *ingestv1.Order) { o.OrderId = strings.Repeat("x", 129) }, "order_id"},
		{"source with capitals", func(o *ingestv1.Order) { o.Source = "Shop" }, "source"},
		{"no kind", func(o *ingestv1.Order) { o.Kind = 0 }, "kind"},
		{"undefined kind", func(o *ingestv1.Order) { o.Kind = 42 }, "kind"},
		{"no time", func(o *ingestv1.Order) { o.OccurredAt = nil }, "occurred_at"},
		{"before 2000", func(o *ingestv1.Order) { o.OccurredAt = timestamppb.New(time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)) }, "occurred_at"},
		{"in the future", func(o *ingestv1.Order) { o.OccurredAt = timestamppb.New(time.Now().Add(2 * time.Hour)) }, "(message)"},
		{"no total", func(o *ingestv1.Order) { o.Total = nil }, "(message)"},
		{"negative total", func(o *ingestv1.Order) { o.Total.MinorUnits = -1 }, "total"},
		{"huge total", func(o *ingestv1.Order) { o.Total.MinorUnits = 1e15 }, "total"},
		{"lower-case currency", func(o *ingestv1.Order) { o.Total.Currency = "eur" }, "total.currency"},
		{"mixed currencies", func(o *ingestv1.Order) { o.Items[0].UnitPrice.Currency = "USD" }, "(message)"},
		{"no customer key", func(o *ingestv1.Order) { o.Customer.Email = "" }, "(message)"},
		{"bad e-mail", func(o *ingestv1.Order) { o.Customer.Email = "ann at example" }, "customer.email"},
		{"bad country", func(o *ingestv1.Order) { o.Customer.Country = "usa" }, "customer.country"},
		{"zero quantity", func(o *ingestv1.Order) { o.Items[0].Quantity = 0 }, "items[0].quantity"},
		{"item without price", func(o *ingestv1.Order) { o.Items[0].UnitPrice = nil }, "items[0].unit_price"},
		{"too many items", func(o *ingestv1.Order) {
			for len(o.Items) <= 500 {
				o.Items = append(o.Items, proto.Clone(o.Items[0]).(*ingestv1.LineItemInput))
			}
		}, "items"},
		{"refund on a paid event", func(o *ingestv1.Order) {
			o.Refund = &ingestv1.RefundInput{RefundId: "r", Amount: &commonv1.Money{MinorUnits: 1, Currency: "EUR"}}
		}, "(message)"},
		{"refund of nothing", func(o *ingestv1.Order) {
			o.Kind = ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED
			o.Refund = &ingestv1.RefundInput{RefundId: "r", Amount: &commonv1.Money{MinorUnits: 0, Currency: "EUR"}}
		}, "refund.amount"},
		{"bad birthday", func(o *ingestv1.Order) { o.Customer.Birthday = &commonv1.Birthday{Month: 13, Day: 1} }, "customer.birthday.month"},
		{"non-ASCII text is fine", func(o *ingestv1.Order) { o.OrderId, o.Items[0].Category = "注文-1", "Schuhe & Stiefel" }, ""},
		{"NUL in order id", func(o *ingestv1.Order) { o.OrderId = "1\x00" }, "order_id"},
		{"newline in source", func(o *ingestv1.Order) { o.Source = "shop\n" }, "source"},
		{"DEL in channel", func(o *ingestv1.Order) { o.Channel = "web\x7f" }, "channel"},
		{"escape in customer id", func(o *ingestv1.Order) { o.Customer.PlatformCustomerId = "\x1b[31m" }, "customer.platform_customer_id"},
		{"NUL in e-mail", func(o *ingestv1.Order) { o.Customer.Email = "ann@example.com\x00" }, "customer.email"},
		{"C1 control in referral code", func(o *ingestv1.Order) { o.Customer.ReferralCode = "R\u009b1" }, "customer.referral_code"},
		{"replacement character in sku", func(o *ingestv1.Order) { o.Items[0].Sku = "A\uFFFD" }, "items[0].sku"},
		{"tab in category", func(o *ingestv1.Order) { o.Items[0].Category = "a\tb" }, "items[0].category"},
		{"NUL in a discount code", func(o *ingestv1.Order) { o.Discount = &ingestv1.DiscountInput{Codes: []string{"OK", "X\x00"}} }, "discount.codes[1]"},
		{"NUL in refund id", func(o *ingestv1.Order) {
			o.Kind, o.Customer, o.Total, o.Items = ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, nil, nil, nil
			o.Refund = &ingestv1.RefundInput{RefundId: "r\x00", Amount: &commonv1.Money{MinorUnits: 1, Currency: "EUR"}}
		}, "refund.refund_id"},
	}
	val, err := grpcx.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.mutate(o)
			violations, err := Check(val, o)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantField == "" {
				if len(violations) > 0 {
					t.Fatalf("valid order rejected: %v", violations)
				}
				return
			}
			for _, v := range violations {
				if v.Field == tt.wantField {
					return
				}
			}
			t.Fatalf("violations %v, want one on %s", violations, tt.wantField)
		})
	}
}
