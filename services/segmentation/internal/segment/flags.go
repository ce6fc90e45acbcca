package segment

import (
	"math"
	"slices"
	"strings"
)

// Flags are the seller-facing marks on a customer, a bit set.
type Flags uint8

// The flags; their order follows boomerang.segmentation.v1.Flag.
const (
	VIP Flags = 1 << iota
	PriceSensitive
	ChurnRisk
	Agony
	NewCustomer
)

// AllFlags lists the flags in order.
var AllFlags = []Flags{VIP, PriceSensitive, ChurnRisk, Agony, NewCustomer}

var flagNames = map[Flags]string{VIP: "vip", PriceSensitive: "price_sensitive", ChurnRisk: "churn_risk", Agony: "agony", NewCustomer: "new"}

// List returns the single flags set in f, in order.
func (f Flags) List() []Flags {
	var out []Flags
	for _, one := range AllFlags {
		if f&one != 0 {
			out = append(out, one)
		}
	}
	return out
}

func (f Flags) String() string {
	var names []string
	for _, one := range f.List() {
		names = append(names, flagNames[one])
	}
	return strings.Join(names, ",")
}

// FlagRules are the seller's thresholds for the flags.
type FlagRules struct {
	// VIPShare is the share of customers, ranked by CLV, that are VIPs
	// (0.05: the top 5 %).
	VIPShare float64
	// A customer with at least PriceSensitiveMinOrders orders, of which
	// at least PriceSensitiveShare were bought with a discount, is price
	// sensitive. The minimum keeps one discounted first order from
	// labelling a customer.
	PriceSensitiveShare     float64
	PriceSensitiveMinOrders int64
	// A repeat customer (two purchase days or more) whose P(alive) is
	// below ChurnPAlive is a churn risk. One-time buyers are left out:
	// the model gives them P(alive) = 1, and their risk is what the
	// Hibernating and Lost segments already say.
	ChurnPAlive float64
	// NewWithinDays: a customer whose first order is at most this many
	// days old is new.
	NewWithinDays int
}

// DefaultFlagRules are the defaults of the SEGMENTATION_* variables.
var DefaultFlagRules = FlagRules{VIPShare: 0.05, PriceSensitiveShare: 0.5, PriceSensitiveMinOrders: 3, ChurnPAlive: 0.3, NewWithinDays: 30}

// VIPThreshold is the lowest value among the top share of values: a
// customer whose value reaches it is a VIP. Customers tied at the threshold
// are all VIPs, so the share can be exceeded by the tie. Values of zero or
// less are never VIP; with no customers or no share it returns MaxInt64.
func VIPThreshold(values []int64, share float64) int64 {
	if share <= 0 || len(values) == 0 {
		return math.MaxInt64
	}
	k := int(math.Ceil(share * float64(len(values))))
	k = min(max(k, 1), len(values))
	sorted := slices.Clone(values)
	slices.SortFunc(sorted, func(a, b int64) int { return cmpInt(b, a) })
	return max(sorted[k-1], 1)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// FlagInput is what the flags of one customer depend on.
type FlagInput struct {
	Features *Features
	// Prediction is nil until a model has been fitted.
	Prediction *Prediction
	// VIPValue is the value VIPs are ranked by (the CLV when predicted, else
	// the net spend) and VIPThreshold the base's threshold for it.
	VIPValue, VIPThreshold int64
	// Agony is set by an agony event (see store.SetAgony).
	Agony bool
	// Today is the scoring day (DayNumber).
	Today int32
}

// Flags works out the flags of one customer.
func (r FlagRules) Flags(in FlagInput) Flags {
	f := in.Features
	var out Flags
	if f.Orders > 0 && in.VIPValue > 0 && in.VIPValue >= in.VIPThreshold {
		out |= VIP
	}
	if f.Orders >= r.PriceSensitiveMinOrders && f.Orders > 0 && f.DiscountedShare() >= r.PriceSensitiveShare {
		out |= PriceSensitive
	}
	if p := in.Prediction; p != nil && len(f.Days) >= 2 && p.PAlive < r.ChurnPAlive {
		out |= ChurnRisk
	}
	if in.Agony {
		out |= Agony
	}
	if len(f.Days) > 0 && in.Today-f.Days[0].Day < int32(r.NewWithinDays) {
		out |= NewCustomer
	}
	return out
}
