package ledger

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const testProgramme = `
base_currency: EUR
earn:
  points_per_unit: "1"
  rounding: down
  exclude: [shipping, tax, gift_cards]
tiers:
  window_days: 365
  review_every_days: 30
  levels:
    - {name: Bronze, min_spend: "0", multiplier: "1"}
    - {name: Silver, min_spend: "500.00", multiplier: "1.5"}
    - {name: Gold, min_spend: "2000.00", multiplier: "2"}
campaigns:
  - {id: app-double, from: 2026-11-01, to: 2026-12-01, channels: [app], multiplier: "2"}
  - {id: shoes, categories: [shoes], multiplier: "3"}
  - {id: big, min_order_value: "300.00", bonus: 50, clawback: proportional}
bonuses:
  first_order: 100
  first_order_clawback: full_refund
  birthday: 200
  referral: 300
expiry:
  after_days: 365
  warn_days: 30
rewards:
  - {id: mug, name: Mug, cost: 500, stock: 2}
  - {id: lounge, name: Lounge, cost: 1000, required_tier: Gold}
`

func mustProgramme(t testing.TB, src string) *Programme {
	t.Helper()
	p, err := ParseProgramme([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func TestParseProgrammeErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"unknown currency", "base_currency: XXX\n", []string{"base_currency"}},
		{"unknown field", "base_currency: EUR\nearn: {points_per_unt: 1}\n", []string{"points_per_unt"}},
		{"bad rounding and rate", "base_currency: EUR\nearn: {points_per_unit: abc, rounding: sideways}\n",
			[]string{"earn.points_per_unit", "earn.rounding"}},
		{"tiers out of order", "base_currency: EUR\ntiers: {levels: [{name: A, min_spend: '0'}, {name: B, min_spend: '0'}]}\n",
			[]string{"tiers.levels[1].min_spend"}},
		{"first tier above zero", "base_currency: EUR\ntiers: {levels: [{name: A, min_spend: '5'}]}\n", []string{"tiers.levels[0].min_spend"}},
		{"campaign without effect", "base_currency: EUR\ncampaigns: [{id: x}]\n", []string{"campaigns[0]"}},
		{"campaign multiplier not above one", "base_currency: EUR\ncampaigns: [{id: x, multiplier: '0.5'}]\n", []string{"campaigns[0].multiplier"}},
		{"campaign dates", "base_currency: EUR\ncampaigns: [{id: x, bonus: 5, from: 2026-02-01, to: 2026-01-01}]\n", []string{"campaigns[0].to"}},
		{"reward tier unknown", "base_currency: EUR\nrewards: [{id: r, name: R, cost: 5, required_tier: Gold}]\n", []string{"rewards[0].required_tier"}},
		{"reward cost", "base_currency: EUR\nrewards: [{id: r, name: R, cost: 0}]\n", []string{"rewards[0].cost"}},
		{"warn after expiry", "base_currency: EUR\nexpiry: {after_days: 10, warn_days: 10}\n", []string{"expiry.warn_days"}},
		{"historic after", "base_currency: EUR\nhistory: {historic_after_days: -1}\n", []string{"history.historic_after_days"}},
		{"money precision", "base_currency: JPY\ntiers: {levels: [{name: A, min_spend: '0'}, {name: B, min_spend: '1.5'}]}\n", []string{"tiers.levels[1].min_spend"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProgramme([]byte(tt.src))
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
	if _, err := ParseProgramme([]byte(testProgramme)); err != nil {
		t.Fatalf("test programme: %v", err)
	}
}

func TestEarn(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	base := OrderFacts{Source: "shop", OrderID: "o1", Channel: "web", At: t0, BaseTotal: 120_00, Shipping: 10_00, Tax: 5_00}
	tests := []struct {
		name  string
		f     func(OrderFacts) OrderFacts
		tier  int
		first bool
		want  map[string]int64
	}{
		{"base excludes shipping and tax", nil, 0, false, map[string]int64{"base": 105}},
		{"rounds down", func(f OrderFacts) OrderFacts { f.BaseTotal = 115_99; return f }, 0, false, map[string]int64{"base": 100}},
		{"tier multiplier", nil, 1, false, map[string]int64{"base": 157}},
		{"first order bonus", nil, 0, true, map[string]int64{"base": 105, "first_order": 100}},
		{"gift cards excluded", func(f OrderFacts) OrderFacts {
			f.Lines = []Line{{SKU: "gc", Value: 50_00, GiftCard: true}, {SKU: "x", Value: 55_00}}
			return f
		}, 0, false, map[string]int64{"base": 55}},
		{"campaign window and channel", func(f OrderFacts) OrderFacts {
			f.Channel, f.At = "app", time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)
			return f
		}, 0, false, map[string]int64{"base": 105, "campaign:app-double": 105}},
		{"campaign outside window", func(f OrderFacts) OrderFacts {
			f.Channel, f.At = "app", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			return f
		}, 0, false, map[string]int64{"base": 105}},
		{"category campaign covers its lines", func(f OrderFacts) OrderFacts {
			f.Lines = []Line{{SKU: "s1", Category: "shoes", Value: 40_00}, {SKU: "t", Category: "shirts", Value: 65_00}}
			return f
		}, 0, false, map[string]int64{"base": 105, "campaign:shoes": 80}},
		{"minimum order bonus", func(f OrderFacts) OrderFacts { f.BaseTotal = 315_00; return f }, 0, false,
			map[string]int64{"base": 300, "campaign:big": 50}},
		{"test orders earn nothing", func(f OrderFacts) OrderFacts { f.Test = true; return f }, 0, true, map[string]int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base
			if tt.f != nil {
				f = tt.f(f)
			}
			got := map[string]int64{}
			for _, a := range p.Earn(f, tt.tier, tt.first) {
				got[a.Rule] = a.Points
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s: got %d, want %d (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

func TestRoundingModes(t *testing.T) {
	for _, tt := range []struct {
		mode string
		want int64
	}{{"down", 10}, {"half_up", 11}, {"up", 11}} {
		p := mustProgramme(t, "base_currency: EUR\nearn: {points_per_unit: '1.5', rounding: "+tt.mode+"}\n")
		got := p.Earn(OrderFacts{BaseTotal: 7_00, At: t0}, 0, false)
		if len(got) != 1 || got[0].Points != tt.want {
			t.Errorf("%s: got %v, want %d", tt.mode, got, tt.want)
		}
	}
}

func paid(p *Programme, a *Account, id string, total int64, at time.Time) PaidResult {
	return a.ApplyPaid(p, id, OrderFacts{Source: "shop", OrderID: id, At: at, BaseTotal: total}, nil, at)
}

func checkInvariants(t *testing.T, a *Account) {
	t.Helper()
	var sum int64
	for _, e := range a.Entries {
		sum += e.Points
	}
	if a.OpenPoints() != a.Balance {
		t.Errorf("open lots %d, balance %d", a.OpenPoints(), a.Balance)
	}
	if a.Balance < 0 {
		t.Errorf("balance %d below zero", a.Balance)
	}
	if a.Exists {
		return
	}
	if sum != a.Balance {
		t.Errorf("entries sum %d, balance %d", sum, a.Balance)
	}
}

func TestRefundClawsBackProportionally(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	a := NewAccount(p, "c1", t0)
	res := paid(p, a, "o1", 200_00, t0) // 200 base + 100 first order (full refund only)
	if a.Balance != 300 {
		t.Fatalf("balance %d, want 300", a.Balance)
	}
	o := res.Order
	a.ApplyRefund(p, "r1", o, 50_00, t0.Add(time.Hour), t0.Add(time.Hour)) // a quarter
	if a.Balance != 250 {
		t.Fatalf("after a quarter refunded: balance %d, want 250", a.Balance)
	}
	a.ApplyRefund(p, "r1-again", o, 50_00, t0.Add(time.Hour), t0.Add(time.Hour)) // same cumulative total: nothing
	if a.Balance != 250 {
		t.Fatalf("same refunded total twice: balance %d, want 250", a.Balance)
	}
	a.ApplyRefund(p, "r2", o, 200_00, t0.Add(2*time.Hour), t0.Add(2*time.Hour)) // the rest: the bonus goes too
	if a.Balance != 0 {
		t.Fatalf("fully refunded: balance %d, want 0", a.Balance)
	}
	if got := a.SpendIn(p, t0.Add(3*time.Hour)); got != 0 {
		t.Errorf("qualifying spend after full refund: %d, want 0", got)
	}
	checkInvariants(t, a)
}

func TestRefundOfSpentPointsRecordsShortfall(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	a := NewAccount(p, "c1", t0)
	o := paid(p, a, "o1", 400_00, t0).Order // 400 base + 100 first order + 50 campaign
	if _, err := a.Redeem(p, Redemption{Key: "k", Points: 450}, t0); err != nil {
		t.Fatal(err)
	}
	a.ApplyCancel(p, "cancel", o, t0.Add(time.Hour), t0.Add(time.Hour))
	if a.Balance != 0 || a.Shortfall != 450 {
		t.Fatalf("balance %d shortfall %d, want 0 and 450", a.Balance, a.Shortfall)
	}
	last := a.Entries[len(a.Entries)-1]
	if last.Kind != KindReversal || last.Points != -100 || last.Shortfall != 450 {
		t.Errorf("reversal entry %+v", last)
	}
	checkInvariants(t, a)
}

func TestRedeemFIFOAndErrors(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	a := NewAccount(p, "c1", t0)
	paid(p, a, "o1", 100_00, t0)                   // lot o1:base 100, o1:first_order 100
	paid(p, a, "o2", 300_00, t0.Add(24*time.Hour)) // lot o2:base 300 (+50 big bonus? 300 ≥ 300)
	e, err := a.Redeem(p, Redemption{Key: "k1", Points: 150}, t0.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Uses) != 2 || e.Uses[0].LotID != "o1:base" || e.Uses[0].Points != 100 || e.Uses[1].Points != 50 {
		t.Errorf("uses %+v: want the oldest lot first", e.Uses)
	}
	before := a.Balance
	if _, err := a.Redeem(p, Redemption{Key: "k2", Points: before + 1}, t0); !errors.Is(err, ErrInsufficientPoints) {
		t.Errorf("redeeming more than the balance: %v", err)
	}
	if _, err := a.Redeem(p, Redemption{Key: "k3", RewardID: "lounge"}, t0); !errors.Is(err, ErrTierRequired) {
		t.Errorf("reward above the tier: %v", err)
	}
	if _, err := a.Redeem(p, Redemption{Key: "k4", RewardID: "mug", Redeemed: 2}, t0); !errors.Is(err, ErrOutOfStock) {
		t.Errorf("reward out of stock: %v", err)
	}
	if _, err := a.Redeem(p, Redemption{Key: "k5", RewardID: "nope"}, t0); !errors.Is(err, ErrUnknownReward) {
		t.Errorf("unknown reward: %v", err)
	}
	if a.Balance != before {
		t.Errorf("failed redemptions changed the balance: %d → %d", before, a.Balance)
	}
	checkInvariants(t, a)
}

func TestExpiryWarningAndSweepIdempotent(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	a := NewAccount(p, "c1", t0)
	paid(p, a, "o1", 100_00, t0)
	warnAt := t0.Add(340 * 24 * time.Hour)
	a.Sweep(p, warnAt)
	a.Sweep(p, warnAt)
	warnings := 0
	for _, ev := range a.Events {
		if ev.Expiring > 0 {
			warnings++
		}
	}
	if warnings != 2 { // two lots: base and first-order bonus, each warned once
		t.Errorf("warnings %d, want 2", warnings)
	}
	a.Sweep(p, t0.Add(366*24*time.Hour))
	a.Sweep(p, t0.Add(367*24*time.Hour))
	if a.Balance != 0 {
		t.Errorf("balance after expiry %d, want 0", a.Balance)
	}
	expiries := 0
	for _, e := range a.Entries {
		if e.Kind == KindExpiry {
			expiries++
		}
	}
	if expiries != 2 {
		t.Errorf("expiry entries %d, want 2", expiries)
	}
	checkInvariants(t, a)
}

func TestTiersUpgradeAtOnceDowngradeOneStepAtReview(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	a := NewAccount(p, "c1", t0)
	paid(p, a, "o1", 2500_00, t0)
	if a.Tier != "Gold" {
		t.Fatalf("tier %s after 2,500 spend, want Gold at once", a.Tier)
	}
	// A year later the spend has left the window: one step per review.
	later := t0.Add(400 * 24 * time.Hour)
	a.ReviewTier(p, later)
	if a.Tier != "Silver" {
		t.Fatalf("first review: %s, want Silver", a.Tier)
	}
	if a.ReviewTier(p, later.Add(24*time.Hour)) {
		t.Error("a second review inside the review period ran")
	}
	a.ReviewTier(p, later.Add(31*24*time.Hour))
	if a.Tier != "Bronze" {
		t.Fatalf("second review: %s, want Bronze", a.Tier)
	}
}

func TestBirthdayOncePerYear(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	a := NewAccount(p, "c1", t0)
	f := OrderFacts{Source: "s", OrderID: "o1", At: t0, BaseTotal: 10_00, Birthday: Birthday{Month: 3, Day: 2}}
	a.ApplyPaid(p, "o1", f, nil, t0)
	f.OrderID = "o2"
	a.ApplyPaid(p, "o2", f, nil, t0)
	a.Sweep(p, t0.Add(24*time.Hour))
	n := 0
	for _, e := range a.Entries {
		if e.Rule == "birthday" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("birthday bonuses %d, want 1", n)
	}
	a.Sweep(p, t0.AddDate(1, 0, 0))
	if a.LastBirthdayYear != 2027 {
		t.Errorf("next year's birthday not given: %d", a.LastBirthdayYear)
	}
}

func TestAdjust(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	a := NewAccount(p, "c1", t0)
	if _, err := a.Adjust(p, "k1", -1, "ops", "test", t0); !errors.Is(err, ErrInsufficientPoints) {
		t.Errorf("removing from an empty account: %v", err)
	}
	e, err := a.Adjust(p, "k2", 40, "ops", "goodwill", t0)
	if err != nil || e.Actor != "ops" || a.Balance != 40 {
		t.Fatalf("adjust: %v %+v balance %d", err, e, a.Balance)
	}
	if _, err := a.Adjust(p, "k3", -15, "ops", "correction", t0); err != nil || a.Balance != 25 {
		t.Fatalf("remove: %v balance %d", err, a.Balance)
	}
	checkInvariants(t, a)
}

// A refund does not take back points of its order that already expired:
// they are gone once.
func TestRefundAfterExpiry(t *testing.T) {
	p := mustProgramme(t, "base_currency: EUR\nexpiry: {after_days: 30}\n")
	a := NewAccount(p, "c1", t0)
	o1 := paid(p, a, "o1", 100_00, t0).Order
	a.Sweep(p, t0.Add(31*24*time.Hour)) // o1's 100 points expire
	paid(p, a, "o2", 100_00, t0.Add(40*24*time.Hour))
	a.ApplyRefund(p, "r1", o1, 100_00, t0.Add(41*24*time.Hour), t0.Add(41*24*time.Hour))
	if a.Balance != 100 || a.Shortfall != 0 {
		t.Errorf("balance %d shortfall %d, want o2's 100 untouched and no shortfall", a.Balance, a.Shortfall)
	}
	checkInvariants(t, a)
}

// A refund takes spend out of the window the order counted in.
func TestRefundSpendDatedAtThePaidOrder(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	a := NewAccount(p, "c1", t0)
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o1 := paid(p, a, "o1", 600_00, jan).Order
	paid(p, a, "o2", 600_00, jan.AddDate(1, 1, 0))
	a.ApplyRefund(p, "r1", o1, 600_00, jan.AddDate(1, 1, 1), jan.AddDate(1, 1, 1))
	if got := a.SpendIn(p, jan.AddDate(1, 1, 2)); got != 600_00 {
		t.Errorf("spend %d, want o2's 60000: the refund of last year's order must not reduce it", got)
	}
}

func TestTestOrderIsNotTheFirstOrder(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	a := NewAccount(p, "c1", t0)
	a.ApplyPaid(p, "t1", OrderFacts{Source: "s", OrderID: "t1", At: t0, BaseTotal: 50_00, Test: true}, nil, t0)
	if a.Balance != 0 || a.PaidOrders != 0 {
		t.Fatalf("test order: balance %d, paid orders %d", a.Balance, a.PaidOrders)
	}
	a.ApplyPaid(p, "o1", OrderFacts{Source: "s", OrderID: "o1", At: t0, BaseTotal: 50_00}, nil, t0)
	if a.Balance != 50+100 {
		t.Errorf("first real order: balance %d, want 150 with the first-order bonus", a.Balance)
	}
}

func TestReferralCodeStable(t *testing.T) {
	if ReferralCode("c1") != ReferralCode("c1") || ReferralCode("c1") == ReferralCode("c2") {
		t.Error("referral codes must be stable and distinct")
	}
}

func TestExampleProgrammeFileIsValid(t *testing.T) {
	p, err := LoadProgramme("../../../../deploy/programme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tiers()) != 4 || len(p.Rewards()) != 4 || p.ExpireAfter != 365*24*time.Hour || p.HistoricAfter() != 7*24*time.Hour {
		t.Errorf("tiers %d rewards %d expiry %v historic after %v", len(p.Tiers()), len(p.Rewards()), p.ExpireAfter, p.HistoricAfter())
	}
}
