package ingest

import "testing"

func BenchmarkPrepare(b *testing.B) {
	p := testPreparer(b)
	o := order(paid, 12999)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Prepare(o, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
