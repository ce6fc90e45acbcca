package orderimport

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

const (
	placed    = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED
	paid      = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
	refunded  = ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED
	cancelled = ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED
)

func m(minor int64, cur string) *commonv1.Money {
	return &commonv1.Money{MinorUnits: minor, Currency: cur}
}

func at(tb testing.TB, s string) *timestamppb.Timestamp {
	tb.Helper()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatal(err)
	}
	return timestamppb.New(t)
}

// want is an order a reader should return: its events, or the reason it
// is rejected unread.
type want struct {
	row    int64
	id     string
	events []*ingestv1.Order
	reason string
}

func readAll(tb testing.TB, r Reader) []*Order {
	tb.Helper()
	var out []*Order
	for {
		o, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			tb.Fatalf("Next: %v", err)
		}
		out = append(out, o)
	}
}

func check(t *testing.T, got []*Order, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		for _, o := range got {
			t.Logf("row %d id %q err %v events %d", o.Row, o.ID, o.Err, len(o.Events))
		}
		t.Fatalf("read %d orders, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		o := got[i]
		if o.Row != w.row || o.ID != w.id {
			t.Errorf("order %d: row %d id %q, want row %d id %q", i, o.Row, o.ID, w.row, w.id)
		}
		if w.reason != "" {
			var re *RowError
			if !errors.As(o.Err, &re) || re.Reason != w.reason {
				t.Errorf("order %s: error %v, want reason %s", w.id, o.Err, w.reason)
			}
			continue
		}
		if o.Err != nil {
			t.Errorf("order %s: %v", w.id, o.Err)
			continue
		}
		if len(o.Events) != len(w.events) {
			t.Errorf("order %s: %d events, want %d:\n%v", w.id, len(o.Events), len(w.events), o.Events)
			continue
		}
		for j := range w.events {
			if !proto.Equal(o.Events[j], w.events[j]) {
				t.Errorf("order %s event %d:\n got %v\nwant %v", w.id, j, o.Events[j], w.events[j])
			}
		}
	}
}

func openFile(tb testing.TB, name string) *os.File {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

func TestShopify(t *testing.T) {
	f := openFile(t, "shopify_orders.csv")
	r, err := Open(Shopify, f, Options{Source: "shop-us"})
	if err != nil {
		t.Fatal(err)
	}
	usd := func(minor int64) *commonv1.Money { return m(minor, "USD") }
	check(t, readAll(t, r), []want{
		{row: 2, id: "9007199254740993", events: []*ingestv1.Order{{
			Source: "shop-us", OrderId: "9007199254740993", Kind: paid, OccurredAt: at(t, "2026-03-01T15:05:00Z"),
			Total: usd(10880), Shipping: usd(1000), Tax: usd(880), Channel: "web",
			Discount: &ingestv1.DiscountInput{Codes: []string{"SPRING20"}, Amount: usd(2000)},
			Customer: &ingestv1.CustomerInput{Email: "ann@example.com", MarketingConsent: ptr(true), Country: "US"},
			Items: []*ingestv1.LineItemInput{
				{Sku: "SHOE-42", Quantity: 2, UnitPrice: usd(4500)},
				{Sku: "SOCK-1", Quantity: 1, UnitPrice: usd(2000)},
			},
		}}},
		{row: 4, id: "9007199254740995", events: []*ingestv1.Order{
			{
				Source: "shop-us", OrderId: "9007199254740995", Kind: paid, OccurredAt: at(t, "2026-03-03T08:30:00Z"),
				Total: m(6490, "EUR"), Shipping: m(490, "EUR"), Tax: m(1140, "EUR"), Channel: "web",
				Customer: &ingestv1.CustomerInput{Email: "Bob@Example.com", MarketingConsent: ptr(false), Country: "DE"},
				Items:    []*ingestv1.LineItemInput{{Sku: "BOTTLE-1", Quantity: 3, UnitPrice: m(2000, "EUR")}},
			},
			{
				Source: "shop-us", OrderId: "9007199254740995", Kind: refunded, OccurredAt: at(t, "2026-03-03T08:30:00Z"),
				Refund: &ingestv1.RefundInput{RefundId: "import", Amount: m(1500, "EUR")},
			},
		}},
		{row: 5, id: "9007199254741001", events: []*ingestv1.Order{
			{
				Source: "shop-us", OrderId: "9007199254741001", Kind: placed, OccurredAt: at(t, "2026-03-04T09:00:00Z"),
				Total: m(15800, "JPY"), Shipping: m(0, "JPY"), Tax: m(1436, "JPY"), Channel: "pos",
				Customer: &ingestv1.CustomerInput{Email: "chie@example.com", MarketingConsent: ptr(false), Country: "JP"},
				Items:    []*ingestv1.LineItemInput{{Sku: "JACKET-RAIN", Quantity: 1, UnitPrice: m(15800, "JPY")}},
			},
			{Source: "shop-us", OrderId: "9007199254741001", Kind: cancelled, OccurredAt: at(t, "2026-03-05T00:00:00Z")},
		}},
		{row: 6, id: "9007199254741003", events: []*ingestv1.Order{
			{
				Source: "shop-us", OrderId: "9007199254741003", Kind: paid, OccurredAt: at(t, "2026-03-06T20:00:00Z"),
				Total: usd(3000), Shipping: usd(500), Tax: usd(0), Channel: "web",
				// "United States" is no ISO code: the shipping country stands in.
				Customer: &ingestv1.CustomerInput{Email: "dan@example.com", MarketingConsent: ptr(true), Country: "US"},
				// No SKU: the item's name names it.
				Items: []*ingestv1.LineItemInput{{Sku: "Yoga Mat", Quantity: 1, UnitPrice: usd(2500)}},
			},
			{
				Source: "shop-us", OrderId: "9007199254741003", Kind: refunded, OccurredAt: at(t, "2026-03-07T16:00:00Z"),
				Refund: &ingestv1.RefundInput{RefundId: "import", Amount: usd(3000)},
			},
			{Source: "shop-us", OrderId: "9007199254741003", Kind: cancelled, OccurredAt: at(t, "2026-03-07T16:00:00Z")},
		}},
		{row: 7, id: "9007199254741005", reason: ReasonInvalid},
		{row: 8, id: "9007199254741006", events: []*ingestv1.Order{{
			Source: "shop-us", OrderId: "9007199254741006", Kind: paid, OccurredAt: at(t, "2026-03-09T10:00:00Z"),
			Total: usd(900), Channel: "web", Customer: &ingestv1.CustomerInput{Email: "not-an-email"},
			Items: []*ingestv1.LineItemInput{{Sku: "KEYRING", Quantity: 1, UnitPrice: usd(900)}},
		}}},
		{row: 9, id: "9007199254741007", events: []*ingestv1.Order{{
			Source: "shop-us", OrderId: "9007199254741007", Kind: paid, OccurredAt: at(t, "2025-06-01T14:00:00Z"),
			Total: usd(4000), Channel: "web", Customer: &ingestv1.CustomerInput{Email: "fay@example.com"},
			Items: []*ingestv1.LineItemInput{{Sku: "CAP-1", Quantity: 1, UnitPrice: usd(4000)}},
		}}},
		{row: 10, id: "", reason: ReasonInvalid},
	})
}

func TestWooCommerce(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	f := openFile(t, "woocommerce_orders.csv")
	r, err := Open(WooCommerce, f, Options{Source: "shop-eu", Location: berlin})
	if err != nil {
		t.Fatal(err)
	}
	eur := func(minor int64) *commonv1.Money { return m(minor, "EUR") }
	usd := func(minor int64) *commonv1.Money { return m(minor, "USD") }
	// Berlin is two hours ahead of UTC in April (summer time).
	check(t, readAll(t, r), []want{
		{row: 2, id: "4101", events: []*ingestv1.Order{{
			Source: "shop-eu", OrderId: "4101", Kind: paid, OccurredAt: at(t, "2026-04-02T08:00:00Z"),
			Total: eur(5490), Shipping: eur(490), Tax: eur(760),
			Discount: &ingestv1.DiscountInput{Codes: []string{"spring10"}, Amount: eur(1000)},
			Customer: &ingestv1.CustomerInput{PlatformCustomerId: "17", Email: "hana@example.com", Country: "DE"},
			Items: []*ingestv1.LineItemInput{
				// Unit prices from the lines' totals, after the coupon.
				{Sku: "MUG:BLUE", Quantity: 2, UnitPrice: eur(1200)},
				{Sku: "BEANS-250", Quantity: 1, UnitPrice: eur(1600)},
			},
		}}},
		{row: 3, id: "4102", events: []*ingestv1.Order{{
			Source: "shop-eu", OrderId: "4102", Kind: paid, OccurredAt: at(t, "2026-04-02T09:30:00Z"),
			Total: usd(1999), Shipping: usd(0), Tax: usd(0),
			Customer: &ingestv1.CustomerInput{Email: "ivan@example.com", Country: "US"},
			Items:    []*ingestv1.LineItemInput{{Sku: "NOTE-A5", Quantity: 1, UnitPrice: usd(1999)}},
		}}},
		{row: 4, id: "4103", events: []*ingestv1.Order{
			{
				Source: "shop-eu", OrderId: "4103", Kind: paid, OccurredAt: at(t, "2026-04-02T10:00:00Z"),
				Total: usd(3000), Shipping: usd(0), Tax: usd(0),
				Customer: &ingestv1.CustomerInput{PlatformCustomerId: "23", Email: "jo@example.com", Country: "US"},
				Items:    []*ingestv1.LineItemInput{{Sku: "LAMP-1", Quantity: 3, UnitPrice: usd(1000)}},
			},
			{
				Source: "shop-eu", OrderId: "4103", Kind: refunded, OccurredAt: at(t, "2026-04-03T07:00:00Z"),
				Refund: &ingestv1.RefundInput{RefundId: "4110", Amount: usd(2000)},
			},
			{
				Source: "shop-eu", OrderId: "4103", Kind: refunded, OccurredAt: at(t, "2026-04-04T07:00:00Z"),
				Refund: &ingestv1.RefundInput{RefundId: "4111", Amount: usd(1000)},
			},
		}},
		{row: 5, id: "4104", events: []*ingestv1.Order{
			{
				Source: "shop-eu", OrderId: "4104", Kind: placed, OccurredAt: at(t, "2026-04-05T06:00:00Z"),
				Total: m(3500, "JPY"), Shipping: m(500, "JPY"), Tax: m(0, "JPY"),
				Customer: &ingestv1.CustomerInput{Email: "kei@example.com", Country: "JP"},
				// No SKU: the product's id names it, as in the webhooks.
				Items: []*ingestv1.LineItemInput{{Sku: "product-92", Quantity: 1, UnitPrice: m(3000, "JPY")}},
			},
			{Source: "shop-eu", OrderId: "4104", Kind: cancelled, OccurredAt: at(t, "2026-04-05T06:00:00Z")},
		}},
		{row: 6, id: "4105", events: []*ingestv1.Order{
			{
				Source: "shop-eu", OrderId: "4105", Kind: paid, OccurredAt: at(t, "2026-04-06T13:00:00Z"),
				Total: eur(2500), Shipping: eur(0), Tax: eur(0),
				Customer: &ingestv1.CustomerInput{PlatformCustomerId: "17", Email: "hana@example.com", Country: "DE"},
				Items:    []*ingestv1.LineItemInput{{Sku: "FILTER-100", Quantity: 5, UnitPrice: eur(500)}},
			},
			{
				Source: "shop-eu", OrderId: "4105", Kind: refunded, OccurredAt: at(t, "2026-04-06T13:00:00Z"),
				Refund: &ingestv1.RefundInput{RefundId: "import", Amount: eur(500)},
			},
		}},
		{row: 7, id: "4106"}, // trashed: no event
		{row: 8, id: "4107", reason: ReasonUnknownCurrency},
	})
}

// The one-row-per-item layout repeats the order's columns on each item's
// row and names the item in item_* columns; columns may come in any
// order, and extra ones are ignored.
func TestWooCommerceOneRowPerItem(t *testing.T) {
	doc := "status,order_currency,order_id,order_total,date,billing_email,item_name,item_sku,item_quantity,item_subtotal,item_total,extra\n" +
		"completed,EUR,7,29.00,2026-04-02 10:00:00,a@example.com,Cup,CUP,2,10.00,9.00,x\n" +
		"completed,EUR,7,29.00,2026-04-02 10:00:00,a@example.com,Saucer,,1,20.00,20.00,y\n" +
		"processing,EUR,8,3.00,2026-04-02T11:00:00+02:00,b@example.com,Odd,ODD,3,10.00,,z\n"
	r, err := Open(WooCommerce, strings.NewReader(doc), Options{Source: "w"})
	if err != nil {
		t.Fatal(err)
	}
	eur := func(minor int64) *commonv1.Money { return m(minor, "EUR") }
	check(t, readAll(t, r), []want{
		{row: 2, id: "7", events: []*ingestv1.Order{{
			Source: "w", OrderId: "7", Kind: paid, OccurredAt: at(t, "2026-04-02T10:00:00Z"), Total: eur(2900),
			Customer: &ingestv1.CustomerInput{Email: "a@example.com"},
			Items:    []*ingestv1.LineItemInput{{Sku: "CUP", Quantity: 2, UnitPrice: eur(450)}, {Sku: "Saucer", Quantity: 1, UnitPrice: eur(2000)}},
		}}},
		// No item total: the subtotal, 10.00 over three, 3.33⅓ a unit,
		// rounded.
		{row: 4, id: "8", events: []*ingestv1.Order{{
			Source: "w", OrderId: "8", Kind: paid, OccurredAt: at(t, "2026-04-02T09:00:00Z"), Total: eur(300),
			Customer: &ingestv1.CustomerInput{Email: "b@example.com"},
			Items:    []*ingestv1.LineItemInput{{Sku: "ODD", Quantity: 3, UnitPrice: eur(333)}},
		}}},
	})
}

func TestJSONL(t *testing.T) {
	f := openFile(t, "orders.jsonl")
	r, err := Open(JSONL, f, Options{Source: "shop-us"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, readAll(t, r), []want{
		{row: 1, id: "5001", events: []*ingestv1.Order{
			{
				Source: "shop-us", OrderId: "5001", Kind: paid, OccurredAt: at(t, "2026-05-01T10:00:00Z"),
				Total: m(12000, "USD"), Shipping: m(1000, "USD"), Tax: m(500, "USD"), Channel: "web",
				Discount: &ingestv1.DiscountInput{Codes: []string{"BF20"}, Amount: m(2000, "USD")},
				Customer: &ingestv1.CustomerInput{PlatformCustomerId: "cust-9", Email: "ann@example.com", MarketingConsent: ptr(true), Country: "US"},
				Items:    []*ingestv1.LineItemInput{{Sku: "SHOE-1", Category: "shoes", Quantity: 2, UnitPrice: m(5500, "USD")}},
			},
			{
				Source: "shop-us", OrderId: "5001", Kind: refunded, OccurredAt: at(t, "2026-05-03T10:00:00Z"),
				Refund: &ingestv1.RefundInput{RefundId: "R-1", Amount: m(3000, "USD")},
			},
		}},
		// A CloudEvent lends its kind and time; the blank line between
		// does not part the order's lines.
		{row: 3, id: "5002", events: []*ingestv1.Order{
			{
				Source: "shop-us", OrderId: "5002", Kind: placed, OccurredAt: at(t, "2026-05-02T06:00:00Z"),
				Total: m(3500, "JPY"), Customer: &ingestv1.CustomerInput{Email: "kei@example.com"},
			},
			{Source: "shop-us", OrderId: "5002", Kind: cancelled, OccurredAt: at(t, "2026-05-02T09:00:00Z")},
		}},
		{row: 6, id: "", reason: ReasonMalformed},
		{row: 7, id: "5003", reason: ReasonSourceMismatch},
		// Without occurred_at the line reads; order-ingest refuses it.
		{row: 8, id: "5004", events: []*ingestv1.Order{{
			Source: "shop-us", OrderId: "5004", Kind: paid, Total: m(950, "EUR"),
			Customer: &ingestv1.CustomerInput{Email: "max@example.com"},
			Items:    []*ingestv1.LineItemInput{{Sku: "77", Quantity: 1, UnitPrice: m(950, "EUR")}},
		}}},
		{row: 9, id: "5001", events: []*ingestv1.Order{
			{Source: "shop-us", OrderId: "5001", Kind: cancelled, OccurredAt: at(t, "2026-05-05T10:00:00Z")},
		}},
	})
}

// Every reader's position after an order is the byte offset and row
// count of the file up to that order's last row, so that a reader resumed
// there reads on with the next order.
func TestPositionsResume(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, tt := range []struct {
		format Format
		file   string
	}{
		{Shopify, "shopify_orders.csv"},
		{WooCommerce, "woocommerce_orders.csv"},
		{JSONL, "orders.jsonl"},
	} {
		t.Run(string(tt.format), func(t *testing.T) {
			opts := Options{Source: "shop-us", Location: berlin}
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Open(tt.format, bytes.NewReader(data), opts)
			if err != nil {
				t.Fatal(err)
			}
			var all []*Order
			var positions []Position
			for {
				o, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, o)
				positions = append(positions, r.Position())
			}
			if end := positions[len(positions)-1]; end.Offset != int64(len(data)) {
				t.Errorf("last position %+v, want offset %d (the file's size)", end, len(data))
			}
			for i, p := range positions[:len(positions)-1] {
				// A position is at a line's start, after the order's rows.
				if p.Offset <= 0 || data[p.Offset-1] != '\n' {
					t.Fatalf("position %d: offset %d is not at a line's start", i, p.Offset)
				}
				rr, err := Resume(tt.format, bytes.NewReader(data), p, opts)
				if err != nil {
					t.Fatal(err)
				}
				rest := readAll(t, rr)
				if len(rest) != len(all)-i-1 {
					t.Fatalf("resumed at %+v: %d orders, want %d", p, len(rest), len(all)-i-1)
				}
				for j, o := range rest {
					w := all[i+1+j]
					if o.Row != w.Row || o.ID != w.ID || len(o.Events) != len(w.Events) || (o.Err == nil) != (w.Err == nil) {
						t.Errorf("resumed at %+v, order %d: row %d id %q, want row %d id %q", p, j, o.Row, o.ID, w.Row, w.ID)
					}
					for k := range o.Events {
						if !proto.Equal(o.Events[k], w.Events[k]) {
							t.Errorf("resumed at %+v: order %s event %d differs", p, o.ID, k)
						}
					}
				}
			}
		})
	}
}

func TestDetect(t *testing.T) {
	for _, tt := range []struct {
		file string
		want Format
	}{
		{"shopify_orders.csv", Shopify},
		{"woocommerce_orders.csv", WooCommerce},
		{"orders.jsonl", JSONL},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Detect(data[:min(len(data), 4096)]); got != tt.want || err != nil {
			t.Errorf("Detect(%s) = %q, %v; want %q", tt.file, got, err, tt.want)
		}
	}
	if _, err := Detect([]byte("date,amount\n2026-01-01,3\n")); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("Detect(other CSV) error %v, want ErrUnknownFormat", err)
	}
}

func TestHeaderErrors(t *testing.T) {
	for _, tt := range []struct {
		format Format
		doc    string
		want   string
	}{
		{Shopify, "Name,Email,Total\n#1,a@b.c,1\n", "lacks id, financial status, currency, created at"},
		{WooCommerce, "order_id,status\n", "lacks date, order_total, order_currency"},
		{Shopify, "", "empty file"},
	} {
		_, err := Open(tt.format, strings.NewReader(tt.doc), Options{Source: "s"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %q: error %v, want %q", tt.format, tt.doc, err, tt.want)
		}
	}
}

// A line too long for the reader is rejected as too_large and the lines
// after it read on.
func TestJSONLLongLine(t *testing.T) {
	long := `{"order_id":"1","customer":{"email":"` + strings.Repeat("a", MaxLineBytes) + `@example.com"}}`
	doc := long + "\n" + `{"order_id":"2","occurred_at":"2026-05-01T10:00:00Z","currency":"EUR","total":"1"}` + "\n"
	r, err := Open(JSONL, strings.NewReader(doc), Options{Source: "s"})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != 2 {
		t.Fatalf("read %d orders, want 2", len(got))
	}
	var re *RowError
	if !errors.As(got[0].Err, &re) || re.Reason != ReasonTooLarge || got[0].Row != 1 {
		t.Errorf("long line: row %d error %v, want too_large on row 1", got[0].Row, got[0].Err)
	}
	if got[1].ID != "2" || got[1].Err != nil || got[1].Row != 2 {
		t.Errorf("next line: %+v", got[1])
	}
	if p := r.Position(); p.Offset != int64(len(doc)) || p.Row != 2 {
		t.Errorf("position %+v, want offset %d row 2", p, len(doc))
	}
}
