package testkit

import (
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Database is a kind of database the services' stores run on, for suites
// and benchmarks that run against each.
type Database struct {
	Name string
	// URL returns a fresh, empty database of this kind, dropped with tb.
	URL func(tb testing.TB) string
}

// Databases are SQLite (file, in a temporary directory of the test) and
// PostgreSQL (see Postgres).
func Databases(file string) []Database {
	return []Database{
		{"sqlite", func(tb testing.TB) string { return "sqlite:" + filepath.Join(tb.TempDir(), file) }},
		{"postgres", Postgres},
	}
}

// TimeCalls runs call once per benchmark iteration (i counts from 1),
// fails the benchmark on an error, and reports the calls' latency
// percentiles (ReportLatencies).
func TimeCalls(b *testing.B, call func(i int) error) {
	lat := make([]time.Duration, 0, 1<<16)
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		err := call(i)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatalf("call %d: %v", i, err)
		}
	}
	ReportLatencies(b, lat)
}

// ReportLatencies reports the median and the 99th percentile of a
// benchmark's call latencies as its p50-µs and p99-µs metrics.
func ReportLatencies(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	lat = slices.Clone(lat)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(int(p*float64(len(lat))), len(lat)-1)].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
