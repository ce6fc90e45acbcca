package ledger

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"time"
)

// Kind is the kind of a ledger entry (values match ledger.v1.EntryKind).
type Kind int

const (
	KindEarn Kind = iota + 1
	KindBonus
	KindRedeem
	KindReversal
	KindExpiry
	KindAdjustment
)

func (k Kind) String() string {
	switch k {
	case KindEarn:
		return "earn"
	case KindBonus:
		return "bonus"
	case KindRedeem:
		return "redeem"
	case KindReversal:
		return "reversal"
	case KindExpiry:
		return "expiry"
	case KindAdjustment:
		return "adjustment"
	}
	return "unknown"
}

// Domain errors.
var (
	ErrInsufficientPoints = errors.New("insufficient points")
	ErrUnknownReward      = errors.New("unknown reward")
	ErrTierRequired       = errors.New("reward needs a higher tier")
	ErrOutOfStock         = errors.New("reward out of stock")
	ErrNotFound           = errors.New("not found")
	ErrIdempotencyReuse   = errors.New("idempotency key already used for a different request")
)

// Entry is one movement of points. Entries are never changed once written.
type Entry struct {
	ID         string
	CustomerID string
	Kind       Kind
	// Points is signed: what the entry did to the balance.
	Points int64
	// Shortfall is, for a reversal, what could not be taken back because
	// the points had been spent.
	Shortfall   int64
	Rule        string
	SourceRef   string
	Actor       string
	Reason      string
	OrderSource string
	OrderID     string
	OccurredAt  time.Time
	ExpiresAt   time.Time
	Uses        []LotUse
	// BalanceAfter is the balance once the entry was applied.
	BalanceAfter int64
	// Seq orders an account's entries (set by the store).
	Seq int64
}

// LotUse is the part of a lot an entry took.
type LotUse struct {
	LotID  string
	Points int64
}

// Lot is points earned together, spent and expired first in, first out. A
// lot is named by the entry that earned it.
type Lot struct {
	ID        string
	Points    int64
	Remaining int64
	EarnedAt  time.Time
	ExpiresAt time.Time // zero: never
	// OrderKey is "source/order_id" for points an order earned.
	OrderKey string
	Warned   bool

	New, Dirty bool
}

// Spend is qualifying spend (base minor units, signed: refunds subtract)
// at a time, for tiers.
type Spend struct {
	Ref    string
	At     time.Time
	Amount int64
}

// Account is one customer's loyalty account as loaded for a change: its
// balance, tier, open lots and recent qualifying spend. Operations append
// the entries and events they cause; the store writes them.
type Account struct {
	CustomerID       string
	Balance          int64
	LifetimeEarned   int64
	Shortfall        int64
	Tier             string
	TierSince        time.Time
	ReviewedAt       time.Time
	ReferralCode     string
	ReferredBy       string
	PaidOrders       int64
	Birthday         Birthday
	LastBirthdayYear int
	// Lots holds the open lots (Remaining > 0) when LotsLoaded; otherwise
	// only the lots earned since the account was loaded. Whatever consumes
	// points (claw-back, redemption, expiry, removal) needs them loaded.
	Lots       []*Lot
	LotsLoaded bool
	// Spend holds qualifying spend from at least one tier window before
	// the times the change looks at. Earning may leave it out for an
	// account that cannot rise (top tier): spend only ever moves an
	// account up at once.
	Spend []Spend
	// Exists is true when the account was loaded from the store.
	Exists bool

	// expiredIn counts, per order, the points of its lots expired since
	// the account was loaded (Order.Expired holds those expired before).
	expiredIn map[string]int64

	// Produced by operations, written by the store.
	Entries []*Entry
	Events  []Event
	Dirty   bool
}

// Event is something the ledger tells other systems.
type Event struct {
	ID         string
	CustomerID string
	At         time.Time
	Balance    int64
	// Entry is set for earned, redeemed, reversed, expired and adjusted.
	Entry     *Entry
	Breakdown []Award
	// RewardID is set for a redemption of a reward.
	RewardID string
	// Tier change.
	TierFrom, TierTo, TierReason string
	// Expiring soon.
	Expiring  int64
	ExpiresAt time.Time
	// Historic marks what a historic order event caused (its points, the
	// expiry of those of them that had expired before it reached
	// order-ingest, the tier change its spend made, its claw-back): the
	// ledger records it now, but it is not news to the customer.
	Historic bool
}

// NewAccount is an account that has never moved.
func NewAccount(p *Programme, customerID string, at time.Time) *Account {
	return &Account{CustomerID: customerID, Tier: p.tiers[0].Name, TierSince: at, ReviewedAt: at,
		ReferralCode: ReferralCode(customerID), Dirty: true, LotsLoaded: true}
}

// Order is what the ledger remembers of a paid order, to claw back its
// points when it is refunded or cancelled.
type Order struct {
	Source, OrderID, CustomerID string
	BaseTotal                   int64
	// Qualifying is the spend the order counted towards tiers.
	Qualifying int64
	// Proportional points are clawed back pro rata; Full ones only when
	// the order is refunded in full or cancelled.
	Proportional, Full int64
	// Reversed is the claw-back worked out so far (taken or short).
	Reversed int64
	// Refunded is the base amount refunded so far; Unqualified the spend
	// taken back so far.
	Refunded, Unqualified int64
	Closed                bool
	PaidAt                time.Time
	// Paid is set once the paid event is applied; LastSeq is the order
	// event sequence applied last, so events of one order apply in order.
	Paid    bool
	LastSeq int32
	// Expired is how many of the order's points had expired when it was
	// loaded (the store loads it before a claw-back); ExpiredCredit how
	// many of the expired points claw-backs have counted as taken back.
	Expired, ExpiredCredit int64

	New, Dirty bool
}

// Key names an order across sources.
func (o *Order) Key() string { return o.Source + "/" + o.OrderID }

// ReferralCode is a customer's referral code: short, stable, and not the
// customer id itself.
func ReferralCode(customerID string) string {
	h := fnv64(customerID)
	return "R" + strconv.FormatUint(h, 36)
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// PaidResult is what applying a paid order did.
type PaidResult struct {
	Order  *Order
	Points int64
	// ReferralCode is the code of the customer who referred this one, when
	// this was their first paid order and the referrer should earn.
	ReferralCode string
}

// NewOrder is the record of an order first seen in f.
func NewOrder(customerID string, f OrderFacts) *Order {
	return &Order{Source: f.Source, OrderID: f.OrderID, CustomerID: customerID, BaseTotal: f.BaseTotal, New: true, Dirty: true}
}

// ApplyPaid earns the points of a paid order (event id eventID) at its
// time, counts its qualifying spend and upgrades the tier at once when the
// spend reaches a higher one. o is the order's record when it was seen
// before (placed), else nil. now is the clock for expiry.
//
// A historic order (Programme.Historic) earns what it would have earned
// when it occurred and triggers nothing of today: its base and campaign
// points (campaigns by the order's time) at the multiplier of the tier its
// window's spend had reached then (TierAt), in lots dated at the order's
// time, of which those that had expired by the time it reached
// order-ingest are expired at once (dated at their expiry, never
// announced); no first-order, birthday or referral bonus, though it counts
// as a paid order; and its spend upgrades the tier as the spend in the
// window ending when it reached order-ingest reaches, not as that of the
// window ending at its own time.
func (a *Account) ApplyPaid(p *Programme, eventID string, f OrderFacts, o *Order, now time.Time) PaidResult {
	historic := p.Historic(f)
	if f.Birthday.Month != 0 && (!historic || a.Birthday.Month == 0) {
		a.Birthday = f.Birthday // an old order does not overwrite what a newer one said
	}
	tier := a.EarningTier(p, f)
	first := a.PaidOrders == 0 && !f.Test
	if !f.Test {
		a.PaidOrders++ // a test order is not the customer's first order
	}
	a.Dirty = true
	if o == nil {
		o = NewOrder(a.CustomerID, f)
	}
	o.BaseTotal, o.Qualifying, o.PaidAt, o.Paid, o.Dirty = f.BaseTotal, p.Eligible(f), f.At, true, true
	res := PaidResult{Order: o}
	if f.Test {
		o.Qualifying = 0
		return res
	}
	awards := p.Earn(f, tier, first && !historic)
	var total int64
	lots := map[string]bool{}
	for _, aw := range awards {
		e := a.earn(p, eventID+":"+aw.Rule, aw.Kind, aw.Points, aw.Rule, f.At, o.Key())
		e.OrderSource, e.OrderID, e.SourceRef = f.Source, f.OrderID, eventID
		lots[e.ID] = true
		switch aw.Clawback {
		case ClawbackProportional:
			o.Proportional += aw.Points
		case ClawbackFull:
			o.Full += aw.Points
		}
		total += aw.Points
	}
	if total > 0 {
		a.Events = append(a.Events, Event{ID: eventID + ":earned", CustomerID: a.CustomerID, At: f.At,
			Balance: a.Balance, Entry: a.Entries[len(a.Entries)-1], Breakdown: awards, Historic: historic})
	}
	res.Points = total
	if historic {
		// Points that had expired before the order reached order-ingest
		// were never the customer's to spend: they go now, decided by the
		// event's own times, so every replay writes the same entries.
		a.expireWhere(func(l *Lot) bool { return lots[l.ID] && !l.ExpiresAt.After(f.IngestedAt) }, true)
		a.addSpend(p, eventID, f.At, o.Qualifying, f.IngestedAt, true)
		return res
	}
	a.birthdayBonus(p, f.At, now)
	a.addSpend(p, eventID, f.At, o.Qualifying, f.At, false)
	if first && f.Referral != "" && f.Referral != a.ReferralCode && a.ReferredBy == "" {
		a.ReferredBy = f.Referral
		res.ReferralCode = f.Referral
	}
	return res
}

// EarningTier is the tier (its index) whose multiplier an order of f earns
// at: the account's tier for a live order, TierAt the order's time for a
// historic one.
func (a *Account) EarningTier(p *Programme, f OrderFacts) int {
	if p.Historic(f) {
		return a.TierAt(p, f.At)
	}
	return p.TierIndex(a.Tier)
}

// TierAt is the tier (its index) the qualifying spend in the window ending
// at t reaches, as far as the spend is loaded (Account.Spend) and applied:
// the tier of a customer at a past time. It ignores the one-step limit of
// reviews, which the ledger cannot replay for a past it is told of late.
func (a *Account) TierAt(p *Programme, t time.Time) int { return p.TierFor(a.SpendIn(p, t)) }

// Quote is what an order of f would earn on the account, as ApplyPaid
// would award it before account-level bonuses (birthday, referral): at
// EarningTier, with the first-order bonus while the account has no paid
// order and the order is live.
func (a *Account) Quote(p *Programme, f OrderFacts) []Award {
	return p.Earn(f, a.EarningTier(p, f), a.PaidOrders == 0 && !p.Historic(f))
}

// AwardReferral gives the referrer the referral bonus for the referred
// customer's first paid order (event eventID).
func (a *Account) AwardReferral(p *Programme, eventID, referred string, at time.Time) {
	if p.ReferralBonus <= 0 {
		return
	}
	e := a.earn(p, eventID+":referral", KindBonus, p.ReferralBonus, "referral", at, "")
	e.SourceRef = eventID
	e.Reason = "referred " + referred
	a.Events = append(a.Events, Event{ID: e.ID, CustomerID: a.CustomerID, At: at, Balance: a.Balance, Entry: e,
		Breakdown: []Award{{Rule: "referral", Kind: KindBonus, Points: p.ReferralBonus, Clawback: ClawbackNever}}})
}

// birthdayBonus gives the birthday bonus once a year, in the birthday
// month, to a customer whose shop sent a birthday. at is the time that
// counts (an order's time, or the sweep's clock).
func (a *Account) birthdayBonus(p *Programme, at, now time.Time) {
	if p.BirthdayBonus.Points <= 0 || a.Birthday.Month == 0 || int(at.Month()) != a.Birthday.Month ||
		a.LastBirthdayYear >= at.Year() || at.After(now.Add(time.Hour)) {
		return
	}
	a.LastBirthdayYear = at.Year()
	a.Dirty = true
	id := "birthday:" + a.CustomerID + ":" + strconv.Itoa(at.Year())
	e := a.earn(p, id, KindBonus, p.BirthdayBonus.Points, "birthday", at, "")
	e.SourceRef = id
	a.Events = append(a.Events, Event{ID: id, CustomerID: a.CustomerID, At: at, Balance: a.Balance, Entry: e,
		Breakdown: []Award{{Rule: "birthday", Kind: KindBonus, Points: p.BirthdayBonus.Points, Clawback: ClawbackNever}}})
}

// earn adds points as a new lot and records the entry.
func (a *Account) earn(p *Programme, id string, kind Kind, points int64, rule string, at time.Time, orderKey string) *Entry {
	exp := p.ExpiresAt(at)
	e := &Entry{ID: id, CustomerID: a.CustomerID, Kind: kind, Points: points, Rule: rule, OccurredAt: at, ExpiresAt: exp}
	a.Lots = append(a.Lots, &Lot{ID: id, Points: points, Remaining: points, EarnedAt: at, ExpiresAt: exp, OrderKey: orderKey, New: true, Dirty: true})
	a.sortLots()
	a.Balance += points
	a.LifetimeEarned += points
	a.record(e)
	a.Dirty = true
	return e
}

// record appends a new entry, noting the balance it left.
func (a *Account) record(e *Entry) {
	e.BalanceAfter = a.Balance
	a.Entries = append(a.Entries, e)
}

// SortLots puts loaded lots in the order they are consumed.
func SortLots(a *Account) { a.sortLots() }

// sortLots keeps the lots in the order they are consumed: oldest first.
func (a *Account) sortLots() {
	slices.SortStableFunc(a.Lots, func(x, y *Lot) int {
		if c := x.EarnedAt.Compare(y.EarnedAt); c != 0 {
			return c
		}
		if x.ID < y.ID {
			return -1
		}
		if x.ID > y.ID {
			return 1
		}
		return 0
	})
}

// take consumes up to n points from the open lots, those of prefer (an
// order key) first, then the oldest; it returns the uses and how many
// points it took.
func (a *Account) take(n int64, prefer string) ([]LotUse, int64) {
	var uses []LotUse
	var took int64
	pass := func(match func(*Lot) bool) {
		for _, l := range a.Lots {
			if took == n {
				return
			}
			if l.Remaining == 0 || !match(l) {
				continue
			}
			k := min(l.Remaining, n-took)
			l.Remaining -= k
			l.Dirty = true
			took += k
			uses = append(uses, LotUse{LotID: l.ID, Points: k})
		}
	}
	if prefer != "" {
		pass(func(l *Lot) bool { return l.OrderKey == prefer })
	}
	pass(func(*Lot) bool { return true })
	a.Balance -= took
	a.Dirty = true
	return uses, took
}

// ApplyRefund claws back what a refund takes: the refunded share of the
// order's proportional points, and its full-refund points once the whole
// order is refunded. refundedTotal is the order's refunded base amount so
// far, this refund included, so a refund seen twice changes nothing and
// rounding never drifts.
func (a *Account) ApplyRefund(p *Programme, eventID string, o *Order, refundedTotal int64, at, now time.Time) {
	if o.Closed || refundedTotal <= o.Refunded {
		return
	}
	refundedTotal = min(refundedTotal, o.BaseTotal)
	o.Refunded = refundedTotal
	o.Dirty = true
	var target, unqualify int64
	if o.BaseTotal > 0 {
		target = mulDiv(o.Proportional, refundedTotal, o.BaseTotal)
		unqualify = mulDiv(o.Qualifying, refundedTotal, o.BaseTotal)
	}
	if refundedTotal >= o.BaseTotal {
		target = o.Proportional + o.Full
		unqualify = o.Qualifying
		o.Closed = true
	}
	a.reverse(eventID, o, target, unqualify, at, now)
}

// ApplyCancel claws back everything the order earned.
func (a *Account) ApplyCancel(p *Programme, eventID string, o *Order, at, now time.Time) {
	if o.Closed {
		return
	}
	o.Closed = true
	o.Dirty = true
	a.reverse(eventID, o, o.Proportional+o.Full, o.Qualifying, at, now)
}

func (a *Account) reverse(eventID string, o *Order, target, unqualify int64, at, now time.Time) {
	if d := unqualify - o.Unqualified; d > 0 {
		o.Unqualified = unqualify
		// Dated when the order was paid: the refund takes the spend out of
		// the windows the order counted in, not out of today's.
		a.addSpend(nil, eventID, o.PaidAt, -d, time.Time{}, false)
	}
	due := target - o.Reversed
	if due <= 0 {
		return
	}
	o.Reversed = target
	a.expire(now)
	// Points of the order that expired are gone already: they count as
	// taken back, and only the rest comes out of the balance.
	credit := min(due, max(o.Expired+a.expiredIn[o.Key()]-o.ExpiredCredit, 0))
	o.ExpiredCredit += credit
	uses, took := a.take(due-credit, o.Key())
	e := &Entry{ID: eventID + ":reversal", CustomerID: a.CustomerID, Kind: KindReversal, Points: -took,
		Shortfall: due - credit - took, Rule: "clawback", SourceRef: eventID, OrderSource: o.Source, OrderID: o.OrderID,
		OccurredAt: at, Uses: uses}
	if credit > 0 {
		e.Reason = fmt.Sprintf("%d of the %d points to take back had expired", credit, due)
	}
	a.Shortfall += e.Shortfall
	a.record(e)
	a.Events = append(a.Events, Event{ID: e.ID, CustomerID: a.CustomerID, At: at, Balance: a.Balance, Entry: e})
}

// mulDiv is x*y/z rounded down, exact for any int64 inputs.
func mulDiv(x, y, z int64) int64 {
	r := new(big.Int).Mul(big.NewInt(x), big.NewInt(y))
	return r.Quo(r, big.NewInt(z)).Int64()
}

// addSpend records qualifying spend dated at; p non-nil upgrades the tier
// at once when the spend in the window ending at upgradeAt reaches a
// higher tier (the tier change dated upgradeAt and marked historic as
// told).
func (a *Account) addSpend(p *Programme, ref string, at time.Time, amount int64, upgradeAt time.Time, historic bool) {
	if amount == 0 {
		return
	}
	s := Spend{Ref: ref, At: at, Amount: amount}
	a.Spend = append(a.Spend, s)
	if p == nil {
		return
	}
	if to := a.TierAt(p, upgradeAt); to > p.TierIndex(a.Tier) {
		a.changeTier(p, to, "upgrade", upgradeAt)
		a.Events[len(a.Events)-1].Historic = historic
	}
}

// SpendIn is the qualifying spend in the tier window ending at t.
func (a *Account) SpendIn(p *Programme, t time.Time) int64 {
	from := t.Add(-p.tierWindow)
	var sum int64
	for _, s := range a.Spend {
		if s.At.After(from) && !s.At.After(t) {
			sum += s.Amount
		}
	}
	return max(sum, 0)
}

func (a *Account) changeTier(p *Programme, to int, reason string, at time.Time) {
	from := a.Tier
	a.Tier = p.tiers[to].Name
	a.TierSince = at
	a.Dirty = true
	a.Events = append(a.Events, Event{ID: fmt.Sprintf("tier:%s:%s:%s:%d", a.CustomerID, from, a.Tier, at.UnixMilli()),
		CustomerID: a.CustomerID, At: at, Balance: a.Balance, TierFrom: from, TierTo: a.Tier, TierReason: reason})
}

// ReviewTier is the periodic review: when a review is due, a tier above
// what the spend in the window reaches goes down one step (never more),
// and one below goes up.
func (a *Account) ReviewTier(p *Programme, now time.Time) bool {
	if now.Sub(a.ReviewedAt) < p.review {
		return false
	}
	a.ReviewedAt = now
	a.Dirty = true
	cur, want := p.TierIndex(a.Tier), p.TierFor(a.SpendIn(p, now))
	switch {
	case want < cur:
		a.changeTier(p, cur-1, "review", now)
	case want > cur:
		a.changeTier(p, want, "upgrade", now)
	}
	return true
}

// Sweep is the daily work on an account: expire lots past their date,
// warn of lots expiring soon, give the birthday bonus, and review the
// tier when due. It is idempotent.
func (a *Account) Sweep(p *Programme, now time.Time) {
	a.expire(now)
	a.warn(p, now)
	a.birthdayBonus(p, now, now)
	a.ReviewTier(p, now)
}

// ExpireDue writes off the lots whose time has come by now (Sweep does it
// too; reads use it to show the balance as of now).
func (a *Account) ExpireDue(now time.Time) { a.expire(now) }

// expire writes off every open lot whose time has come, one expiry entry
// per lot.
func (a *Account) expire(now time.Time) {
	a.expireWhere(func(l *Lot) bool { return !l.ExpiresAt.After(now) }, false)
}

// expireWhere writes off the open lots with an expiry that due chooses,
// one expiry entry per lot dated at its expiry, their events marked
// historic as told.
func (a *Account) expireWhere(due func(*Lot) bool, historic bool) {
	for _, l := range a.Lots {
		if l.Remaining == 0 || l.ExpiresAt.IsZero() || !due(l) {
			continue
		}
		n := l.Remaining
		l.Remaining = 0
		l.Dirty = true
		if l.OrderKey != "" {
			if a.expiredIn == nil {
				a.expiredIn = map[string]int64{}
			}
			a.expiredIn[l.OrderKey] += n
		}
		a.Balance -= n
		a.Dirty = true
		e := &Entry{ID: "expiry:" + l.ID, CustomerID: a.CustomerID, Kind: KindExpiry, Points: -n, Rule: "expiry",
			SourceRef: l.ID, OccurredAt: l.ExpiresAt, Uses: []LotUse{{LotID: l.ID, Points: n}}}
		a.record(e)
		a.Events = append(a.Events, Event{ID: e.ID, CustomerID: a.CustomerID, At: l.ExpiresAt, Balance: a.Balance, Entry: e,
			Historic: historic})
	}
}

// warn announces, once per lot, points that expire within the warning
// time. A lot past its expiry is never announced, whether or not it has
// been expired yet: a notice would come after the fact (a lot of a
// historic order, or one the sweep reaches late).
func (a *Account) warn(p *Programme, now time.Time) {
	if p.WarnBefore == 0 {
		return
	}
	for _, l := range a.Lots {
		if l.Remaining == 0 || l.Warned || l.ExpiresAt.IsZero() || !l.ExpiresAt.After(now) || l.ExpiresAt.Sub(now) > p.WarnBefore {
			continue
		}
		l.Warned = true
		l.Dirty = true
		a.Events = append(a.Events, Event{ID: "expiring:" + l.ID, CustomerID: a.CustomerID, At: now, Balance: a.Balance,
			Expiring: l.Remaining, ExpiresAt: l.ExpiresAt})
	}
}

// Expiring is the open points that expire by t, and the earliest expiry.
func (a *Account) Expiring(t time.Time) (int64, time.Time) {
	var n int64
	var next time.Time
	for _, l := range a.Lots {
		if l.Remaining == 0 || l.ExpiresAt.IsZero() {
			continue
		}
		if next.IsZero() || l.ExpiresAt.Before(next) {
			next = l.ExpiresAt
		}
		if !l.ExpiresAt.After(t) {
			n += l.Remaining
		}
	}
	return n, next
}

// Redemption asks for a reward or a number of points.
type Redemption struct {
	Key      string
	RewardID string
	Points   int64
	// Redeemed is how many of the reward have been redeemed, for stock.
	Redeemed int64
}

// RedemptionID names a redemption by its customer and idempotency key.
func RedemptionID(customerID, key string) string { return "redeem:" + customerID + ":" + key }

// Redeem spends points, oldest lots first. Nothing changes on error.
func (a *Account) Redeem(p *Programme, r Redemption, now time.Time) (*Entry, error) {
	points := r.Points
	if r.RewardID != "" {
		rw, ok := p.Reward(r.RewardID)
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownReward, r.RewardID)
		}
		if rw.RequiredTier != "" && p.TierIndex(a.Tier) < p.TierIndex(rw.RequiredTier) {
			return nil, fmt.Errorf("%w: %s needs %s, the customer is %s", ErrTierRequired, rw.ID, rw.RequiredTier, a.Tier)
		}
		if rw.Stock != nil && r.Redeemed >= *rw.Stock {
			return nil, fmt.Errorf("%w: %s", ErrOutOfStock, rw.ID)
		}
		points = rw.Cost
	}
	if points <= 0 {
		return nil, fmt.Errorf("%w: nothing to redeem", ErrInsufficientPoints)
	}
	a.expire(now)
	if points > a.Balance {
		return nil, fmt.Errorf("%w: %d needed, balance %d", ErrInsufficientPoints, points, a.Balance)
	}
	uses, _ := a.take(points, "")
	e := &Entry{ID: RedemptionID(a.CustomerID, r.Key), CustomerID: a.CustomerID, Kind: KindRedeem, Points: -points,
		Rule: "redeem", SourceRef: r.RewardID, Reason: r.Key, OccurredAt: now, Uses: uses}
	a.record(e)
	a.Events = append(a.Events, Event{ID: e.ID, CustomerID: a.CustomerID, At: now, Balance: a.Balance, Entry: e, RewardID: r.RewardID})
	return e, nil
}

// AdjustmentID names an adjustment by its customer and idempotency key.
func AdjustmentID(customerID, key string) string { return "adjust:" + customerID + ":" + key }

// Adjust adds points (as a new lot) or removes them (oldest lots first) by
// hand. Removing more than the balance fails and changes nothing.
func (a *Account) Adjust(p *Programme, key string, points int64, actor, reason string, now time.Time) (*Entry, error) {
	id := AdjustmentID(a.CustomerID, key)
	var e *Entry
	if points > 0 {
		e = a.earn(p, id, KindAdjustment, points, "adjustment", now, "")
		a.LifetimeEarned -= points // an adjustment is not earning
	} else {
		a.expire(now)
		if -points > a.Balance {
			return nil, fmt.Errorf("%w: removing %d, balance %d", ErrInsufficientPoints, -points, a.Balance)
		}
		uses, _ := a.take(-points, "")
		e = &Entry{ID: id, CustomerID: a.CustomerID, Kind: KindAdjustment, Points: points, OccurredAt: now, Uses: uses}
		a.record(e)
	}
	e.Actor, e.Reason, e.SourceRef, e.Rule = actor, reason, key, "adjustment"
	a.Events = append(a.Events, Event{ID: e.ID, CustomerID: a.CustomerID, At: now, Balance: a.Balance, Entry: e})
	return e, nil
}

// OpenPoints is the sum of the open lots; it always equals Balance.
func (a *Account) OpenPoints() int64 {
	var n int64
	for _, l := range a.Lots {
		n += l.Remaining
	}
	return n
}
