package testkit

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Counter reads the integer counter name from reader and returns its
// values keyed by the values of the attributes keys, joined with "/"
// (Counter(tb, r, "boomerang.deadletters", "service", "reason") gives
// {"ingest/invalid": 2, ...}). Points that differ only in other attributes
// are added up.
func Counter(tb testing.TB, reader *sdkmetric.ManualReader, name string, keys ...string) map[string]int64 {
	tb.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		tb.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				tb.Fatalf("%s is a %T, not an integer counter", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				vals := make([]string, len(keys))
				for i, k := range keys {
					v, _ := dp.Attributes.Value(attribute.Key(k))
					vals[i] = v.AsString()
				}
				out[strings.Join(vals, "/")] += dp.Value
			}
		}
	}
	return out
}
