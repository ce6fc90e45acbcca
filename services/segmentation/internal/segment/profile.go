package segment

import (
	"math"
	"slices"
	"time"
)

// Prediction is the model's view of a customer's future.
type Prediction struct {
	// ExpectedPurchases over the next HorizonDays.
	ExpectedPurchases float64 `json:"purchases"`
	HorizonDays       int     `json:"horizon_days"`
	PAlive            float64 `json:"p_alive"`
	// ExpectedOrderValue and CLV are in the base currency's minor units.
	ExpectedOrderValue int64 `json:"order_value"`
	CLV                int64 `json:"clv"`
	// Interval is set when the model has standard errors: the 10th to the
	// 90th percentile of the purchases and of the CLV that the
	// uncertainty of its parameters allows (clv.Model.Predict).
	Interval      bool    `json:"interval,omitempty"`
	PurchasesLow  float64 `json:"purchases_low,omitempty"`
	PurchasesHigh float64 `json:"purchases_high,omitempty"`
	CLVLow        int64   `json:"clv_low,omitempty"`
	CLVHigh       int64   `json:"clv_high,omitempty"`
}

// Withheld says why a customer has no prediction.
type Withheld uint8

const (
	// NotWithheld: the customer has a prediction (or has not been scored).
	NotWithheld Withheld = iota
	// WithheldNoModel: no model has been fitted yet.
	WithheldNoModel
	// WithheldNotEnoughHistory: the shop has too little history for a fit
	// (clv.ErrNotEnoughHistory).
	WithheldNotEnoughHistory
	// WithheldUnvalued: the model could not value the customer.
	WithheldUnvalued
	// WithheldNoOrders: the customer has no paid order to predict from.
	WithheldNoOrders
)

// Profile is everything known about one customer at a glance: what the
// hot store holds and GetProfile returns.
type Profile struct {
	CustomerID        string      `json:"id"`
	Currency          string      `json:"currency"`
	Orders            int64       `json:"orders"`
	TotalValue        int64       `json:"value"`
	AverageOrderValue int64       `json:"aov"`
	FirstOrderAt      time.Time   `json:"first_order_at"`
	LastOrderAt       time.Time   `json:"last_order_at"`
	DiscountedOrders  int64       `json:"discounted_orders"`
	DiscountedShare   float64     `json:"discounted_share"`
	Refunds           int64       `json:"refunds"`
	RefundedValue     int64       `json:"refunded_value"`
	Channels          []string    `json:"channels,omitempty"`
	RFM               RFM         `json:"rfm"`
	Segment           Segment     `json:"segment"`
	Flags             Flags       `json:"flags"`
	Prediction        *Prediction `json:"prediction,omitempty"`
	// Withheld says why Prediction is nil.
	Withheld Withheld `json:"withheld,omitempty"`
}

// NewProfile assembles a profile.
func NewProfile(f *Features, rfm RFM, flags Flags, p *Prediction) Profile {
	return Profile{
		CustomerID: f.CustomerID, Currency: f.Currency, Orders: f.Orders, TotalValue: f.TotalValue,
		AverageOrderValue: f.AverageOrderValue(), FirstOrderAt: f.FirstOrderAt(), LastOrderAt: f.LastOrderAt(),
		DiscountedOrders: f.DiscountedOrders, DiscountedShare: f.DiscountedShare(), Refunds: f.Refunds,
		RefundedValue: f.RefundedValue, Channels: f.ChannelNames(), RFM: rfm, Segment: Of(rfm), Flags: flags,
		Prediction: p,
	}
}

// CLV is the predicted value, 0 before a model is fitted.
func (p *Profile) CLV() int64 {
	if p.Prediction == nil {
		return 0
	}
	return p.Prediction.CLV
}

// SegmentStat is the size and value of one segment.
type SegmentStat struct {
	Customers int64 `json:"customers"`
	Value     int64 `json:"value"`
	CLV       int64 `json:"clv"`
}

// Population is the part of the population metrics that can be kept up to
// date customer by customer: segment sizes and value, and how many
// customers have each number of orders (the repeat-purchase curve's input).
type Population struct {
	Segments map[Segment]SegmentStat
	// Orders maps a number of orders to the customers with exactly that many.
	Orders map[int64]int64
}

// NewPopulation returns an empty population.
func NewPopulation() *Population {
	return &Population{Segments: map[Segment]SegmentStat{}, Orders: map[int64]int64{}}
}

// Add counts a profile in (sign 1) or out (sign −1) of the population.
func (pop *Population) Add(p *Profile, sign int64) {
	if p == nil || p.Orders <= 0 {
		return
	}
	s := pop.Segments[p.Segment]
	s.Customers += sign
	s.Value += sign * p.TotalValue
	s.CLV += sign * p.CLV()
	if s == (SegmentStat{}) {
		delete(pop.Segments, p.Segment)
	} else {
		pop.Segments[p.Segment] = s
	}
	if pop.Orders[p.Orders] += sign; pop.Orders[p.Orders] == 0 {
		delete(pop.Orders, p.Orders)
	}
}

// RepeatPoint is one point of the repeat-purchase curve: of the customers
// with at least Orders orders, the share that made one more.
type RepeatPoint struct {
	Orders      int     `json:"orders"`
	Customers   int64   `json:"customers"`
	Probability float64 `json:"probability"`
}

// RepeatCurve computes the curve for n = 1..maxOrders from the number of
// customers with exactly n orders; it stops where no customer has n.
func RepeatCurve(orders map[int64]int64, maxOrders int) []RepeatPoint {
	atLeast := func(n int64) int64 {
		var c int64
		for k, v := range orders {
			if k >= n {
				c += v
			}
		}
		return c
	}
	var out []RepeatPoint
	for n := 1; n <= maxOrders; n++ {
		c := atLeast(int64(n))
		if c == 0 {
			break
		}
		out = append(out, RepeatPoint{Orders: n, Customers: c, Probability: float64(atLeast(int64(n+1))) / float64(c)})
	}
	return out
}

// Quantile is one point of a distribution.
type Quantile struct {
	Q     float64 `json:"q"`
	Value int64   `json:"value"`
}

// DistributionQuantiles are the quantiles CLVDistribution reports.
var DistributionQuantiles = []float64{0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1}

// CLVDistribution returns the quantiles of values (nearest rank), nil for
// none. values is sorted in place.
func CLVDistribution(values []int64) []Quantile {
	if len(values) == 0 {
		return nil
	}
	slices.Sort(values)
	out := make([]Quantile, len(DistributionQuantiles))
	for i, q := range DistributionQuantiles {
		rank := int(math.Ceil(q*float64(len(values)))) - 1
		out[i] = Quantile{Q: q, Value: values[min(max(rank, 0), len(values)-1)]}
	}
	return out
}

// Score is what scoring concluded about one customer: kept in SQL beside
// the features, so that a change of segment or flags can be told and the
// hot store rebuilt.
type Score struct {
	CustomerID string      `json:"id"`
	RFM        RFM         `json:"rfm"`
	Segment    Segment     `json:"segment"`
	Flags      Flags       `json:"flags"`
	Prediction *Prediction `json:"prediction,omitempty"`
	// Withheld says why Prediction is nil.
	Withheld Withheld  `json:"withheld,omitempty"`
	ScoredAt time.Time `json:"scored_at"`
}

// Changed reports whether the segment or flags differ from old's, which is
// what a segment-changed event announces.
func (s *Score) Changed(old *Score) bool {
	if old == nil {
		return s.Segment != Unscored || s.Flags != 0
	}
	return s.Segment != old.Segment || s.Flags != old.Flags
}

// Profile joins features and score.
func (s *Score) Profile(f *Features) Profile {
	p := NewProfile(f, s.RFM, s.Flags, s.Prediction)
	p.Segment, p.Withheld = s.Segment, s.Withheld
	return p
}
