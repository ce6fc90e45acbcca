package ledger

import (
	"math/big"
	"slices"
	"strings"
	"time"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// Order facts are the part of an order the earning rules look at, in base
// currency minor units.
type OrderFacts struct {
	Source  string
	OrderID string
	Channel string
	At      time.Time
	// IngestedAt is when order-ingest first accepted the event (zero when
	// unknown); with At it tells whether the order is historic.
	IngestedAt time.Time
	BaseTotal  int64
	Shipping   int64
	Tax        int64
	Lines      []Line
	Test       bool
	Birthday   Birthday
	Referral   string
}

// Line is one line of an order; Value is unit price × quantity in base
// currency minor units.
type Line struct {
	SKU      string
	Category string
	Value    int64
	GiftCard bool
}

// Birthday is a month and day (zero when unknown).
type Birthday struct{ Month, Day int }

// FactsOf reads the facts of a canonical order event.
func FactsOf(ev *ordersv1.OrderEvent) OrderFacts {
	f := OrderFacts{
		Source: ev.GetSource(), OrderID: ev.GetOrderId(), Channel: ev.GetChannel(),
		At: ev.GetOccurredAt().AsTime(), BaseTotal: ev.GetBaseTotal().GetMinorUnits(),
		Shipping: ev.GetShipping().GetBase().GetMinorUnits(), Tax: ev.GetTax().GetBase().GetMinorUnits(),
		Test: ev.GetTest(), Referral: strings.TrimSpace(ev.GetCustomer().GetReferralCode()),
	}
	if ev.GetIngestedAt() != nil {
		f.IngestedAt = ev.GetIngestedAt().AsTime()
	}
	if b := ev.GetCustomer().GetBirthday(); b != nil && b.GetMonth() >= 1 && b.GetMonth() <= 12 {
		f.Birthday = Birthday{Month: int(b.GetMonth()), Day: int(b.GetDay())}
	}
	for _, it := range ev.GetItems() {
		f.Lines = append(f.Lines, Line{
			SKU: it.GetSku(), Category: it.GetCategory(), GiftCard: it.GetGiftCard(),
			Value: it.GetUnitPrice().GetBase().GetMinorUnits() * it.GetQuantity(),
		})
	}
	return f
}

// HistoricEvent is Programme.Historic for a canonical order event of any
// kind.
func (p *Programme) HistoricEvent(ev *ordersv1.OrderEvent) bool {
	f := OrderFacts{At: ev.GetOccurredAt().AsTime()}
	if ev.GetIngestedAt() != nil {
		f.IngestedAt = ev.GetIngestedAt().AsTime()
	}
	return p.Historic(f)
}

// Eligible is the value that earns points: the base total less what the
// programme excludes (shipping, tax, gift-card lines), never below zero.
func (p *Programme) Eligible(f OrderFacts) int64 {
	v := f.BaseTotal
	if p.exclude["shipping"] {
		v -= f.Shipping
	}
	if p.exclude["tax"] {
		v -= f.Tax
	}
	if p.exclude["gift_cards"] {
		for _, l := range f.Lines {
			if l.GiftCard {
				v -= l.Value
			}
		}
	}
	return max(v, 0)
}

// Award is what an order earns under one rule.
type Award struct {
	Rule     string // base, campaign:<id>, first_order
	Kind     Kind
	Points   int64
	Clawback Clawback
}

// Earn works out what a paid order earns for a customer at tier, before
// account-level bonuses (birthday, referral). The tier multiplier applies
// to the base points; a campaign multiplier m adds (m−1) × the base rate on
// the value it covers (the lines matching its filters, or the whole
// eligible value); fixed bonuses are added as they are.
func (p *Programme) Earn(f OrderFacts, tier int, firstOrder bool) []Award {
	if f.Test {
		return nil
	}
	eligible := p.Eligible(f)
	var out []Award
	mult := p.tiers[min(max(tier, 0), len(p.tiers)-1)].Multiplier
	if pts := p.points(eligible, mult); pts > 0 {
		out = append(out, Award{Rule: "base", Kind: KindEarn, Points: pts, Clawback: ClawbackProportional})
	}
	for _, c := range p.campaigns {
		covered, ok := c.covers(f, eligible, p.exclude["gift_cards"])
		if !ok {
			continue
		}
		a := Award{Rule: "campaign:" + c.ID, Kind: KindBonus}
		if c.Multiplier != nil {
			a.Points = p.points(covered, new(big.Rat).Sub(c.Multiplier, big.NewRat(1, 1)))
			a.Clawback = ClawbackProportional
		} else {
			a.Points, a.Clawback = c.Bonus.Points, c.Bonus.Clawback
		}
		if a.Points > 0 {
			out = append(out, a)
		}
	}
	if firstOrder && p.FirstOrderBonus.Points > 0 {
		out = append(out, Award{Rule: "first_order", Kind: KindBonus, Points: p.FirstOrderBonus.Points, Clawback: p.FirstOrderBonus.Clawback})
	}
	return out
}

// covers reports whether the campaign applies to the order and the value
// its multiplier covers.
func (c Campaign) covers(f OrderFacts, eligible int64, excludeGiftCards bool) (int64, bool) {
	if (!c.From.IsZero() && f.At.Before(c.From)) || (!c.To.IsZero() && !f.At.Before(c.To)) {
		return 0, false
	}
	if len(c.Sources) > 0 && !slices.Contains(c.Sources, f.Source) {
		return 0, false
	}
	if len(c.Channels) > 0 && !slices.Contains(c.Channels, f.Channel) {
		return 0, false
	}
	if f.BaseTotal < c.MinOrder {
		return 0, false
	}
	if len(c.Categories) == 0 && len(c.SKUs) == 0 {
		return eligible, true
	}
	var covered int64
	matched := false
	for _, l := range f.Lines {
		if (l.GiftCard && excludeGiftCards) || !(slices.Contains(c.Categories, l.Category) || slices.Contains(c.SKUs, l.SKU)) {
			continue
		}
		matched = true
		covered += l.Value
	}
	// Line prices are before order-level discounts: never cover more than
	// the order's eligible value.
	return min(covered, eligible), matched
}

// points converts base minor units to points at the earning rate times
// mult, rounded by the programme's rule. Exact: big.Rat, no floats.
func (p *Programme) points(minor int64, mult *big.Rat) int64 {
	if minor <= 0 {
		return 0
	}
	r := new(big.Rat).SetInt64(minor)
	r.Quo(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(p.baseExp)), nil)))
	r.Mul(r, p.earnRate)
	r.Mul(r, mult)
	return round(r, p.rounding)
}

func round(r *big.Rat, mode Rounding) int64 {
	num, den := r.Num(), r.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	if m.Sign() != 0 {
		switch mode {
		case RoundUp:
			q.Add(q, big.NewInt(1))
		case RoundHalfUp:
			if new(big.Int).Mul(m, big.NewInt(2)).Cmp(den) >= 0 {
				q.Add(q, big.NewInt(1))
			}
		}
	}
	if !q.IsInt64() {
		return 1<<62 - 1
	}
	return q.Int64()
}
