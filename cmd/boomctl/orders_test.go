package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

func eur(minor int64) *commonv1.Money { return &commonv1.Money{MinorUnits: minor, Currency: "EUR"} }

func TestBuildOrder(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	base := func() orderFlags {
		return orderFlags{source: "shop-eu", orderID: "1001", kind: "paid", currency: "EUR", total: "120.00", email: "ada@example.com"}
	}
	tests := []struct {
		name string
		edit func(f *orderFlags)
		want *ingestv1.Order
	}{
		{
			name: "minimal paid order, occurred now",
			edit: func(*orderFlags) {},
			want: &ingestv1.Order{
				Source: "shop-eu", OrderId: "1001", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
				OccurredAt: timestamppb.New(now), Total: eur(12000),
				Customer: &ingestv1.CustomerInput{Email: "ada@example.com"},
			},
		},
		{
			name: "every field, amounts exact in minor units",
			edit: func(f *orderFlags) {
				f.kind = "Placed"
				f.occurredAt = "2026-11-01T10:00:00+01:00"
				f.currency = "eur"
				f.total = "19.99"
				f.shipping = "4.5"
				f.tax = "0.01"
				f.discountCodes = []string{"BF20", "VIP"}
				f.discount = "20"
				f.channel = "web"
				f.customerID = "c-9"
				f.items = []string{"SHOE-1:shoes:2:5.00", "GIFT::1:0.99", "a:b:c:cat:3:1.10"}
				f.test = true
			},
			want: &ingestv1.Order{
				Source: "shop-eu", OrderId: "1001", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED,
				OccurredAt: timestamppb.New(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)),
				Total:      eur(1999), Shipping: eur(450), Tax: eur(1),
				Discount: &ingestv1.DiscountInput{Codes: []string{"BF20", "VIP"}, Amount: eur(2000)},
				Channel:  "web",
				Customer: &ingestv1.CustomerInput{PlatformCustomerId: "c-9", Email: "ada@example.com"},
				Items: []*ingestv1.LineItemInput{
					{Sku: "SHOE-1", Category: "shoes", Quantity: 2, UnitPrice: eur(500)},
					{Sku: "GIFT", Quantity: 1, UnitPrice: eur(99)},
					{Sku: "a:b:c", Category: "cat", Quantity: 3, UnitPrice: eur(110)},
				},
				Test: true,
			},
		},
		{
			name: "zero-decimal currency",
			edit: func(f *orderFlags) { f.currency, f.total = "JPY", "5000" },
			want: &ingestv1.Order{
				Source: "shop-eu", OrderId: "1001", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
				OccurredAt: timestamppb.New(now), Total: &commonv1.Money{MinorUnits: 5000, Currency: "JPY"},
				Customer: &ingestv1.CustomerInput{Email: "ada@example.com"},
			},
		},
		{
			name: "refund without total or customer",
			edit: func(f *orderFlags) {
				*f = orderFlags{source: "shop-eu", orderID: "1001", kind: "refunded", currency: "EUR", refundID: "r1", refund: "30.00"}
			},
			want: &ingestv1.Order{
				Source: "shop-eu", OrderId: "1001", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED,
				OccurredAt: timestamppb.New(now),
				Refund:     &ingestv1.RefundInput{RefundId: "r1", Amount: eur(3000)},
			},
		},
		{
			name: "cancellation in either spelling",
			edit: func(f *orderFlags) { *f = orderFlags{source: "shop-eu", orderID: "1001", kind: "canceled"} },
			want: &ingestv1.Order{
				Source: "shop-eu", OrderId: "1001", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED,
				OccurredAt: timestamppb.New(now),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base()
			tt.edit(&f)
			got, err := f.build(now)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			if !proto.Equal(got, tt.want) {
				t.Errorf("order:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestBuildOrderErrors(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		edit    func(f *orderFlags)
		wantErr string // a substring of the message the operator sees
		wantIs  error  // when set, the error wraps it
	}{
		{name: "no source", edit: func(f *orderFlags) { f.source = " " }, wantErr: "--source is required"},
		{name: "no order id", edit: func(f *orderFlags) { f.orderID = "" }, wantErr: "--order-id is required"},
		{name: "unknown kind", edit: func(f *orderFlags) { f.kind = "shipped" }, wantErr: `--kind: want placed, paid, refunded or cancelled, got "shipped"`},
		{name: "bad time", edit: func(f *orderFlags) { f.occurredAt = "2026-11-01 10:00" }, wantErr: "--occurred-at: want RFC 3339"},
		{name: "amount without currency", edit: func(f *orderFlags) { f.currency = "" }, wantErr: "--total needs --currency"},
		{name: "unknown currency", edit: func(f *orderFlags) { f.currency = "XYZ" }, wantErr: "--total: unknown currency", wantIs: money.ErrUnknownCurrency},
		{name: "too many decimals", edit: func(f *orderFlags) { f.total = "1.001" }, wantErr: "--total: more decimal places", wantIs: money.ErrPrecision},
		{name: "decimals on a zero-decimal currency", edit: func(f *orderFlags) { f.currency, f.total = "JPY", "10.5" }, wantIs: money.ErrPrecision, wantErr: "--total"},
		{name: "negative amount", edit: func(f *orderFlags) { f.shipping = "-1" }, wantErr: "--shipping", wantIs: money.ErrRange},
		{name: "not a number", edit: func(f *orderFlags) { f.tax = "1,50" }, wantErr: "--tax", wantIs: money.ErrSyntax},
		{name: "bad discount", edit: func(f *orderFlags) { f.discount = "ten" }, wantErr: "--discount", wantIs: money.ErrSyntax},
		{name: "refund id without amount", edit: func(f *orderFlags) { f.refundID = "r1" }, wantErr: "--refund-id needs --refund"},
		{name: "refund amount without id", edit: func(f *orderFlags) { f.refund = "1.00" }, wantErr: "--refund needs --refund-id"},
		{name: "bad refund amount", edit: func(f *orderFlags) { f.refundID, f.refund = "r1", "1.2.3" }, wantErr: "--refund", wantIs: money.ErrSyntax},
		{name: "item with too few parts", edit: func(f *orderFlags) { f.items = []string{"SKU:2:5.00"} }, wantErr: `--item "SKU:2:5.00": want SKU:category:qty:price`},
		{name: "item without sku", edit: func(f *orderFlags) { f.items = []string{":cat:1:5.00"} }, wantErr: "empty SKU"},
		{name: "item quantity zero", edit: func(f *orderFlags) { f.items = []string{"S:c:0:5.00"} }, wantErr: `quantity "0" is not a whole number of at least 1`},
		{name: "item quantity not a number", edit: func(f *orderFlags) { f.items = []string{"S:c:two:5.00"} }, wantErr: `quantity "two"`},
		{name: "item price", edit: func(f *orderFlags) { f.items = []string{"S:c:1:5.001"} }, wantErr: `--item "S:c:1:5.001": price`, wantIs: money.ErrPrecision},
		{name: "item without currency", edit: func(f *orderFlags) { f.currency, f.total = "", ""; f.items = []string{"S:c:1:5"} }, wantErr: "needs --currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := orderFlags{source: "shop-eu", orderID: "1001", kind: "paid", currency: "EUR", total: "120.00"}
			tt.edit(&f)
			_, err := f.build(now)
			if err == nil {
				t.Fatal("build succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
		})
	}
}

func TestReadOrders(t *testing.T) {
	one := &ingestv1.Order{
		Source: "shop-eu", OrderId: "1001", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
		OccurredAt: timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)), Total: eur(12000),
	}
	tests := []struct {
		name    string
		doc     string
		want    *ingestv1.SubmitOrdersRequest
		wantErr string
	}{
		{
			name: "one order, proto field names",
			doc:  `{"source":"shop-eu","order_id":"1001","kind":"ORDER_EVENT_KIND_PAID","occurred_at":"2026-11-01T10:00:00Z","total":{"minor_units":"12000","currency":"EUR"}}`,
			want: &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{one}},
		},
		{
			name: "request with orders, JSON names",
			doc:  `{"orders":[{"source":"shop-eu","orderId":"1001","kind":2,"occurredAt":"2026-11-01T10:00:00Z","total":{"minorUnits":12000,"currency":"EUR"}},{"source":"shop-eu","orderId":"1001","kind":"ORDER_EVENT_KIND_CANCELLED","occurredAt":"2026-11-01T10:00:00Z"}]}`,
			want: &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{one, {
				Source: "shop-eu", OrderId: "1001", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED,
				OccurredAt: timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)),
			}}},
		},
		{name: "not an object", doc: `[{"source":"shop-eu"}]`, wantErr: "want a JSON object"},
		{name: "not JSON", doc: `source=shop-eu`, wantErr: "want a JSON object"},
		{name: "shop JSON format", doc: `{"order_id":"1001","currency":"EUR","total":"120.00"}`, wantErr: `amounts as {"minorUnits"`},
		{name: "bad request", doc: `{"orders":[{"nope":1}]}`, wantErr: "SubmitOrdersRequest:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readOrders(strings.NewReader(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}
