package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/orderjson"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/webhook"
)

const wooSecret = "woo-webhook-secret-0123"

const (
	placed    = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED
	paid      = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
	refunded  = ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED
	cancelled = ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED
)

func wooFile(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "woocommerce", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// wooSign is X-WC-Webhook-Signature of body.
func wooSign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func wooRequest(body []byte, sig, delivery string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "WooCommerce/9.3.3 Hookshot (WordPress/6.6.2)")
	h.Set(webhook.HeaderWCSource, "https://shop.example.com/")
	h.Set(webhook.HeaderWCTopic, "order.deleted")
	h.Set(webhook.HeaderWCResource, "order")
	h.Set(webhook.HeaderWCEvent, "deleted")
	h.Set(webhook.HeaderWCID, "12")
	if sig != "" {
		h.Set(webhook.HeaderWCSignature, sig)
	}
	if delivery != "" {
		h.Set(webhook.HeaderWCDeliveryID, delivery)
	}
	return h
}

func TestWooCommerceRegistered(t *testing.T) {
	p, ok := webhook.Lookup("woocommerce")
	if !ok || p.Verify == nil || p.Ping == nil || p.Header == nil || p.Map == nil {
		t.Fatalf("Lookup(woocommerce) = %+v, %v: want the platform with Verify, Ping, Header and Map", p, ok)
	}
}

func TestWooCommerceVerify(t *testing.T) {
	body := wooFile(t, "deleted.json")
	const delivery = "9b2c0d41f5e6a7b8c9d0e1f2a3b4c5d6"
	// Computed with openssl (dgst -sha256 -hmac … -binary | base64) and
	// sha256sum of the file, not with the code under test.
	const sig = "Jyqr5hPvxEIJlfWARSD84+V92FyJrjtB99Avr/eBC04="
	const wantID = delivery + ".d580993e534dd901"
	if got := wooSign(body, wooSecret); got != sig {
		t.Fatalf("test vector: signature %s, want %s (testdata changed?)", got, sig)
	}

	tests := []struct {
		name     string
		body     []byte
		secret   string
		sig      string
		delivery string
		want     error
	}{
		{"good", body, wooSecret, sig, delivery, nil},
		{"wrong secret", body, "another-secret-456789", sig, delivery, webhook.ErrSignature},
		{"body changed", []byte(`{"id":1071}`), wooSecret, sig, delivery, webhook.ErrSignature},
		{"no signature", body, wooSecret, "", delivery, webhook.ErrSignature},
		{"signature not base64", body, wooSecret, "not base64!", delivery, webhook.ErrSignature},
		{"signature too short", body, wooSecret, base64.StdEncoding.EncodeToString([]byte("short")), delivery, webhook.ErrSignature},
		{"hex, not base64", body, wooSecret, strings.Repeat("ab", 32), delivery, webhook.ErrSignature},
		{"no delivery id", body, wooSecret, sig, "", webhook.ErrDeliveryID},
		{"delivery id with a space", body, wooSecret, sig, "9b2c 0d41", webhook.ErrDeliveryID},
	}
	now := time.Date(2026, 10, 20, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := webhook.WooCommerce.Verify(wooRequest(tt.body, tt.sig, tt.delivery), tt.body, []byte(tt.secret), now, time.Minute)
			if tt.want == nil {
				if err != nil || id != wantID {
					t.Fatalf("Verify = %q, %v; want %q, nil", id, err, wantID)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %q, %v; want %v", id, err, tt.want)
			}
		})
	}

	t.Run("no replay window", func(t *testing.T) {
		// WooCommerce signs no time: a delivery verifies whenever it comes.
		if _, err := webhook.WooCommerce.Verify(wooRequest(body, sig, delivery), body, []byte(wooSecret), now.AddDate(1, 0, 0), time.Second); err != nil {
			t.Fatalf("Verify a year later: %v", err)
		}
	})
	t.Run("same delivery id, another body", func(t *testing.T) {
		// WooCommerce's delivery id is the webhook's id and the second:
		// two deliveries of the same second must stay two.
		other := []byte(`{"id":1071}`)
		id, err := webhook.WooCommerce.Verify(wooRequest(other, wooSign(other, wooSecret), delivery), other, []byte(wooSecret), now, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if id == wantID || !strings.HasPrefix(id, delivery+".") {
			t.Errorf("id %q: want the delivery id with another digest than %q", id, wantID)
		}
	})
}

func TestWooCommercePing(t *testing.T) {
	ping := wooFile(t, "ping.txt")
	form := func() http.Header {
		h := http.Header{}
		h.Set("User-Agent", "WooCommerce/9.3.3 Hookshot (WordPress/6.6.2)")
		h.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
		return h
	}
	order := wooFile(t, "processing-coupon.json")
	signed := wooRequest(order, wooSign(order, wooSecret), "d-1")
	signed.Set(webhook.HeaderWCTopic, "order.updated")

	tests := []struct {
		name string
		h    http.Header
		body []byte
		want bool
	}{
		{"the ping", form(), ping, true},
		{"the ping without content type", func() http.Header { h := form(); h.Del("Content-Type"); return h }(), ping, true},
		{"a signed order", signed, order, false},
		{"a signed order's body without headers", form(), order, false},
		{"JSON content type", func() http.Header { h := form(); h.Set("Content-Type", "application/json"); return h }(), ping, false},
		{"signed", func() http.Header { h := form(); h.Set(webhook.HeaderWCSignature, wooSign(ping, wooSecret)); return h }(), ping, false},
		{"with a topic", func() http.Header { h := form(); h.Set(webhook.HeaderWCTopic, "order.updated"); return h }(), ping, false},
		{"no id", form(), []byte("webhook_id="), false},
		{"id not a number", form(), []byte("webhook_id=abc"), false},
		{"another field", form(), []byte("webhook_id=12&x=1"), false},
		{"another name", form(), []byte("webhook=12"), false},
		{"empty", form(), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := webhook.WooCommerce.Ping(tt.h, tt.body); got != tt.want {
				t.Errorf("Ping = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWooCommerceHeader(t *testing.T) {
	h := wooRequest(nil, "c2lnbmF0dXJl", "d-1")
	h.Set("Authorization", "Basic c2VjcmV0")
	got := webhook.WooCommerce.Header(h)
	want := map[string]string{
		"X-WC-Webhook-Topic":       "order.deleted",
		"X-WC-Webhook-Resource":    "order",
		"X-WC-Webhook-Event":       "deleted",
		"X-WC-Webhook-Source":      "https://shop.example.com/",
		"X-WC-Webhook-ID":          "12",
		"X-WC-Webhook-Delivery-ID": "d-1",
	}
	for k, v := range want {
		// Read as the NATS header will be: case-sensitive.
		if vs := got[k]; len(vs) != 1 || vs[0] != v {
			t.Errorf("%s = %q, want [%q]", k, vs, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("kept %d headers, want %d: %v", len(got), len(want), got)
	}
}

func eur(minor int64) *commonv1.Money    { return &commonv1.Money{MinorUnits: minor, Currency: "EUR"} }
func gbp(minor int64) *commonv1.Money    { return &commonv1.Money{MinorUnits: minor, Currency: "GBP"} }
func pln(minor int64) *commonv1.Money    { return &commonv1.Money{MinorUnits: minor, Currency: "PLN"} }
func usd(minor int64) *commonv1.Money    { return &commonv1.Money{MinorUnits: minor, Currency: "USD"} }
func at(s string) *timestamppb.Timestamp { return timestamppb.New(mustTime(s)) }

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// as returns a copy of o of another kind at another time.
func as(o *ingestv1.Order, kind ordersv1.OrderEventKind, when string) *ingestv1.Order {
	c := proto.Clone(o).(*ingestv1.Order)
	c.Kind, c.OccurredAt = kind, at(when)
	return c
}

func refund(orderID, id string, amount *commonv1.Money, when string) *ingestv1.Order {
	return &ingestv1.Order{OrderId: orderID, Kind: refunded, OccurredAt: at(when),
		Refund: &ingestv1.RefundInput{RefundId: id, Amount: amount}}
}

func cancel(orderID, when string) *ingestv1.Order {
	return &ingestv1.Order{OrderId: orderID, Kind: cancelled, OccurredAt: at(when)}
}

// TestWooCommerceMap maps each testdata delivery. The expected amounts
// are worked out by hand from the files' decimal strings.
func TestWooCommerceMap(t *testing.T) {
	// 1042: 10% coupon welcome10; lines 2 × (108.00 after the coupon) and
	// 3 × 18.00 of a variation without SKU (product 318).
	o1042 := &ingestv1.Order{
		OrderId: "1042", Kind: placed, OccurredAt: at("2026-10-03T09:14:07Z"), Channel: "checkout",
		Total: eur(15708), Shipping: eur(490), Tax: eur(2618),
		Discount: &ingestv1.DiscountInput{Codes: []string{"welcome10"}, Amount: eur(1400)},
		Customer: &ingestv1.CustomerInput{PlatformCustomerId: "17", Email: "marie.dupont@example.com", Country: "FR"},
		Items: []*ingestv1.LineItemInput{
			{Sku: "TR2-42", Quantity: 2, UnitPrice: eur(5400)},
			{Sku: "product-318", Quantity: 3, UnitPrice: eur(600)},
		},
	}
	// 1057: a guest, GBP; 25.00 / 3 = 8.333… → 8.33, 5.00 / 3 = 1.666… → 1.67.
	o1057 := &ingestv1.Order{
		OrderId: "1057", Kind: placed, OccurredAt: at("2026-10-12T17:40:51Z"), Channel: "store-api",
		Total: gbp(4100), Shipping: gbp(417), Tax: gbp(683),
		Customer: &ingestv1.CustomerInput{Email: "j.hughes@example.co.uk", Country: "GB"},
		Items: []*ingestv1.LineItemInput{
			{Sku: "SOCK-3PK", Quantity: 3, UnitPrice: gbp(833)},
			{Sku: "LACES-RD", Quantity: 3, UnitPrice: gbp(167)},
		},
	}
	o1063 := &ingestv1.Order{
		OrderId: "1063", Kind: placed, OccurredAt: at("2026-10-05T14:02:44Z"), Channel: "checkout",
		Total: eur(9032), Shipping: eur(590), Tax: eur(1442),
		Customer: &ingestv1.CustomerInput{PlatformCustomerId: "23", Email: "lukas.becker@example.de", Country: "DE"},
		Items:    []*ingestv1.LineItemInput{{Sku: "JKT-RAIN-M", Quantity: 1, UnitPrice: eur(7000)}},
	}
	o1066 := &ingestv1.Order{
		OrderId: "1066", Kind: placed, OccurredAt: at("2026-10-06T08:20:33Z"), Channel: "checkout",
		Total: eur(4500), Shipping: eur(0), Tax: eur(811),
		Customer: &ingestv1.CustomerInput{PlatformCustomerId: "31", Email: "sofia.rossi@example.it", Country: "IT"},
		Items:    []*ingestv1.LineItemInput{{Sku: "TOTE-CNV", Quantity: 1, UnitPrice: eur(3689)}},
	}
	o1070 := &ingestv1.Order{
		OrderId: "1070", Kind: placed, OccurredAt: at("2026-10-07T19:05:10Z"), Channel: "checkout",
		Total: pln(20000), Shipping: pln(0), Tax: pln(3740),
		Customer: &ingestv1.CustomerInput{Email: "p.nowak@example.pl", Country: "PL"},
		Items:    []*ingestv1.LineItemInput{{Sku: "BEANIE-WL", Quantity: 2, UnitPrice: pln(8130)}},
	}
	o1074 := &ingestv1.Order{
		OrderId: "1074", Kind: placed, OccurredAt: at("2026-10-10T22:47:19Z"), Channel: "checkout",
		Total: usd(13964), Shipping: usd(0), Tax: usd(1064),
		Customer: &ingestv1.CustomerInput{PlatformCustomerId: "44", Email: "a.khan@example.com", Country: "US"},
		Items:    []*ingestv1.LineItemInput{{Sku: "TR2-10", Quantity: 1, UnitPrice: usd(12900)}},
	}

	tests := []struct {
		file  string
		topic string
		want  []*ingestv1.Order
	}{
		{"processing-coupon.json", "order.created", []*ingestv1.Order{o1042, as(o1042, paid, "2026-10-03T09:14:12Z")}},
		{"completed-gbp.json", "order.updated", []*ingestv1.Order{o1057, as(o1057, paid, "2026-10-12T17:41:03Z")}},
		{"partially-refunded.json", "order.updated", []*ingestv1.Order{
			o1063, as(o1063, paid, "2026-10-05T14:02:51Z"),
			refund("1063", "1068", eur(500), "2026-10-09T10:31:16Z"),
			refund("1063", "1071", eur(1250), "2026-10-09T10:31:16Z"),
		}},
		{"refunded.json", "order.updated", []*ingestv1.Order{
			o1066, as(o1066, paid, "2026-10-06T08:20:41Z"), refund("1066", "1080", eur(4500), "2026-10-08T16:45:02Z"),
		}},
		{"cancelled-unpaid.json", "order.updated", []*ingestv1.Order{o1070, cancel("1070", "2026-10-14T19:05:33Z")}},
		{"failed.json", "order.updated", []*ingestv1.Order{o1074}},
		{"processing-coupon.json", "order.restored", []*ingestv1.Order{o1042, as(o1042, paid, "2026-10-03T09:14:12Z")}},
		{"deleted.json", "order.deleted", []*ingestv1.Order{cancel("1070", "2026-10-20T08:30:00Z")}},
	}
	val, err := grpcx.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.topic, func(t *testing.T) {
			h := nats.Header{}
			h.Set(webhook.HeaderWCTopic, tt.topic)
			h.Set(webhook.HeaderReceivedAt, "2026-10-20T08:30:00Z")
			got, err := webhook.WooCommerce.Map(h, wooFile(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d orders, want %d:\n%s", len(got), len(tt.want), dump(got))
			}
			for i := range got {
				if !proto.Equal(got[i], tt.want[i]) {
					t.Errorf("order %d:\n got %s\nwant %s", i, dump(got[i:i+1]), dump(tt.want[i:i+1]))
				}
				// Every order must pass the rules the bus consumer applies.
				o := proto.Clone(got[i]).(*ingestv1.Order)
				o.Source = "shop-woo"
				if v, err := bus.Check(val, o); err != nil || len(v) > 0 {
					t.Errorf("order %d breaks the input rules: %v %v", i, v, err)
				}
			}
		})
	}
}

func dump(orders []*ingestv1.Order) string {
	var b strings.Builder
	for _, o := range orders {
		b.WriteString(protojson.Format(o))
		b.WriteString("\n")
	}
	return b.String()
}

// edit returns the testdata file name with fields replaced.
func edit(tb testing.TB, name string, fields map[string]any) []byte {
	tb.Helper()
	var doc map[string]any
	if err := json.Unmarshal(wooFile(tb, name), &doc); err != nil {
		tb.Fatal(err)
	}
	for k, v := range fields {
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func kinds(orders []*ingestv1.Order) []string {
	var out []string
	for _, o := range orders {
		k := strings.ToLower(strings.TrimPrefix(o.GetKind().String(), "ORDER_EVENT_KIND_"))
		if r := o.GetRefund(); r != nil {
			k += ":" + r.GetRefundId()
		}
		out = append(out, k)
	}
	return out
}

// TestWooCommerceStatuses: which events each status yields, from the
// partially refunded order (two refunds, paid on 2026-10-05).
func TestWooCommerceStatuses(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"pending", map[string]any{"status": "pending", "date_paid_gmt": nil, "refunds": []any{}}, "placed"},
		{"on-hold", map[string]any{"status": "on-hold", "date_paid_gmt": nil, "refunds": []any{}}, "placed"},
		{"failed", map[string]any{"status": "failed", "date_paid_gmt": nil}, "placed"},
		{"on-hold after payment and refunds", map[string]any{"status": "on-hold"}, "placed refunded:1068 refunded:1071"},
		{"processing", map[string]any{"status": "processing"}, "placed paid refunded:1068 refunded:1071"},
		{"completed", map[string]any{"status": "completed"}, "placed paid refunded:1068 refunded:1071"},
		{"refunded", map[string]any{"status": "refunded"}, "placed paid refunded:1068 refunded:1071"},
		{"cancelled after payment", map[string]any{"status": "cancelled"}, "placed paid refunded:1068 refunded:1071 cancelled"},
		{"cancelled unpaid", map[string]any{"status": "cancelled", "date_paid_gmt": nil}, "placed cancelled"},
		{"trash", map[string]any{"status": "trash"}, ""},
		{"checkout-draft", map[string]any{"status": "checkout-draft"}, ""},
		{"a plugin's status", map[string]any{"status": "shipped"}, ""},
		{"a refund of nothing", map[string]any{"refunds": []any{map[string]any{"id": 1090, "total": "-0.00"}}}, "placed paid"},
		{"refund ids as strings, newest first", map[string]any{"refunds": []any{
			map[string]any{"id": "1100", "total": "-1.00"}, map[string]any{"id": "999", "total": "-2.00"},
		}}, "placed paid refunded:999 refunded:1100"},
	}
	h := nats.Header{webhook.HeaderWCTopic: {"order.updated"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.WooCommerce.Map(h, edit(t, "partially-refunded.json", tt.fields))
			if err != nil {
				t.Fatal(err)
			}
			if g := strings.Join(kinds(got), " "); g != tt.want {
				t.Errorf("events %q, want %q", g, tt.want)
			}
		})
	}

	t.Run("paid at completion without a payment date", func(t *testing.T) {
		got, err := webhook.WooCommerce.Map(h, edit(t, "completed-gbp.json", map[string]any{"date_paid_gmt": nil}))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !proto.Equal(got[1].GetOccurredAt(), at("2026-10-14T07:02:19Z")) {
			t.Errorf("paid at %v, want the completion 2026-10-14T07:02:19Z:\n%s", got[len(got)-1].GetOccurredAt().AsTime(), dump(got))
		}
	})
}

func TestWooCommerceLines(t *testing.T) {
	lines := []any{
		map[string]any{"id": 1, "product_id": 7, "variation_id": 0, "quantity": 3, "total": "20.00", "sku": ""},
		map[string]any{"id": 2, "product_id": 0, "variation_id": 0, "quantity": 1, "total": "1.00", "sku": nil},
		map[string]any{"id": 3, "product_id": 8, "variation_id": 0, "quantity": 0, "total": "0.00", "sku": "GONE"},
		map[string]any{"id": 4, "product_id": 9, "variation_id": 0, "quantity": 7, "total": "10.00", "sku": " SKU-9 "},
	}
	got, err := webhook.WooCommerce.Map(nats.Header{webhook.HeaderWCTopic: {"order.updated"}},
		edit(t, "processing-coupon.json", map[string]any{"line_items": lines}))
	if err != nil {
		t.Fatal(err)
	}
	// 2000 / 3 = 666.67 → 667; 1000 / 7 = 142.86 → 143; a line of no
	// quantity counts nothing.
	want := []*ingestv1.LineItemInput{
		{Sku: "product-7", Quantity: 3, UnitPrice: eur(667)},
		{Sku: "item-2", Quantity: 1, UnitPrice: eur(100)},
		{Sku: "SKU-9", Quantity: 7, UnitPrice: eur(143)},
	}
	items := got[0].GetItems()
	if len(items) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(items), len(want), dump(got[:1]))
	}
	for i := range want {
		if !proto.Equal(items[i], want[i]) {
			t.Errorf("line %d = %v, want %v", i, items[i], want[i])
		}
	}
}

func TestWooCommerceTopics(t *testing.T) {
	order := wooFile(t, "processing-coupon.json")
	t.Run("another resource", func(t *testing.T) {
		got, err := webhook.WooCommerce.Map(nats.Header{webhook.HeaderWCTopic: {"product.updated"}}, []byte(`{"id":318,"name":"Cotton socks"}`))
		if err != nil || len(got) != 0 {
			t.Errorf("Map = %d orders, %v; want none", len(got), err)
		}
	})
	t.Run("topic header in another case", func(t *testing.T) {
		got, err := webhook.WooCommerce.Map(nats.Header{"X-Wc-Webhook-Topic": {"order.updated"}}, order)
		if err != nil || len(got) != 2 {
			t.Errorf("Map = %d orders, %v; want 2", len(got), err)
		}
	})
	t.Run("no topic", func(t *testing.T) {
		_, err := webhook.WooCommerce.Map(nats.Header{}, order)
		if !errors.Is(err, orderjson.ErrSyntax) {
			t.Errorf("Map: %v, want orderjson.ErrSyntax", err)
		}
	})
	t.Run("deleted without the time received", func(t *testing.T) {
		_, err := webhook.WooCommerce.Map(nats.Header{webhook.HeaderWCTopic: {"order.deleted"}}, []byte(`{"id":1070}`))
		var je *orderjson.Error
		if !errors.As(err, &je) || je.Field != webhook.HeaderReceivedAt || errors.Is(err, orderjson.ErrSyntax) {
			t.Errorf("Map: %v, want an *orderjson.Error naming %s", err, webhook.HeaderReceivedAt)
		}
	})
	t.Run("deleted, id as a string", func(t *testing.T) {
		h := nats.Header{webhook.HeaderWCTopic: {"order.deleted"}, webhook.HeaderReceivedAt: {"2026-10-20T08:30:00Z"}}
		got, err := webhook.WooCommerce.Map(h, []byte(`{"id":"1070"}`))
		if err != nil || len(got) != 1 || !proto.Equal(got[0], cancel("1070", "2026-10-20T08:30:00Z")) {
			t.Errorf("Map = %s, %v; want the cancellation of 1070", dump(got), err)
		}
	})
}

func TestWooCommerceErrors(t *testing.T) {
	updated := nats.Header{webhook.HeaderWCTopic: {"order.updated"}}
	deleted := nats.Header{webhook.HeaderWCTopic: {"order.deleted"}, webhook.HeaderReceivedAt: {"2026-10-20T08:30:00Z"}}
	tests := []struct {
		name  string
		h     nats.Header
		body  []byte
		field string // "" for a body that is not the shape (ErrSyntax)
		is    error
	}{
		{"not JSON", updated, []byte("webhook_id=12"), "", orderjson.ErrSyntax},
		{"an array", updated, []byte(`[{"id":1042}]`), "", orderjson.ErrSyntax},
		{"no id", updated, []byte(`{"status":"processing"}`), "id", orderjson.ErrSyntax},
		{"no status", updated, []byte(`{"id":1042}`), "status", orderjson.ErrSyntax},
		{"total not an amount", updated, edit(t, "processing-coupon.json", map[string]any{"total": true}), "total", orderjson.ErrSyntax},
		{"deleted: id an object", deleted, []byte(`{"id":{"n":1}}`), "id", orderjson.ErrSyntax},
		{"deleted: no id", deleted, []byte(`{}`), "id", orderjson.ErrSyntax},
		{"id not whole", updated, edit(t, "processing-coupon.json", map[string]any{"id": 1042.5}), "id", nil},
		{"bad total", updated, edit(t, "processing-coupon.json", map[string]any{"total": "157.0x"}), "total", money.ErrSyntax},
		{"too precise", updated, edit(t, "processing-coupon.json", map[string]any{"shipping_total": "4.905"}), "shipping_total", money.ErrPrecision},
		{"bad line total", updated, edit(t, "processing-coupon.json", map[string]any{"line_items": []any{
			map[string]any{"id": 1, "product_id": 7, "quantity": 1, "total": "-3.00", "sku": "X"},
		}}), "line_items[0].total", money.ErrRange},
		{"fractional quantity", updated, edit(t, "processing-coupon.json", map[string]any{"line_items": []any{
			map[string]any{"id": 1, "product_id": 7, "quantity": 1.5, "total": "3.00", "sku": "X"},
		}}), "line_items[0].quantity", nil},
		{"bad refund", updated, edit(t, "partially-refunded.json", map[string]any{"refunds": []any{
			map[string]any{"id": 1068, "total": "-five"},
		}}), "refunds[0].total", money.ErrSyntax},
		{"bad date", updated, edit(t, "processing-coupon.json", map[string]any{"date_created_gmt": "03/10/2026"}), "date_created_gmt", nil},
		{"no currency", updated, edit(t, "processing-coupon.json", map[string]any{"currency": ""}), "currency", nil},
		{"unknown currency", updated, edit(t, "processing-coupon.json", map[string]any{"currency": "BTC"}), "currency", money.ErrUnknownCurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.WooCommerce.Map(tt.h, tt.body)
			var je *orderjson.Error
			if !errors.As(err, &je) {
				t.Fatalf("Map = %d orders, %v; want an *orderjson.Error", len(got), err)
			}
			if je.Field != tt.field {
				t.Errorf("field %q, want %q (%v)", je.Field, tt.field, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v, want %v", err, tt.is)
			}
			if tt.is != orderjson.ErrSyntax && errors.Is(err, orderjson.ErrSyntax) {
				t.Errorf("error %v is ErrSyntax: the body has the shape, a value is wrong", err)
			}
		})
	}
}
