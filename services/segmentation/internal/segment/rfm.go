package segment

import (
	"math"
	"slices"
)

// RFM are a customer's recency, frequency and monetary scores, each 1 to 5
// (5 best); zero means the customer has no order to score.
type RFM struct {
	R int `json:"r"`
	F int `json:"f"`
	M int `json:"m"`
}

// Quintiles are the score boundaries of one measure: a value v scores
// 1 + the number of thresholds ≤ v.
//
// Ties: the thresholds come from ranks, so that a value scores
// 1 + ⌊5·(customers with a strictly smaller value) / N⌋. Customers with
// equal values always share a score, and a tie group takes the score of its
// lowest rank. When many customers tie (most customers have one order) a
// score can be skipped: with 60 % one-order customers, frequency scores
// 2 and 3 are empty and the next value up scores 4. This keeps the
// promise "5 is the top fifth" and never splits equals arbitrarily.
type Quintiles [4]int64

// NewQuintiles computes the thresholds of values (the order does not
// matter; values is sorted in place).
func NewQuintiles(values []int64) Quintiles {
	var q Quintiles
	for k := range q {
		q[k] = math.MaxInt64 // score k+2 unreachable until a value earns it
	}
	slices.Sort(values)
	n := len(values)
	for i := 0; i < n; i++ {
		if i > 0 && values[i] == values[i-1] {
			continue // a tie group is scored by its first rank
		}
		score := 5 * i / n // 0-based score of the group
		for k := 0; k < score; k++ {
			if q[k] == math.MaxInt64 {
				q[k] = values[i]
			}
		}
	}
	return q
}

// Score is the 1–5 score of v.
func (q Quintiles) Score(v int64) int {
	s := 1
	for _, t := range q {
		if v >= t {
			s++
		}
	}
	return s
}

// Boundaries are the RFM thresholds of the customer base at one time.
// Recency is measured by the day of the last order (later is better), so
// boundaries stay meaningful between recomputations; frequency by the
// number of orders; monetary by the total net value.
type Boundaries struct {
	Recency   Quintiles `json:"recency"`
	Frequency Quintiles `json:"frequency"`
	Monetary  Quintiles `json:"monetary"`
	// Customers is the size of the base they were computed from.
	Customers int `json:"customers"`
}

// ComputeBoundaries computes the RFM thresholds of the customers with at
// least one order.
func ComputeBoundaries(fs []*Features) Boundaries {
	var rec, freq, mon []int64
	for _, f := range fs {
		if f.Orders <= 0 {
			continue
		}
		rec = append(rec, int64(f.LastOrderDay()))
		freq = append(freq, f.Orders)
		mon = append(mon, f.TotalValue)
	}
	return Boundaries{
		Recency: NewQuintiles(rec), Frequency: NewQuintiles(freq), Monetary: NewQuintiles(mon),
		Customers: len(rec),
	}
}

// Score scores a customer; a customer without orders scores zero.
func (b Boundaries) Score(f *Features) RFM {
	if f.Orders <= 0 || b.Customers == 0 {
		return RFM{}
	}
	return RFM{
		R: b.Recency.Score(int64(f.LastOrderDay())),
		F: b.Frequency.Score(f.Orders),
		M: b.Monetary.Score(f.TotalValue),
	}
}
