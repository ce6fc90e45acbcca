package orderjson

import "testing"

func BenchmarkDecode(b *testing.B) {
	doc := []byte(`{"order_id":"o-1","kind":"paid","occurred_at":"2026-11-01T10:00:00Z","currency":"USD","total":"129.90",` +
		`"channel":"web","discount":{"codes":["WELCOME"],"amount":"10.00"},` +
		`"customer":{"id":"c-1","email":"customer1@example.com","marketing_consent":true},` +
		`"items":[{"sku":"SKU-1","category":"shoes","quantity":2,"price":"59.95"}]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := Decode(doc); err != nil {
			b.Fatal(err)
		}
	}
}
