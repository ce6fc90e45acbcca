package orderjson

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// Decode skips the CloudEvents probe for documents plainObject clears;
// these check that the outcome is the probed one, order and error alike.
var plainCorpus = []string{
	`{"order_id": "1", "currency": "USD", "total": "19.99", "customer": {"email": "a@b.c"}}`,
	`  {"order_id": 1, "kind": "refunded", "refund": {"id": "r", "amount": 5, "currency": "JPY"}}`,
	`{"specversion": "1.0", "type": "a.b.placed", "time": "2026-01-01T00:00:00Z", "data": {"order_id": "x"}}`,
	`{"SpecVersion": "1.0", "type": "a.b.placed", "data": {"order_id": "x"}}`,
	`{"SPECVERSION": "0.3", "data": {}}`,
	"{\"\u017fpecversion\": \"1.0\", \"type\": \"a.b.paid\", \"data\": {\"order_id\": \"long s\"}}",
	`{"\u0073pecversion": "1.0", "type": "a.b.paid", "data": {"order_id": "escaped"}}`,
	`{"specversion": null, "order_id": "n"}`,
	`{"order_id": "x", "channel": "specversion"}`,
	`{"items": [{"sku": "a", "quantity": 2, "price": "1e5"}], "currency": "EUR"}`,
	`{"items": 5}`, `{"order_id": {}}`, `{"total": true, "currency": "EUR"}`,
	`{"customer": {"birthday": "--02-30"}}`,
	`{"order_id": "a\"b", "currency": "USD", "total": "1"}`,
	`{"order_id": "x"} trailing`, `{"order_id": }`, `{`, ``, `   `,
	`[]`, `null`, `"x"`, `12`, `true`,
	"{\"order_id\": \"\xff\xfe\", \"items\": [{\"sku\": \"\xc3\x28\", \"price\": \"1\"}], \"currency\": \"EUR\"}",
	`{"currency": "usd", "total": "1", "customer": {"country": "jp"}}`,
}

func TestPlainObjectAgreesWithProbe(t *testing.T) {
	for _, doc := range plainCorpus {
		sameAsProbed(t, []byte(doc))
	}
}

func TestPlainObject(t *testing.T) {
	tests := []struct {
		doc  string
		want bool
	}{
		{`{"order_id": "1"}`, true},
		{" \n\t{}", true},
		{`{"specversion": "1.0"}`, false},
		{`{"SpecVersion": "1.0"}`, false},
		{"{\"\u017fpecversion\": \"1.0\"}", false},
		{`{"order_id": "a\"b"}`, false},
		{`[]`, false},
		{`null`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := plainObject([]byte(tt.doc)); got != tt.want {
			t.Errorf("plainObject(%q) = %v, want %v", tt.doc, got, tt.want)
		}
	}
}

// FuzzPlainObject: the fast path and the probe agree on any input.
func FuzzPlainObject(f *testing.F) {
	for _, doc := range plainCorpus {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsProbed(t, data) })
}

func sameAsProbed(t *testing.T, data []byte) {
	t.Helper()
	got, gotErr := Decode(data)
	want, wantErr := decodeProbed(data)
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("Decode(%q) error = %v, probed %v", data, gotErr, wantErr)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("Decode(%q) = %v, probed %v", data, got, want)
	}
}
