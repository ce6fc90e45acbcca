package fx

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const table = `date,currency,rate
# one unit of currency in EUR
2026-01-01,USD,0.9
2026-02-01,USD,0.925
2026-01-01,JPY,0.0062
2026-01-01,KWD,2.95
`

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestConvert(t *testing.T) {
	tb, err := Load("EUR", strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		amount   int64
		currency string
		at       string
		want     int64
		wantRate string
		wantErr  error
	}{
		{name: "base currency", amount: 1234, currency: "EUR", at: "2020-01-01T00:00:00Z", want: 1234, wantRate: "1"},
		{name: "rate of the day", amount: 10000, currency: "USD", at: "2026-02-01T00:00:00Z", want: 9250, wantRate: "0.925"},
		{name: "latest before", amount: 10000, currency: "USD", at: "2026-01-31T23:59:59Z", want: 9000, wantRate: "0.9"},
		{name: "time zone is read as UTC day", amount: 10000, currency: "USD", at: "2026-02-01T00:30:00+01:00", want: 9000, wantRate: "0.9"},
		{name: "half rounds away from zero", amount: 1, currency: "USD", at: "2026-02-01T00:00:00Z", want: 1, wantRate: "0.925"},
		{name: "zero-decimal source", amount: 1500, currency: "JPY", at: "2026-03-01T00:00:00Z", want: 930, wantRate: "0.0062"},
		{name: "three-decimal source", amount: 1000, currency: "KWD", at: "2026-03-01T00:00:00Z", want: 295, wantRate: "2.95"},
		{name: "before the first rate", amount: 1, currency: "USD", at: "2025-12-31T12:00:00Z", wantErr: ErrNoRate},
		{name: "currency without rates", amount: 1, currency: "GBP", at: "2026-03-01T00:00:00Z", wantErr: ErrNoRate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tb.Convert(tt.amount, tt.currency, day(tt.at))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got.Base.Minor != tt.want || got.Rate != tt.wantRate || got.Base.Currency != "EUR" {
				t.Fatalf("got %+v, want %d EUR at %s", got, tt.want, tt.wantRate)
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []struct{ name, csv string }{
		{"bad date", "2026-13-01,USD,1\n"},
		{"unknown currency", "2026-01-01,ABC,1\n"},
		{"negative rate", "2026-01-01,USD,-1\n"},
		{"zero rate", "2026-01-01,USD,0\n"},
		{"exponent", "2026-01-01,USD,1e2\n"},
		{"fraction", "2026-01-01,USD,1/2\n"},
		{"base currency", "2026-01-01,EUR,1\n"},
		{"duplicate day", "2026-01-01,USD,1\n2026-01-01,USD,2\n"},
		{"missing field", "2026-01-01,USD\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Load("EUR", strings.NewReader(tt.csv)); !errors.Is(err, ErrTable) {
				t.Fatalf("Load error = %v, want ErrTable", err)
			}
		})
	}
}

func BenchmarkConvert(b *testing.B) {
	tb, err := Load("EUR", strings.NewReader(table))
	if err != nil {
		b.Fatal(err)
	}
	at := day("2026-03-01T00:00:00Z")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tb.Convert(123456, "USD", at); err != nil {
			b.Fatal(err)
		}
	}
}
