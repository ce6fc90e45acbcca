package orderimport

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzRead reads data to its end as format: it must not panic, must end,
// and its positions must move forward within the data.
func fuzzRead(t *testing.T, format Format, data []byte) {
	r, err := Open(format, bytes.NewReader(data), Options{Source: "s"})
	if err != nil {
		return
	}
	prev := r.Position()
	for i := 0; ; i++ {
		if i > len(data)+1 {
			t.Fatalf("more orders than bytes")
		}
		o, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			return
		}
		p := r.Position()
		if p.Offset < prev.Offset || p.Offset > int64(len(data)) || p.Row <= prev.Row {
			t.Fatalf("position %+v after %+v (%d bytes)", p, prev, len(data))
		}
		for _, ev := range o.Events {
			if ev.GetOrderId() != o.ID {
				t.Fatalf("order %q at row %d has an event of order %q", o.ID, o.Row, ev.GetOrderId())
			}
		}
		prev = p
	}
}

func seed(f *testing.F, name string) {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func FuzzShopify(f *testing.F) {
	seed(f, "shopify_orders.csv")
	f.Add([]byte("Name,Id,Financial Status,Currency,Total,Created at\n#1,1,paid,EUR,1,2026-01-01\n#1,,,,,\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, Shopify, data) })
}

func FuzzWooCommerce(f *testing.F) {
	seed(f, "woocommerce_orders.csv")
	f.Add([]byte("order_id,date,status,order_total,order_currency,line_items,refunds\n1,2026-01-01,completed,1,EUR,sku:a|quantity:1|subtotal:1,id:2|amount:1\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, WooCommerce, data) })
}

func FuzzJSONL(f *testing.F) {
	seed(f, "orders.jsonl")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, JSONL, data) })
}
