// Package fx converts amounts into the seller's base currency with a dated
// table of exchange rates: the rate of an order's date, or the latest one
// before it. Rates are exact decimals and conversions are integer arithmetic.
package fx

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
)

var (
	// ErrNoRate is returned when the table has no rate for the currency on or
	// before the date asked for.
	ErrNoRate = errors.New("no exchange rate")
	// ErrTable is returned for a malformed rate table.
	ErrTable = errors.New("invalid rate table")
)

const dateLayout = "2006-01-02"

// Rate is one row of the table: one unit of Currency is worth Rate units of
// the base currency from Date on.
type Rate struct {
	Date     time.Time
	Currency string
	Text     string // the rate as written in the table
	rat      *big.Rat
}

// Table holds the rates per currency, sorted by date.
type Table struct {
	base    string
	baseExp int
	rates   map[string][]Rate
}

// Conversion is an amount converted to the base currency.
type Conversion struct {
	Base     money.Money
	Rate     string // decimal text of the rate used ("1" for the base currency)
	RateDate string // YYYY-MM-DD of the row used; empty for the base currency
}

// NewTable returns a table for the base currency with the given rows.
func NewTable(base string, rows []Rate) (*Table, error) {
	exp, err := money.Exponent(base)
	if err != nil {
		return nil, fmt.Errorf("base currency: %w", err)
	}
	t := &Table{base: base, baseExp: exp, rates: make(map[string][]Rate)}
	for _, r := range rows {
		t.rates[r.Currency] = append(t.rates[r.Currency], r)
	}
	for cur, rs := range t.rates {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Date.Before(rs[j].Date) })
		for i := 1; i < len(rs); i++ {
			if rs[i].Date.Equal(rs[i-1].Date) {
				return nil, fmt.Errorf("%w: two rates for %s on %s", ErrTable, cur, rs[i].Date.Format(dateLayout))
			}
		}
	}
	return t, nil
}

// Base returns the base currency code.
func (t *Table) Base() string { return t.base }

// Currencies returns how many currencies have rates.
func (t *Table) Currencies() int { return len(t.rates) }

// ParseRate reads one row's fields.
func ParseRate(date, currency, rate string) (Rate, error) {
	d, err := time.Parse(dateLayout, strings.TrimSpace(date))
	if err != nil {
		return Rate{}, fmt.Errorf("%w: date %q: want YYYY-MM-DD", ErrTable, date)
	}
	currency = strings.TrimSpace(currency)
	if !money.Known(currency) {
		return Rate{}, fmt.Errorf("%w: currency %q is not ISO 4217", ErrTable, currency)
	}
	rate = strings.TrimSpace(rate)
	r, ok := new(big.Rat).SetString(rate)
	if !ok || strings.ContainsAny(rate, "eE/") || r.Sign() <= 0 {
		return Rate{}, fmt.Errorf("%w: rate %q for %s: want a positive decimal", ErrTable, rate, currency)
	}
	return Rate{Date: d, Currency: currency, Text: rate, rat: r}, nil
}

// Load reads a CSV table with the header "date,currency,rate", where rate is
// the value of one unit of currency in the base currency.
func Load(base string, r io.Reader) (*Table, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = 3
	cr.TrimLeadingSpace = true
	var rows []Rate
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrTable, err)
		}
		if line == 1 && strings.EqualFold(strings.TrimSpace(rec[0]), "date") {
			continue
		}
		row, err := ParseRate(rec[0], rec[1], rec[2])
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", line, err)
		}
		if row.Currency == base {
			return nil, fmt.Errorf("row %d: %w: the base currency %s needs no rate", line, ErrTable, base)
		}
		rows = append(rows, row)
	}
	return NewTable(base, rows)
}

// LoadFile reads a table from a CSV file.
func LoadFile(base, path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fx table: %w", err)
	}
	defer f.Close()
	t, err := Load(base, f)
	if err != nil {
		return nil, fmt.Errorf("fx table %s: %w", path, err)
	}
	return t, nil
}

// Lookup returns the rate of currency in force on the day of at (UTC): the
// row of that day or the latest before it.
func (t *Table) Lookup(currency string, at time.Time) (Rate, error) {
	rs := t.rates[currency]
	day := at.UTC().Truncate(24 * time.Hour)
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Date.After(day) })
	if i == 0 {
		return Rate{}, fmt.Errorf("%w for %s on or before %s", ErrNoRate, currency, day.Format(dateLayout))
	}
	return rs[i-1], nil
}

// Convert returns amount (minor units of currency) in minor units of the
// base currency, rounded half away from zero.
func (t *Table) Convert(amount int64, currency string, at time.Time) (Conversion, error) {
	if currency == t.base {
		return Conversion{Base: money.Money{Minor: amount, Currency: t.base}, Rate: "1"}, nil
	}
	exp, err := money.Exponent(currency)
	if err != nil {
		return Conversion{}, err
	}
	rate, err := t.Lookup(currency, at)
	if err != nil {
		return Conversion{}, err
	}
	v, err := convert(amount, exp, t.baseExp, rate.rat)
	if err != nil {
		return Conversion{}, fmt.Errorf("convert %d %s: %w", amount, currency, err)
	}
	return Conversion{
		Base:     money.Money{Minor: v, Currency: t.base},
		Rate:     rate.Text,
		RateDate: rate.Date.Format(dateLayout),
	}, nil
}

// Converter converts many amounts of one order with the same rate.
type Converter struct {
	rat     *big.Rat
	exp     int
	baseExp int
	ident   bool
}

// Converter returns a converter for currency on the day of at, and the
// rate used.
func (t *Table) Converter(currency string, at time.Time) (Converter, Conversion, error) {
	if currency == t.base {
		return Converter{ident: true}, Conversion{Rate: "1"}, nil
	}
	exp, err := money.Exponent(currency)
	if err != nil {
		return Converter{}, Conversion{}, err
	}
	rate, err := t.Lookup(currency, at)
	if err != nil {
		return Converter{}, Conversion{}, err
	}
	return Converter{rat: rate.rat, exp: exp, baseExp: t.baseExp},
		Conversion{Rate: rate.Text, RateDate: rate.Date.Format(dateLayout)}, nil
}

// Convert converts an amount in minor units.
func (c Converter) Convert(amount int64) (int64, error) {
	if c.ident {
		return amount, nil
	}
	return convert(amount, c.exp, c.baseExp, c.rat)
}

// convert computes round(amount * rate * 10^(baseExp-exp)).
func convert(amount int64, exp, baseExp int, rate *big.Rat) (int64, error) {
	num := new(big.Int).Mul(big.NewInt(amount), rate.Num())
	den := new(big.Int).Set(rate.Denom())
	if d := baseExp - exp; d > 0 {
		num.Mul(num, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d)), nil))
	} else if d < 0 {
		den.Mul(den, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-d)), nil))
	}
	neg := num.Sign() < 0
	num.Abs(num)
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Lsh(r, 1).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if neg {
		q.Neg(q)
	}
	if !q.IsInt64() || q.Int64() > money.MaxMinorUnits || q.Int64() < -money.MaxMinorUnits {
		return 0, money.ErrRange
	}
	return q.Int64(), nil
}

// Settled returns the converter of an order that a shop's platform
// settled itself: the customer paid total (minor units of currency) and
// the seller received settled (minor units of settledCurrency). The
// converter's rate is the base value of settled over total, so that total
// converts to exactly that value and every other amount of the order in
// the same proportion. settled is converted to the base currency with the
// table's rate of at's day when it is not in the base currency already.
func (t *Table) Settled(currency string, total int64, settledCurrency string, settled int64, at time.Time) (Converter, Conversion, error) {
	exp, err := money.Exponent(currency)
	if err != nil {
		return Converter{}, Conversion{}, err
	}
	if total <= 0 {
		return Converter{}, Conversion{}, fmt.Errorf("settled rate of a total of %d %s", total, currency)
	}
	base, err := t.Convert(settled, settledCurrency, at)
	if err != nil {
		return Converter{}, Conversion{}, err
	}
	// rate per major unit = (base / 10^baseExp) / (total / 10^exp)
	num := new(big.Int).Mul(big.NewInt(base.Base.Minor), pow10(exp))
	den := new(big.Int).Mul(big.NewInt(total), pow10(t.baseExp))
	rat := new(big.Rat).SetFrac(num, den)
	return Converter{rat: rat, exp: exp, baseExp: t.baseExp},
		Conversion{Base: base.Base, Rate: rateText(rat), RateDate: base.RateDate}, nil
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

// rateText writes a rate with up to 12 decimals, without trailing zeros.
func rateText(r *big.Rat) string {
	s := r.FloatString(12)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
