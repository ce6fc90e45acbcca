package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/orderjson"
)

const shopifySecret = "shpss_0123456789abcdef0123456789abcdef"

func shopifySign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestShopifyVerify(t *testing.T) {
	body := readTestdata(t, "shopify/orders-paid-multicurrency.json")
	good := func() http.Header {
		h := http.Header{}
		h.Set(ShopifyHMAC, shopifySign(body, shopifySecret))
		h.Set(ShopifyWebhookID, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
		h.Set(ShopifyEventID, "98880550-7158-44d4-b7cd-2c97c8a091b5")
		h.Set(ShopifyTopic, "orders/paid")
		return h
	}
	id, err := Shopify.Verify(good(), body, []byte(shopifySecret), time.Time{}, 0)
	if err != nil || id != "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043" {
		t.Fatalf("Verify = %q, %v; want the webhook id", id, err)
	}
	h := good()
	h.Del(ShopifyWebhookID)
	if id, err := Shopify.Verify(h, body, []byte(shopifySecret), time.Time{}, 0); err != nil || id != "98880550-7158-44d4-b7cd-2c97c8a091b5" {
		t.Errorf("without a webhook id: %q, %v; want the event id", id, err)
	}
	tests := []struct {
		name string
		edit func(h http.Header, b []byte) []byte
		want error
	}{
		{"wrong secret", func(h http.Header, b []byte) []byte {
			h.Set(ShopifyHMAC, shopifySign(b, "another-secret-0123456789"))
			return b
		}, ErrSignature},
		{"body changed", func(_ http.Header, b []byte) []byte { return []byte(strings.Replace(string(b), "110.00", "11.00", 1)) }, ErrSignature},
		{"no signature", func(h http.Header, b []byte) []byte { h.Del(ShopifyHMAC); return b }, ErrSignature},
		{"hex, not base64", func(h http.Header, b []byte) []byte { h.Set(ShopifyHMAC, strings.Repeat("ab", 32)); return b }, ErrSignature},
		{"no delivery id", func(h http.Header, b []byte) []byte { h.Del(ShopifyWebhookID); h.Del(ShopifyEventID); return b }, ErrDeliveryID},
		{"delivery id with a space", func(h http.Header, b []byte) []byte { h.Set(ShopifyWebhookID, "a b"); return b }, ErrDeliveryID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good()
			b := tt.edit(h, append([]byte(nil), body...))
			if _, err := Shopify.Verify(h, b, []byte(shopifySecret), time.Time{}, 0); !errors.Is(err, tt.want) {
				t.Errorf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
}

func at(s string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return timestamppb.New(t)
}

func cash(minor int64, currency string) *commonv1.Money {
	return &commonv1.Money{MinorUnits: minor, Currency: currency}
}

const (
	placed    = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED
	paid      = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
	refunded  = ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED
	cancelled = ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED
)

// placedAndPaid is the placed event o and a paid one like it.
func placedAndPaid(o *ingestv1.Order) []*ingestv1.Order {
	o.Kind = placed
	p := proto.Clone(o).(*ingestv1.Order)
	p.Kind = paid
	return []*ingestv1.Order{o, p}
}

// TestShopifyMap: each testdata delivery becomes the events written out
// here by hand from the payload.
func TestShopifyMap(t *testing.T) {
	tests := []struct {
		file, topic string
		want        []*ingestv1.Order
	}{{
		// The customer paid 110.00 USD (2 × 30.00 + a 50.00 gift card +
		// 10.00 shipping − 10.00 off); the EUR shop received 99.00.
		file: "orders-paid-multicurrency.json", topic: "orders/paid",
		want: placedAndPaid(&ingestv1.Order{
			OrderId: "5678901234567890123", OccurredAt: at("2026-11-20T14:14:02Z"), Channel: "web",
			Total: cash(110_00, "USD"), SettledTotal: cash(99_00, "EUR"), Shipping: cash(10_00, "USD"), Tax: cash(0, "USD"),
			Discount: &ingestv1.DiscountInput{Codes: []string{"WELCOME10"}, Amount: cash(10_00, "USD")},
			Items: []*ingestv1.LineItemInput{
				{Sku: "TEE-ORG-M", Quantity: 2, UnitPrice: cash(30_00, "USD")},
				{Sku: "variant-4512345678901234599", Quantity: 1, UnitPrice: cash(50_00, "USD"), GiftCard: true},
			},
			Customer: &ingestv1.CustomerInput{PlatformCustomerId: "7234567890123456789", Email: "Mia.Wong@example.com",
				MarketingConsent: new(true), Country: "US"},
		}),
	}, {
		// 80.00 charged, 50.00 left after refunds of 20.00 and 10.00 (a
		// failed attempt and a restock without money are no refunds).
		file: "orders-updated-partial-refunds.json", topic: "orders/updated",
		want: append(placedAndPaid(&ingestv1.Order{
			OrderId: "5678901234567890124", OccurredAt: at("2026-11-21T14:00:00Z"), Channel: "pos",
			Total: cash(80_00, "EUR"), Shipping: cash(0, "EUR"), Tax: cash(7_98, "EUR"),
			Items: []*ingestv1.LineItemInput{{Sku: "MUG-BLUE", Quantity: 4, UnitPrice: cash(20_00, "EUR")}},
			Customer: &ingestv1.CustomerInput{PlatformCustomerId: "7234567890123456790", Email: "leo@example.com",
				MarketingConsent: new(false), Country: "FR"},
		}),
			&ingestv1.Order{OrderId: "5678901234567890124", Kind: refunded, OccurredAt: at("2026-11-23T10:00:00Z"),
				Refund: &ingestv1.RefundInput{RefundId: "900000000000000001", Amount: cash(20_00, "EUR")}},
			&ingestv1.Order{OrderId: "5678901234567890124", Kind: refunded, OccurredAt: at("2026-11-25T09:30:00Z"),
				Refund: &ingestv1.RefundInput{RefundId: "900000000000000002", Amount: cash(10_00, "EUR")}},
		),
	}, {
		// Edited before payment: the socks went, 60.00 was paid.
		file: "orders-paid-edited.json", topic: "orders/updated",
		want: placedAndPaid(&ingestv1.Order{
			OrderId: "5678901234567890125", OccurredAt: at("2026-11-22T08:00:00Z"), Channel: "shopify_draft_order",
			Total: cash(60_00, "EUR"), Shipping: cash(0, "EUR"), Tax: cash(0, "EUR"),
			Items:    []*ingestv1.LineItemInput{{Sku: "BOOT-42", Quantity: 1, UnitPrice: cash(60_00, "EUR")}},
			Customer: &ingestv1.CustomerInput{PlatformCustomerId: "7234567890123456791", Email: "ines@example.com", MarketingConsent: new(false)},
		}),
	}, {
		// Never paid, then cancelled: placed at its original value.
		file: "orders-cancelled-unpaid.json", topic: "orders/cancelled",
		want: []*ingestv1.Order{{
			OrderId: "5678901234567890126", Kind: placed, OccurredAt: at("2026-11-23T18:20:00Z"), Channel: "web",
			Total:    cash(35_50, "EUR"),
			Items:    []*ingestv1.LineItemInput{{Sku: "CAP-RED", Quantity: 1, UnitPrice: cash(35_50, "EUR")}},
			Customer: &ingestv1.CustomerInput{PlatformCustomerId: "7234567890123456792", Email: "olu@example.com"},
		}, {OrderId: "5678901234567890126", Kind: cancelled, OccurredAt: at("2026-11-24T09:00:00Z")}},
	}, {
		// Yen have no decimals; "1500.0" is 1,500 yen. A test order.
		file: "orders-paid-jpy.json", topic: "orders/create",
		want: placedAndPaid(&ingestv1.Order{
			OrderId: "5678901234567890127", OccurredAt: at("2026-11-24T01:00:00Z"), Channel: "web", Test: true,
			Total: cash(1500, "JPY"), SettledTotal: cash(9_40, "EUR"),
			Items:    []*ingestv1.LineItemInput{{Sku: "STICKER", Quantity: 3, UnitPrice: cash(500, "JPY")}},
			Customer: &ingestv1.CustomerInput{PlatformCustomerId: "7234567890123456793", Email: "kenji@example.com"},
		}),
	}, {
		file: "refunds-create.json", topic: "refunds/create",
		want: []*ingestv1.Order{{OrderId: "5678901234567890123", Kind: refunded, OccurredAt: at("2026-11-26T19:05:00Z"),
			Refund: &ingestv1.RefundInput{RefundId: "900000000000000010", Amount: cash(30_00, "USD")}}},
	}, {
		file: "customers-redact.json", topic: "customers/redact",
	}, {
		file: "orders-paid-multicurrency.json", topic: "products/update",
	}}
	for _, tt := range tests {
		t.Run(tt.file+" as "+tt.topic, func(t *testing.T) {
			h := nats.Header{}
			h.Set(ShopifyTopic, tt.topic)
			got, err := Shopify.Map(h, readTestdata(t, "shopify/"+tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d orders, want %d:\n%v", len(got), len(tt.want), got)
			}
			for i := range got {
				if !proto.Equal(got[i], tt.want[i]) {
					t.Errorf("order %d:\n got %s\nwant %s", i, prototext.Format(got[i]), prototext.Format(tt.want[i]))
				}
			}
		})
	}
}

// TestShopifyMapErrors: a delivery that is not Shopify's shape, or whose
// amounts cannot be read, names the field.
func TestShopifyMapErrors(t *testing.T) {
	body := string(readTestdata(t, "shopify/orders-paid-multicurrency.json"))
	tests := []struct {
		name, body, field string
		want              error
	}{
		{"not JSON", `{"id": `, "", orderjson.ErrSyntax},
		{"an array", `[]`, "", orderjson.ErrSyntax},
		{"id as a float", strings.Replace(body, `"id": 5678901234567890123`, `"id": 5.678901234567890123e18`, 1), "", orderjson.ErrSyntax},
		{"no id", strings.Replace(body, `"id": 5678901234567890123,`, ``, 1), "id", orderjson.ErrSyntax},
		{"an amount that is not a number", strings.Replace(body, `"amount": "110.00", "currency_code": "USD"}}`, `"amount": "1l0.00", "currency_code": "USD"}}`, 1),
			"total_price_set.presentment_money.amount", money.ErrSyntax},
		{"cents of yen", strings.Replace(body, `"presentment_currency": "USD"`, `"presentment_currency": "JPY"`, 1),
			"current_total_price_set.presentment_money.currency_code", nil},
		{"unknown currency", strings.Replace(body, `"presentment_currency": "USD"`, `"presentment_currency": "XYZ"`, 1), "", money.ErrUnknownCurrency},
		{"no processed or created time", strings.NewReplacer(`"processed_at": "2026-11-20T09:14:02-05:00",`, ``, `"created_at": "2026-11-20T09:14:03-05:00",`, ``).Replace(body), "processed_at", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{}
			h.Set(ShopifyTopic, "orders/updated")
			_, err := Shopify.Map(h, []byte(tt.body))
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			var je *orderjson.Error
			if tt.field != "" && (!errors.As(err, &je) || je.Field != tt.field) {
				t.Errorf("error %v, want one naming %s", err, tt.field)
			}
		})
	}
}

// FuzzShopifyMap: whatever a delivery holds, Map returns orders or an
// error of the documented kinds, and never panics; every order it returns
// names its order and kind.
func FuzzShopifyMap(f *testing.F) {
	for _, name := range []string{"orders-paid-multicurrency.json", "orders-updated-partial-refunds.json", "orders-cancelled-unpaid.json", "refunds-create.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "shopify", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, name == "refunds-create.json")
	}
	f.Fuzz(func(t *testing.T, body []byte, refund bool) {
		h := nats.Header{}
		h.Set(ShopifyTopic, "orders/updated")
		if refund {
			h.Set(ShopifyTopic, "refunds/create")
		}
		orders, err := Shopify.Map(h, body)
		if err != nil {
			var je *orderjson.Error
			if !errors.As(err, &je) && !errors.Is(err, money.ErrUnknownCurrency) {
				t.Fatalf("error of another kind: %T %v", err, err)
			}
			return
		}
		for _, o := range orders {
			if o.GetOrderId() == "" || o.GetKind() == ordersv1.OrderEventKind_ORDER_EVENT_KIND_UNSPECIFIED || o.GetOccurredAt() == nil {
				t.Fatalf("incomplete order %v", o)
			}
		}
	})
}
