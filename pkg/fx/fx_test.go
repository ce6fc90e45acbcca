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

// TestSettled: the platform's own conversion decides the base values; the
// total converts to exactly what the seller received and the other
// amounts in proportion.
func TestSettled(t *testing.T) {
	tb, err := Load("EUR", strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	at := day("2026-02-10T12:00:00Z")
	tests := []struct {
		name            string
		currency        string
		total           int64
		settledCurrency string
		settled         int64
		amounts, want   []int64 // amounts of the order and their base values
		wantRate        string
		wantDate        string
	}{
		// 110.00 USD paid, 100.00 EUR received: 10/11 EUR per USD, not
		// the table's 0.925.
		{name: "settled in the base currency", currency: "USD", total: 11000, settledCurrency: "EUR", settled: 10000,
			amounts: []int64{11000, 5500, 1}, want: []int64{10000, 5000, 1}, wantRate: "0.909090909091"},
		// 1,500 JPY paid, 9.40 EUR received: 940/150000 EUR per yen.
		{name: "zero-decimal presentment", currency: "JPY", total: 1500, settledCurrency: "EUR", settled: 940,
			amounts: []int64{1500, 750, 3}, want: []int64{940, 470, 2}, wantRate: "0.006266666667"},
		// 50.00 USD paid as 6,000 JPY received by a yen shop: the yen are
		// worth 6000 × 0.0062 = 37.20 EUR on the table, so 0.744 EUR per USD.
		{name: "settled in a third currency", currency: "USD", total: 5000, settledCurrency: "JPY", settled: 6000,
			amounts: []int64{5000, 1000}, want: []int64{3720, 744}, wantRate: "0.744", wantDate: "2026-01-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, conv, err := tb.Settled(tt.currency, tt.total, tt.settledCurrency, tt.settled, at)
			if err != nil {
				t.Fatal(err)
			}
			if conv.Rate != tt.wantRate || conv.RateDate != tt.wantDate {
				t.Errorf("rate %s of %q, want %s of %q", conv.Rate, conv.RateDate, tt.wantRate, tt.wantDate)
			}
			for i, a := range tt.amounts {
				if got, err := c.Convert(a); err != nil || got != tt.want[i] {
					t.Errorf("Convert(%d) = %d, %v; want %d", a, got, err, tt.want[i])
				}
			}
		})
	}
	if _, _, err := tb.Settled("USD", 0, "EUR", 0, at); err == nil {
		t.Error("a settled rate of a zero total: no error")
	}
	if _, _, err := tb.Settled("USD", 100, "GBP", 80, at); !errors.Is(err, ErrNoRate) {
		t.Errorf("settled in a currency without rates: %v, want ErrNoRate", err)
	}
}
