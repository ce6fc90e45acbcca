package clv

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Unit is the time unit of a customer summary and of a model fitted on it:
// t_x, T and every horizon are counted in it.
type Unit int

const (
	Day Unit = iota + 1
	Week
)

// ErrBadUnit reports a time unit other than day or week.
var ErrBadUnit = errors.New("time unit must be day or week")

// ParseUnit reads "day" or "week" (and their plurals).
func ParseUnit(s string) (Unit, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "day", "days":
		return Day, nil
	case "week", "weeks":
		return Week, nil
	}
	return 0, fmt.Errorf("%w, got %q", ErrBadUnit, s)
}

func (u Unit) String() string {
	switch u {
	case Day:
		return "day"
	case Week:
		return "week"
	}
	return fmt.Sprintf("Unit(%d)", int(u))
}

// Days is the length of the unit in days: a week is 7 days, so a summary in
// weeks has t_x and T in multiples of 1/7.
func (u Unit) Days() float64 {
	switch u {
	case Day:
		return 1
	case Week:
		return 7
	}
	return math.NaN()
}

func (u Unit) valid() bool { return u == Day || u == Week }

// MarshalText writes the unit as "day" or "week", so it reads well in JSON.
func (u Unit) MarshalText() ([]byte, error) {
	if !u.valid() {
		return nil, ErrBadUnit
	}
	return []byte(u.String()), nil
}

// UnmarshalText reads what MarshalText writes.
func (u *Unit) UnmarshalText(b []byte) error {
	v, err := ParseUnit(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// Transaction is one purchase. Only its calendar date counts (in the
// location of Date): the models work on purchase days, not instants.
//
// Amount is the purchase's value in one currency for the whole data set
// (for Boomerang, the base currency). It is a float64 because the models
// treat spend as a continuous random variable; major or minor units both
// work, as long as every transaction uses the same.
type Transaction struct {
	CustomerID string
	Date       time.Time
	Amount     float64
}

// Customer is one customer's purchase history in the form both models use,
// with times in the summary's Unit:
//   - X: number of repeat purchases (purchase days after the first);
//   - TX: time from the first purchase to the last repeat purchase (0 when
//     X is 0);
//   - T: time from the first purchase to the end of the calibration period;
//   - Monetary: mean value of the repeat purchases only (0 when X is 0); the
//     first purchase is left out because Gamma-Gamma models repeat spend.
type Customer struct {
	ID       string  `json:"id"`
	X        int     `json:"x"`
	TX       float64 `json:"t_x"`
	T        float64 `json:"T"`
	Monetary float64 `json:"monetary"`
}

// ErrBadTransaction reports a transaction Summarize cannot use.
var ErrBadTransaction = errors.New("bad transaction")

// dayRow is one transaction reduced to what summarising needs: 16 bytes
// instead of a string header, a time.Time and a float.
type dayRow struct {
	customer int32
	day      int32
	amount   float64
}

// civilDay numbers calendar days from 1970-01-01, taking the date in t's own
// location, so that "same day" means the same date on the receipt.
func civilDay(t time.Time) int64 {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

// Summarize builds the customer summaries for a calibration period ending
// on the calendar date of end, inclusive: a purchase on that day counts, and
// T is the number of days from the first purchase to end, in unit. Purchases
// on the same day are one purchase with their amounts summed; purchases
// after end are ignored, and customers whose first purchase is after end
// are left out. Customers come back in the order of their first appearance
// in txs.
//
// It sorts once, by customer with a counting sort and then each customer's
// few days, and allocates nothing per customer beyond the map entry for
// its ID: three million transactions of a million customers in random
// order take about two seconds (BenchmarkSummarize3M), most of it in the
// ID look-ups.
func Summarize(txs []Transaction, end time.Time, unit Unit) ([]Customer, error) {
	if !unit.valid() {
		return nil, ErrBadUnit
	}
	endDay := civilDay(end)
	index := make(map[string]int32)
	var ids []string
	rows := make([]dayRow, 0, len(txs))
	var lastID string
	var lastIndex int32
	for i, tx := range txs {
		if tx.CustomerID == "" {
			return nil, fmt.Errorf("transaction %d: %w: empty customer id", i, ErrBadTransaction)
		}
		if math.IsNaN(tx.Amount) || math.IsInf(tx.Amount, 0) || tx.Amount < 0 {
			return nil, fmt.Errorf("transaction %d (customer %s): %w: amount %v is not a finite non-negative number", i, tx.CustomerID, ErrBadTransaction, tx.Amount)
		}
		day := civilDay(tx.Date)
		if day > endDay {
			continue
		}
		// int32 days reach 5.8 million years either side of 1970; a date
		// beyond that is corrupt input, not history.
		if day < math.MinInt32 || day > math.MaxInt32 {
			return nil, fmt.Errorf("transaction %d (customer %s): %w: date %v out of range", i, tx.CustomerID, ErrBadTransaction, tx.Date)
		}
		// Exports are often grouped by customer: the previous row's
		// customer saves most map look-ups, the bulk of the cost.
		c, ok := lastIndex, lastID != "" && tx.CustomerID == lastID
		if !ok {
			c, ok = index[tx.CustomerID]
		}
		if !ok {
			if len(ids) == math.MaxInt32 {
				return nil, fmt.Errorf("more than %d customers", math.MaxInt32)
			}
			c = int32(len(ids))
			index[tx.CustomerID] = c
			ids = append(ids, tx.CustomerID)
		}
		lastID, lastIndex = tx.CustomerID, c
		rows = append(rows, dayRow{customer: c, day: int32(day), amount: tx.Amount})
	}

	// Counting sort by customer: two passes over rows, no comparisons.
	start := make([]int32, len(ids)+1)
	for _, r := range rows {
		start[r.customer+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	sorted := make([]dayRow, len(rows))
	next := slices.Clone(start[:len(ids)])
	for _, r := range rows {
		sorted[next[r.customer]] = r
		next[r.customer]++
	}

	days := unit.Days()
	out := make([]Customer, len(ids))
	for c, id := range ids {
		hist := sorted[start[c]:start[c+1]]
		if len(hist) > 1 {
			slices.SortFunc(hist, func(a, b dayRow) int { return int(a.day) - int(b.day) })
		}
		first := hist[0].day
		last := first
		x := 0
		var repeatSpend, daySpend float64
		for _, r := range hist[1:] {
			if r.day == last {
				daySpend += r.amount
				continue
			}
			if last != first {
				repeatSpend += daySpend
			}
			x++
			last, daySpend = r.day, r.amount
		}
		if last != first {
			repeatSpend += daySpend
		}
		cust := Customer{ID: id, X: x, T: float64(int64(endDay)-int64(first)) / days}
		if x > 0 {
			cust.TX = float64(last-first) / days
			cust.Monetary = repeatSpend / float64(x)
		}
		out[c] = cust
	}
	return out, nil
}

// LastDate is the latest calendar date among txs, at midnight UTC: the
// natural calibration end when a whole file is used for fitting. It
// returns false when txs is empty.
func LastDate(txs []Transaction) (time.Time, bool) {
	if len(txs) == 0 {
		return time.Time{}, false
	}
	last := civilDay(txs[0].Date)
	for _, tx := range txs[1:] {
		last = max(last, civilDay(tx.Date))
	}
	return time.Unix(last*86400, 0).UTC(), true
}
