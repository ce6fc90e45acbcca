package orderjson

import (
	"errors"
	"testing"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

func TestDecode(t *testing.T) {
	full := `{"source": "shop", "order_id": 1001, "kind": "paid", "occurred_at": "2026-11-01T10:00:00+01:00",
	  "currency": "JPY", "total": 12000, "shipping": "500", "discount": {"codes": ["A"], "amount": "1000"},
	  "customer": {"id": 42, "email": "a@b.c", "birthday": "--02-29", "marketing_consent": false, "country": "JP"},
	  "items": [{"sku": 7, "quantity": 1, "price": "11500", "gift_card": true}], "test": true,
	  "settled": {"currency": "EUR", "total": "74.40"}}`
	o, err := Decode([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"order id from a number", o.GetOrderId(), "1001"},
		{"kind", o.GetKind(), ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID},
		{"time with offset", o.GetOccurredAt().AsTime().UTC().Hour(), 9},
		{"currency", o.GetTotal().GetCurrency(), "JPY"},
		{"yen total", o.GetTotal().GetMinorUnits(), int64(12000)},
		{"shipping", o.GetShipping().GetMinorUnits(), int64(500)},
		{"discount", o.GetDiscount().GetAmount().GetMinorUnits(), int64(1000)},
		{"customer id from a number", o.GetCustomer().GetPlatformCustomerId(), "42"},
		{"birthday without year", o.GetCustomer().GetBirthday().GetYear(), int32(0)},
		{"birthday day", o.GetCustomer().GetBirthday().GetDay(), int32(29)},
		{"consent false is kept", o.GetCustomer().MarketingConsent != nil && !*o.GetCustomer().MarketingConsent, true},
		{"country", o.GetCustomer().GetCountry(), "JP"},
		{"sku from a number", o.GetItems()[0].GetSku(), "7"},
		{"gift card line", o.GetItems()[0].GetGiftCard(), true},
		{"test order", o.GetTest(), true},
		{"settled currency", o.GetSettledTotal().GetCurrency(), "EUR"},
		{"settled total", o.GetSettledTotal().GetMinorUnits(), int64(7440)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestDecodeDefaults(t *testing.T) {
	o, err := Decode([]byte(`{"order_id": "1", "currency": "USD", "total": "1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if o.GetKind() != ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID || o.GetOccurredAt() != nil {
		t.Fatalf("defaults: kind %v, occurred_at %v", o.GetKind(), o.GetOccurredAt())
	}
	ce := `{"specversion": "1.0", "type": "com.shop.order.refunded", "time": "2026-11-01T00:00:00Z",
	  "data": {"order_id": "1", "refund": {"id": "r", "amount": "2.50", "currency": "EUR"}}}`
	o, err = Decode([]byte(ce))
	if err != nil {
		t.Fatal(err)
	}
	if o.GetKind() != ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED || o.GetRefund().GetAmount().GetMinorUnits() != 250 ||
		o.GetOccurredAt().AsTime().Year() != 2026 {
		t.Fatalf("CloudEvent: %v", o)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name      string
		doc       string
		wantField string
		wantErr   error
	}{
		{"not JSON", `{"order_id": `, "", ErrSyntax},
		{"array", `[1, 2]`, "", ErrSyntax},
		{"wrong type", `{"order_id": "1", "items": {"sku": 1}}`, "items", ErrSyntax},
		{"unknown kind", `{"kind": "shipped"}`, "kind", nil},
		{"bad time", `{"occurred_at": "yesterday"}`, "occurred_at", nil},
		{"amount without currency", `{"total": "1"}`, "currency", nil},
		{"unknown currency", `{"currency": "ZZZ", "total": "1"}`, "currency", money.ErrUnknownCurrency},
		{"settled without currency", `{"currency": "USD", "total": "1", "settled": {"total": "1"}}`, "settled.currency", nil},
		{"settled beyond its currency's decimals", `{"currency": "USD", "total": "1", "settled": {"currency": "JPY", "total": "1.5"}}`, "settled.total", nil},
		// Codes are taken as sent, as protobuf and gRPC input takes them:
		// lower case is invalid on every input, not an unknown currency.
		{"lower-case currency", `{"currency": "usd", "total": "1"}`, "currency", nil},
		{"currency with spaces", `{"currency": " USD", "total": "1"}`, "currency", nil},
		{"lower-case refund currency", `{"kind": "refunded", "refund": {"id": "r", "amount": "1", "currency": "eur"}}`, "currency", nil},
		{"too precise", `{"currency": "USD", "total": "1.001"}`, "total", money.ErrPrecision},
		{"negative", `{"currency": "USD", "items": [{"price": "-1"}]}`, "items[0].price", money.ErrRange},
		{"amount as object", `{"currency": "USD", "tax": {}}`, "", nil},
		{"bad birthday", `{"customer": {"birthday": "12/04/1990"}}`, "customer.birthday", nil},
		{"old CloudEvents", `{"specversion": "0.3", "data": {}}`, "specversion", ErrSyntax},
		{"CloudEvent without data", `{"specversion": "1.0", "type": "x.paid"}`, "data", ErrSyntax},
		{"CloudEvent with XML", `{"specversion": "1.0", "datacontenttype": "application/xml", "data": "<a/>"}`, "datacontenttype", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.doc))
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("Decode error = %v, want *Error", err)
			}
			if tt.wantField != "" && de.Field != tt.wantField {
				t.Errorf("field = %q, want %q (%v)", de.Field, tt.wantField, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// FuzzDecode: no input panics, and whatever decodes has amounts within
// the bounds money allows.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		`{"order_id": "1", "currency": "USD", "total": "19.99", "customer": {"email": "a@b.c"}}`,
		`{"order_id": 1, "kind": "refunded", "refund": {"id": "r", "amount": 5, "currency": "JPY"}}`,
		`{"specversion": "1.0", "type": "a.b.placed", "time": "2026-01-01T00:00:00Z", "data": {"order_id": "x"}}`,
		`{"items": [{"sku": "a", "quantity": 2, "price": "1e5"}], "currency": "EUR"}`,
		`{"customer": {"birthday": "--02-30"}}`,
		`{"total": 1.5, "currency": "KWD", "discount": {"codes": [], "amount": null}}`,
		`[]`, `null`, `"x"`, `{"specversion": null}`,
		// Odd text: a NUL, a control character, bytes that are not UTF-8, a
		// lone surrogate escape, lower-case codes.
		"{\"order_id\": \"a\\u0000b\", \"currency\": \"USD\", \"total\": \"1\"}",
		"{\"order_id\": \"a\x00b\", \"customer\": {\"email\": \"a@b.c\"}}",
		"{\"order_id\": \"\xff\xfe\", \"items\": [{\"sku\": \"\xc3\x28\", \"price\": \"1\"}], \"currency\": \"EUR\"}",
		`{"order_id": "\ud800", "refund": {"id": "r\u001b", "amount": "1", "currency": "eur"}}`,
		`{"currency": "usd", "total": "1", "customer": {"country": "jp"}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Decode(data)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *Error", err)
			}
			return
		}
		for _, m := range []int64{o.GetTotal().GetMinorUnits(), o.GetShipping().GetMinorUnits(), o.GetTax().GetMinorUnits(), o.GetRefund().GetAmount().GetMinorUnits()} {
			if m < 0 || m > money.MaxMinorUnits {
				t.Fatalf("amount %d out of range", m)
			}
		}
	})
}
