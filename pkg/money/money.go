// Package money holds amounts as integer minor units of ISO 4217 currencies
// and parses the decimal text that shops send.
package money

import (
	"errors"
	"fmt"
	"strings"
)

// MaxMinorUnits bounds every amount Boomerang accepts (10^14 minor units: a
// trillion dollars), so sums over many orders stay far from int64 overflow.
const MaxMinorUnits int64 = 100_000_000_000_000

var (
	// ErrUnknownCurrency is returned for a code that is not an active ISO 4217
	// currency.
	ErrUnknownCurrency = errors.New("unknown currency")
	// ErrSyntax is returned for text that is not a decimal amount.
	ErrSyntax = errors.New("invalid amount")
	// ErrPrecision is returned when an amount has more decimals than its
	// currency's minor unit allows.
	ErrPrecision = errors.New("more decimal places than the currency allows")
	// ErrRange is returned for amounts above MaxMinorUnits or below zero.
	ErrRange = errors.New("amount out of range")
)

// Money is an amount in minor units of a currency.
type Money struct {
	Minor    int64
	Currency string
}

func (m Money) String() string {
	exp, err := Exponent(m.Currency)
	if err != nil {
		return fmt.Sprintf("%d %s(minor)", m.Minor, m.Currency)
	}
	return FormatMinor(m.Minor, exp) + " " + m.Currency
}

// Exponent returns the number of decimal places of the currency's minor unit.
func Exponent(code string) (int, error) {
	exp, ok := exponents[code]
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknownCurrency, code)
	}
	return exp, nil
}

// Known reports whether code is an active ISO 4217 currency.
func Known(code string) bool {
	_, ok := exponents[code]
	return ok
}

// Parse reads a non-negative decimal amount such as "19.99" or "20"
// as text in the currency's major unit and returns minor units. It is
// exact: no floating point is involved, and text with more decimals than the
// currency has (e.g. "1.001" USD) is rejected rather than rounded.
func Parse(text, currency string) (int64, error) {
	exp, err := Exponent(currency)
	if err != nil {
		return 0, err
	}
	return ParseExp(text, exp)
}

// ParseExp is Parse for a known exponent.
func ParseExp(text string, exp int) (int64, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrSyntax)
	}
	if s[0] == '+' {
		s = s[1:]
	}
	if s != "" && s[0] == '-' {
		if isZero(s[1:]) {
			s = s[1:]
		} else {
			return 0, fmt.Errorf("%w: negative %q", ErrRange, text)
		}
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" && (!hasDot || frac == "") {
		return 0, fmt.Errorf("%w: %q", ErrSyntax, text)
	}
	if !digitsOnly(intPart) || !digitsOnly(frac) {
		return 0, fmt.Errorf("%w: %q", ErrSyntax, text)
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > exp {
		return 0, fmt.Errorf("%w: %q has %d, the currency %d", ErrPrecision, text, len(frac), exp)
	}
	var v int64
	for _, digits := range []string{intPart, frac + strings.Repeat("0", exp-len(frac))} {
		for i := 0; i < len(digits); i++ {
			c := digits[i]
			if v > (MaxMinorUnits-int64(c-'0'))/10 {
				return 0, fmt.Errorf("%w: %q", ErrRange, text)
			}
			v = v*10 + int64(c-'0')
		}
	}
	return v, nil
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' && s[i] != '.' {
			return false
		}
	}
	return s != ""
}

// FormatMinor renders minor units as a decimal string with exp decimals.
func FormatMinor(minor int64, exp int) string {
	neg := minor < 0
	u := uint64(minor)
	if neg {
		u = uint64(-minor)
	}
	s := fmt.Sprintf("%0*d", exp+1, u)
	if exp > 0 {
		s = s[:len(s)-exp] + "." + s[len(s)-exp:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
