package money

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		currency string
		want     int64
		wantErr  error
	}{
		{name: "cents", text: "19.99", currency: "USD", want: 1999},
		{name: "whole", text: "20", currency: "EUR", want: 2000},
		{name: "one decimal", text: "0.5", currency: "EUR", want: 50},
		{name: "trailing zeros beyond precision", text: "1.500", currency: "USD", want: 150},
		{name: "leading dot", text: ".25", currency: "USD", want: 25},
		{name: "trailing dot", text: "3.", currency: "USD", want: 300},
		{name: "spaces trimmed", text: " 7.10 ", currency: "GBP", want: 710},
		{name: "yen has no decimals", text: "1500", currency: "JPY", want: 1500},
		{name: "yen with decimals", text: "1500.5", currency: "JPY", wantErr: ErrPrecision},
		{name: "dinar three decimals", text: "1.234", currency: "KWD", want: 1234},
		{name: "too precise", text: "1.001", currency: "USD", wantErr: ErrPrecision},
		{name: "negative", text: "-1", currency: "USD", wantErr: ErrRange},
		{name: "negative zero", text: "-0.00", currency: "USD", want: 0},
		{name: "exponent", text: "1e3", currency: "USD", wantErr: ErrSyntax},
		{name: "empty", text: "", currency: "USD", wantErr: ErrSyntax},
		{name: "dot only", text: ".", currency: "USD", wantErr: ErrSyntax},
		{name: "letters", text: "12a", currency: "USD", wantErr: ErrSyntax},
		{name: "two dots", text: "1.2.3", currency: "USD", wantErr: ErrSyntax},
		{name: "at the bound", text: "1000000000000", currency: "USD", want: MaxMinorUnits},
		{name: "over the bound", text: "1000000000000.01", currency: "USD", wantErr: ErrRange},
		{name: "huge", text: "99999999999999999999999", currency: "USD", wantErr: ErrRange},
		{name: "unknown currency", text: "1", currency: "XXX", wantErr: ErrUnknownCurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.text, tt.currency)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%q, %s) error = %v, want %v", tt.text, tt.currency, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("Parse(%q, %s) = %d, want %d", tt.text, tt.currency, got, tt.want)
			}
		})
	}
}

func TestFormatMinor(t *testing.T) {
	tests := []struct {
		minor int64
		exp   int
		want  string
	}{
		{1999, 2, "19.99"}, {5, 2, "0.05"}, {0, 2, "0.00"}, {1500, 0, "1500"}, {-1234, 3, "-1.234"},
	}
	for _, tt := range tests {
		if got := FormatMinor(tt.minor, tt.exp); got != tt.want {
			t.Errorf("FormatMinor(%d, %d) = %q, want %q", tt.minor, tt.exp, got, tt.want)
		}
	}
}

// FuzzParse checks that Parse never panics, never returns an amount out of
// range, and that whatever it accepts formats back to the same value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"19.99", "0", "-0", ".5", "1.", "1e3", "1000000000000", "99999999999999999999", " 7.10 ", "+3", "--1", "1.2.3"} {
		f.Add(s, "USD")
	}
	f.Add("1500", "JPY")
	f.Add("1.234", "KWD")
	f.Fuzz(func(t *testing.T, text, currency string) {
		v, err := Parse(text, currency)
		if err != nil {
			return
		}
		if v < 0 || v > MaxMinorUnits {
			t.Fatalf("Parse(%q) = %d, out of range", text, v)
		}
		exp, _ := Exponent(currency)
		back, err := ParseExp(FormatMinor(v, exp), exp)
		if err != nil || back != v {
			t.Fatalf("round trip of %q: %d -> %q -> %d, %v", text, v, FormatMinor(v, exp), back, err)
		}
	})
}
