// Package ledger is the loyalty programme's domain: the programme rules
// (earning, campaigns, bonuses, tiers, rewards, expiry), the accounts with
// their earned lots, and every movement of points as an entry. It knows
// nothing of SQL, NATS or gRPC; the store loads accounts, this package
// changes them, and the store writes what changed.
package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
)

// Programme is a validated set of programme rules. It is immutable: a
// reload builds a new one.
type Programme struct {
	BaseCurrency string
	baseExp      int

	earnRate   *big.Rat // points per major unit of base currency
	rounding   Rounding
	exclude    map[string]bool // shipping, tax, gift_cards
	tiers      []Tier          // ascending by MinSpend; tiers[0].MinSpend == 0
	tierWindow time.Duration
	review     time.Duration
	campaigns  []Campaign

	FirstOrderBonus Bonus
	BirthdayBonus   Bonus
	ReferralBonus   int64

	ExpireAfter time.Duration // 0: never
	WarnBefore  time.Duration

	// historicAfter: an order event that reached order-ingest more than
	// this long after it occurred is historic (backfilled history).
	historicAfter time.Duration

	rewards []Reward
}

// Rounding turns fractional points into whole ones.
type Rounding int

const (
	RoundDown Rounding = iota + 1
	RoundHalfUp
	RoundUp
)

// Clawback says what a refund does to a fixed bonus.
type Clawback int

const (
	// ClawbackFull takes the bonus back only when the order is refunded in
	// full or cancelled.
	ClawbackFull Clawback = iota + 1
	// ClawbackProportional takes back the refunded share, like base points.
	ClawbackProportional
	// ClawbackNever keeps the bonus whatever happens to the order.
	ClawbackNever
)

// Bonus is a fixed number of points and what a refund does to it.
type Bonus struct {
	Points   int64
	Clawback Clawback
}

// Tier is a level of the programme.
type Tier struct {
	Name string
	// MinSpend is the qualifying spend (base-currency minor units over the
	// rolling window) that reaches the tier.
	MinSpend   int64
	Multiplier *big.Rat
}

// Campaign gives extra points to orders that match it in its window.
type Campaign struct {
	ID         string
	From, To   time.Time // [From, To)
	Sources    []string
	Channels   []string
	Categories []string
	SKUs       []string
	MinOrder   int64    // base minor units; 0: none
	Multiplier *big.Rat // nil: a fixed bonus
	Bonus      Bonus
}

// Reward is an item of the rewards catalogue.
type Reward struct {
	ID           string
	Name         string
	Cost         int64
	RequiredTier string
	// Stock is the number that may ever be redeemed; nil: unlimited.
	Stock *int64
}

// The file format. Decimal values are strings so that no float rounding
// creeps into points.
type programmeFile struct {
	BaseCurrency string `yaml:"base_currency"`
	Earn         struct {
		PointsPerUnit string   `yaml:"points_per_unit"`
		Rounding      string   `yaml:"rounding"`
		Exclude       []string `yaml:"exclude"`
	} `yaml:"earn"`
	Tiers struct {
		WindowDays      int `yaml:"window_days"`
		ReviewEveryDays int `yaml:"review_every_days"`
		Levels          []struct {
			Name       string `yaml:"name"`
			MinSpend   string `yaml:"min_spend"`
			Multiplier string `yaml:"multiplier"`
		} `yaml:"levels"`
	} `yaml:"tiers"`
	Campaigns []struct {
		ID         string   `yaml:"id"`
		From       string   `yaml:"from"`
		To         string   `yaml:"to"`
		Sources    []string `yaml:"sources"`
		Channels   []string `yaml:"channels"`
		Categories []string `yaml:"categories"`
		SKUs       []string `yaml:"skus"`
		MinOrder   string   `yaml:"min_order_value"`
		Multiplier string   `yaml:"multiplier"`
		Bonus      int64    `yaml:"bonus"`
		Clawback   string   `yaml:"clawback"`
	} `yaml:"campaigns"`
	Bonuses struct {
		FirstOrder         int64  `yaml:"first_order"`
		FirstOrderClawback string `yaml:"first_order_clawback"`
		Birthday           int64  `yaml:"birthday"`
		Referral           int64  `yaml:"referral"`
	} `yaml:"bonuses"`
	Expiry struct {
		AfterDays int `yaml:"after_days"`
		WarnDays  int `yaml:"warn_days"`
	} `yaml:"expiry"`
	History struct {
		HistoricAfterDays int `yaml:"historic_after_days"`
	} `yaml:"history"`
	Rewards []struct {
		ID           string `yaml:"id"`
		Name         string `yaml:"name"`
		Cost         int64  `yaml:"cost"`
		RequiredTier string `yaml:"required_tier"`
		Stock        *int64 `yaml:"stock"`
	} `yaml:"rewards"`
}

// LoadProgramme reads and validates a programme file.
func LoadProgramme(path string) (*Programme, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("programme: %w", err)
	}
	p, err := ParseProgramme(b)
	if err != nil {
		return nil, fmt.Errorf("programme %s: %w", path, err)
	}
	return p, nil
}

// ParseProgramme parses and validates a programme (YAML). Every problem is
// reported, each naming its field.
func ParseProgramme(b []byte) (*Programme, error) {
	var f programmeFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	v := &validator{}
	p := &Programme{BaseCurrency: strings.ToUpper(f.BaseCurrency), exclude: map[string]bool{}}
	exp, err := money.Exponent(p.BaseCurrency)
	if err != nil {
		v.fail("base_currency", "%q is not an ISO 4217 currency", f.BaseCurrency)
	}
	p.baseExp = exp
	amount := func(field, text string) int64 {
		if text == "" || err != nil {
			return 0
		}
		n, perr := money.ParseExp(text, exp)
		if perr != nil {
			v.fail(field, "%q: %v", text, perr)
		}
		return n
	}

	p.earnRate = v.ratio("earn.points_per_unit", f.Earn.PointsPerUnit, "1", false)
	switch f.Earn.Rounding {
	case "", "down":
		p.rounding = RoundDown
	case "half_up":
		p.rounding = RoundHalfUp
	case "up":
		p.rounding = RoundUp
	default:
		v.fail("earn.rounding", "%q: want down, half_up or up", f.Earn.Rounding)
	}
	for i, x := range f.Earn.Exclude {
		switch x {
		case "shipping", "tax", "gift_cards":
			p.exclude[x] = true
		default:
			v.fail(fmt.Sprintf("earn.exclude[%d]", i), "%q: want shipping, tax or gift_cards", x)
		}
	}

	p.tierWindow = days(v, "tiers.window_days", f.Tiers.WindowDays, 365)
	p.review = days(v, "tiers.review_every_days", f.Tiers.ReviewEveryDays, 30)
	seenTier := map[string]bool{}
	for i, l := range f.Tiers.Levels {
		field := fmt.Sprintf("tiers.levels[%d]", i)
		if l.Name == "" {
			v.fail(field+".name", "required")
		}
		if seenTier[l.Name] {
			v.fail(field+".name", "%q: duplicate", l.Name)
		}
		seenTier[l.Name] = true
		t := Tier{Name: l.Name, MinSpend: amount(field+".min_spend", l.MinSpend), Multiplier: v.ratio(field+".multiplier", l.Multiplier, "1", false)}
		if i == 0 && t.MinSpend != 0 {
			v.fail(field+".min_spend", "the first tier starts at 0")
		}
		if i > 0 && len(p.tiers) == i && t.MinSpend <= p.tiers[i-1].MinSpend {
			v.fail(field+".min_spend", "must be above the tier before")
		}
		p.tiers = append(p.tiers, t)
	}
	if len(f.Tiers.Levels) == 0 {
		p.tiers = []Tier{{Name: "Member", Multiplier: big.NewRat(1, 1)}}
	}

	seenCampaign := map[string]bool{}
	for i, c := range f.Campaigns {
		field := fmt.Sprintf("campaigns[%d]", i)
		camp := Campaign{ID: c.ID, Sources: c.Sources, Channels: c.Channels, Categories: c.Categories, SKUs: c.SKUs}
		if c.ID == "" || strings.ContainsAny(c.ID, " :") {
			v.fail(field+".id", "required, without spaces or ':'")
		}
		if seenCampaign[c.ID] {
			v.fail(field+".id", "%q: duplicate", c.ID)
		}
		seenCampaign[c.ID] = true
		camp.From = v.time(field+".from", c.From)
		camp.To = v.time(field+".to", c.To)
		if !camp.From.IsZero() && !camp.To.IsZero() && !camp.To.After(camp.From) {
			v.fail(field+".to", "must be after from")
		}
		camp.MinOrder = amount(field+".min_order_value", c.MinOrder)
		switch {
		case c.Multiplier != "" && c.Bonus != 0:
			v.fail(field, "set multiplier or bonus, not both")
		case c.Multiplier != "":
			camp.Multiplier = v.ratio(field+".multiplier", c.Multiplier, "", true)
		case c.Bonus > 0:
			camp.Bonus = Bonus{Points: c.Bonus, Clawback: v.clawback(field+".clawback", c.Clawback)}
		default:
			v.fail(field, "a multiplier (above 1) or a positive bonus is required")
		}
		p.campaigns = append(p.campaigns, camp)
	}

	if f.Bonuses.FirstOrder < 0 || f.Bonuses.Birthday < 0 || f.Bonuses.Referral < 0 {
		v.fail("bonuses", "points must not be negative")
	}
	p.FirstOrderBonus = Bonus{Points: f.Bonuses.FirstOrder, Clawback: v.clawback("bonuses.first_order_clawback", f.Bonuses.FirstOrderClawback)}
	p.BirthdayBonus = Bonus{Points: f.Bonuses.Birthday, Clawback: ClawbackNever}
	p.ReferralBonus = f.Bonuses.Referral

	if f.Expiry.AfterDays < 0 || f.Expiry.AfterDays > 36500 {
		v.fail("expiry.after_days", "%d: want 0 (never) .. 36500", f.Expiry.AfterDays)
	}
	if f.Expiry.WarnDays < 0 || (f.Expiry.AfterDays > 0 && f.Expiry.WarnDays >= f.Expiry.AfterDays) {
		v.fail("expiry.warn_days", "%d: want 0 .. after_days-1", f.Expiry.WarnDays)
	}
	p.ExpireAfter = time.Duration(f.Expiry.AfterDays) * 24 * time.Hour
	p.WarnBefore = time.Duration(f.Expiry.WarnDays) * 24 * time.Hour
	p.historicAfter = days(v, "history.historic_after_days", f.History.HistoricAfterDays, 7)

	seenReward := map[string]bool{}
	for i, r := range f.Rewards {
		field := fmt.Sprintf("rewards[%d]", i)
		if r.ID == "" || len(r.ID) > 64 {
			v.fail(field+".id", "required, at most 64 characters")
		}
		if seenReward[r.ID] {
			v.fail(field+".id", "%q: duplicate", r.ID)
		}
		seenReward[r.ID] = true
		if r.Name == "" {
			v.fail(field+".name", "required")
		}
		if r.Cost <= 0 {
			v.fail(field+".cost", "%d: must be positive", r.Cost)
		}
		if r.RequiredTier != "" && !seenTier[r.RequiredTier] {
			v.fail(field+".required_tier", "%q is not a tier", r.RequiredTier)
		}
		if r.Stock != nil && *r.Stock < 0 {
			v.fail(field+".stock", "must not be negative")
		}
		p.rewards = append(p.rewards, Reward{ID: r.ID, Name: r.Name, Cost: r.Cost, RequiredTier: r.RequiredTier, Stock: r.Stock})
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return p, nil
}

type validator struct{ errs []error }

func (v *validator) fail(field, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid programme: %w", errors.Join(v.errs...))
}

// ratio parses a non-negative decimal ("1.25"); above1 requires > 1.
func (v *validator) ratio(field, text, def string, above1 bool) *big.Rat {
	if text == "" {
		text = def
	}
	if text == "" {
		v.fail(field, "required")
		return big.NewRat(1, 1)
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok || r.Sign() < 0 || strings.ContainsAny(text, "/eE") || r.Cmp(big.NewRat(1000, 1)) > 0 {
		v.fail(field, "%q: want a decimal between 0 and 1000", text)
		return big.NewRat(1, 1)
	}
	if above1 && r.Cmp(big.NewRat(1, 1)) <= 0 {
		v.fail(field, "%q: must be above 1", text)
	}
	return r
}

func (v *validator) time(field, text string) time.Time {
	if text == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, text); err == nil {
			return t.UTC()
		}
	}
	v.fail(field, "%q: want YYYY-MM-DD or RFC 3339", text)
	return time.Time{}
}

func (v *validator) clawback(field, text string) Clawback {
	switch text {
	case "", "full_refund":
		return ClawbackFull
	case "proportional":
		return ClawbackProportional
	case "never":
		return ClawbackNever
	}
	v.fail(field, "%q: want full_refund, proportional or never", text)
	return ClawbackFull
}

func days(v *validator, field string, n, def int) time.Duration {
	if n == 0 {
		n = def
	}
	if n < 1 || n > 3650 {
		v.fail(field, "%d: want 1..3650", n)
	}
	return time.Duration(n) * 24 * time.Hour
}

// Tiers returns the tiers, lowest first.
func (p *Programme) Tiers() []Tier { return slices.Clone(p.tiers) }

// TierWindow is the rolling window of qualifying spend.
func (p *Programme) TierWindow() time.Duration { return p.tierWindow }

// ReviewEvery is the time between tier reviews of an account.
func (p *Programme) ReviewEvery() time.Duration { return p.review }

// Rewards returns the catalogue.
func (p *Programme) Rewards() []Reward { return slices.Clone(p.rewards) }

// Reward finds a reward by id.
func (p *Programme) Reward(id string) (Reward, bool) {
	i := slices.IndexFunc(p.rewards, func(r Reward) bool { return r.ID == id })
	if i < 0 {
		return Reward{}, false
	}
	return p.rewards[i], true
}

// TierIndex is the position of a tier by name (0 when unknown: a tier
// removed from the programme falls back to the lowest).
func (p *Programme) TierIndex(name string) int {
	if i := slices.IndexFunc(p.tiers, func(t Tier) bool { return t.Name == name }); i >= 0 {
		return i
	}
	return 0
}

// CanRise reports whether an account in tier could move up: a tier above
// it exists. Earning checks spend only for such accounts.
func (p *Programme) CanRise(tier string) bool { return p.TierIndex(tier) < len(p.tiers)-1 }

// TierFor is the tier a qualifying spend reaches.
func (p *Programme) TierFor(spend int64) int {
	best := 0
	for i, t := range p.tiers {
		if spend >= t.MinSpend {
			best = i
		}
	}
	return best
}

// HistoricAfter is how long after an order event occurred it may reach
// order-ingest and still be live: one that arrives later is historic.
func (p *Programme) HistoricAfter() time.Duration { return p.historicAfter }

// Historic reports whether the order of f is historic: it reached
// order-ingest (f.IngestedAt) more than HistoricAfter after it occurred
// (f.At). Both times are in the stored event, so the answer is the same on
// every redelivery and replay; an event without an ingestion time is live.
// A historic order earns as it would have when it occurred and triggers
// nothing of today (see Account.ApplyPaid).
func (p *Programme) Historic(f OrderFacts) bool {
	return !f.IngestedAt.IsZero() && f.IngestedAt.Sub(f.At) > p.historicAfter
}

// ExpiresAt is when points earned at t expire (zero: never).
func (p *Programme) ExpiresAt(t time.Time) time.Time {
	if p.ExpireAfter == 0 {
		return time.Time{}
	}
	return t.Add(p.ExpireAfter)
}

// DefaultProgramme is the programme used when no file is configured: one
// point per unit of base currency, no tiers beyond one, nothing expires.
func DefaultProgramme(baseCurrency string) (*Programme, error) {
	return ParseProgramme([]byte("base_currency: " + baseCurrency + "\n"))
}
