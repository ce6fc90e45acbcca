package bus

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/orderjson"
)

func TestDecodeContentTypes(t *testing.T) {
	pb, err := proto.Marshal(&ingestv1.Order{OrderId: "p-1", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID})
	if err != nil {
		t.Fatal(err)
	}
	js := []byte(` {"order_id": "j-1"}`)
	tests := []struct {
		name        string
		contentType string
		data        []byte
		wantID      string
		wantErr     error
	}{
		{"protobuf by header", "application/protobuf", pb, "p-1", nil},
		{"protobuf sniffed", "", pb, "p-1", nil},
		{"JSON sniffed", "", js, "j-1", nil},
		{"CloudEvents by header", "application/cloudevents+json", []byte(`{"specversion":"1.0","type":"x.paid","data":{"order_id":"c-1"}}`), "c-1", nil},
		{"JSON header on protobuf bytes", "application/json", pb, "", orderjson.ErrSyntax},
		{"unsupported type", "text/xml", js, "", orderjson.ErrSyntax},
		{"broken protobuf", "application/protobuf", []byte{0x0a, 0xff}, "", orderjson.ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{}
			if tt.contentType != "" {
				h.Set("Content-Type", tt.contentType)
			}
			o, err := Decode(h, tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && o.GetOrderId() != tt.wantID {
				t.Fatalf("order id = %q, want %q", o.GetOrderId(), tt.wantID)
			}
		})
	}
}

func TestSourceOf(t *testing.T) {
	tests := []struct {
		subject string
		want    string
		ok      bool
	}{
		{"boomerang.ingest.orders.shop-eu", "shop-eu", true},
		{"boomerang.ingest.orders.shop_2", "shop_2", true},
		{"boomerang.ingest.orders.Shop", "", false},
		{"boomerang.ingest.orders.a.b", "", false},
		{"boomerang.ingest.orders.-x", "", false},
		{"other.subject", "", false},
	}
	for _, tt := range tests {
		got, ok := sourceOf(tt.subject)
		if got != tt.want || ok != tt.ok {
			t.Errorf("sourceOf(%q) = %q, %v; want %q, %v", tt.subject, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzDecodeMessage feeds arbitrary bodies through everything a bus
// message meets before it reaches the database: no input may panic.
func FuzzDecodeMessage(f *testing.F) {
	pb, _ := proto.Marshal(&ingestv1.Order{OrderId: "p-1", Source: "s", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED,
		Refund: &ingestv1.RefundInput{RefundId: "r"}})
	f.Add(pb, "")
	f.Add([]byte(`{"order_id":"1","currency":"USD","total":"1","customer":{"email":"a@b.c"},"occurred_at":"2026-01-01T00:00:00Z"}`), "application/json")
	f.Add([]byte(`{"specversion":"1.0","type":"a.refunded","data":{"refund":{"id":"r","amount":"1","currency":"EUR"}}}`), "")
	f.Add([]byte{0x12, 0x03, 'a', 'b', 'c', 0x18, 0x63}, "application/protobuf")
	// Odd text in ids: not UTF-8 in protobuf (order_id), a NUL in
	// protobuf, a NUL escape, raw bytes and a control character in JSON.
	f.Add([]byte{0x12, 0x02, 0xff, 0xfe, 0x18, 0x02}, "application/protobuf")
	f.Add([]byte{0x12, 0x03, 'a', 0x00, 'b', 0x18, 0x02}, "")
	f.Add([]byte(`{"order_id":"a\u0000b","currency":"USD","total":"1","customer":{"email":"a@b.c"},"occurred_at":"2026-01-01T00:00:00Z"}`), "application/json")
	f.Add([]byte("{\"order_id\":\"\xff\",\"items\":[{\"sku\":\"a\x01\",\"price\":\"1\"}],\"currency\":\"usd\"}"), "")
	val, err := grpcx.NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, contentType string) {
		h := nats.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		o, err := Decode(h, data)
		if err != nil {
			return
		}
		violations, err := Check(val, o)
		if err != nil {
			t.Fatalf("rules could not be evaluated: %v", err)
		}
		if len(violations) > 0 {
			return
		}
		// What passes may reach SQL: no NUL, no bytes that are not UTF-8.
		texts := []string{o.GetSource(), o.GetOrderId(), o.GetChannel(), o.GetRefund().GetRefundId(),
			o.GetCustomer().GetPlatformCustomerId(), o.GetCustomer().GetEmail(), o.GetCustomer().GetReferralCode()}
		for _, it := range o.GetItems() {
			texts = append(texts, it.GetSku(), it.GetCategory())
		}
		texts = append(texts, o.GetDiscount().GetCodes()...)
		for _, s := range texts {
			if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) || strings.ContainsRune(s, '\uFFFD') {
				t.Fatalf("accepted text %q", s)
			}
		}
	})
}

// BenchmarkDecodeAndValidate is the per-message CPU work before the
// database: content sniffing, JSON decoding and the .proto rules.
func BenchmarkDecodeAndValidate(b *testing.B) {
	doc := []byte(`{"order_id":"o-1","kind":"paid","occurred_at":"2026-11-01T10:00:00Z","currency":"USD","total":"129.90",` +
		`"channel":"web","customer":{"id":"c-1","email":"customer1@example.com"},` +
		`"items":[{"sku":"SKU-1","category":"shoes","quantity":2,"price":"59.95"}]}`)
	val, err := grpcx.NewValidator()
	if err != nil {
		b.Fatal(err)
	}
	h := nats.Header{}
	b.ReportAllocs()
	for b.Loop() {
		o, err := Decode(h, doc)
		if err != nil {
			b.Fatal(err)
		}
		o.Source = "bench"
		if v, err := val.Check(o); err != nil || len(v) > 0 {
			b.Fatal(err, v)
		}
	}
}

// TestDecodeNamesTheFieldNotUTF8: protobuf input whose string field is not
// UTF-8 is invalid, and the error names the field, as JSON input's does.
func TestDecodeNamesTheFieldNotUTF8(t *testing.T) {
	o := &ingestv1.Order{OrderId: "o-1", Items: []*ingestv1.LineItemInput{{Sku: "fine"}, {Sku: "PLACEHOLDER"}}}
	pb, err := proto.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	pb = bytes.Replace(pb, []byte("PLACEHOLDER"), []byte("bad-\xff\xfe-byte"), 1)
	_, err = Decode(nats.Header{"Content-Type": []string{"application/protobuf"}}, pb)
	var de *orderjson.Error
	if !errors.As(err, &de) || errors.Is(err, orderjson.ErrSyntax) {
		t.Fatalf("Decode error = %v, want an *orderjson.Error that is not a syntax error", err)
	}
	if de.Field != "items[1].sku" {
		t.Errorf("field = %q, want items[1].sku", de.Field)
	}
}

// sourceRule is the rule ValidSource checks by hand.
var sourceRule = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func TestValidSourceAgreesWithRule(t *testing.T) {
	for _, s := range []string{"", "a", "0", "_", "-", "a_", "a-", "_a", "-a", "shop-1_eu", "Shop", "sh op", "sh.op", "shöp",
		"a\n", strings.Repeat("a", 64), strings.Repeat("a", 65), "a" + strings.Repeat("-", 63), "a" + strings.Repeat("-", 64)} {
		if got, want := ValidSource(s), sourceRule.MatchString(s); got != want {
			t.Errorf("ValidSource(%q) = %v, rule says %v", s, got, want)
		}
	}
}

func FuzzValidSource(f *testing.F) {
	for _, s := range []string{"a", "shop-1_eu", "_a", "Shop", strings.Repeat("z", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidSource(s), sourceRule.MatchString(s); got != want {
			t.Fatalf("ValidSource(%q) = %v, rule says %v", s, got, want)
		}
	})
}
