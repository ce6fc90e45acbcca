package ledger

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/ordergate"
)

func day(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }

// paidAt is a canonical paid event of order for customer, total EUR minor
// units, that occurred at occurred and reached order-ingest at ingested.
func paidAt(id, customer, order string, total int64, occurred, ingested time.Time) *ordersv1.OrderEvent {
	eur := &commonv1.Money{MinorUnits: total, Currency: "EUR"}
	return &ordersv1.OrderEvent{EventId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, Source: "shop",
		OrderId: order, OrderSequence: 1, CustomerId: customer, OccurredAt: timestamppb.New(occurred),
		IngestedAt: timestamppb.New(ingested), Total: eur, BaseTotal: eur, Channel: "web",
		Customer: &ordersv1.CustomerAttributes{Birthday: &commonv1.Birthday{Month: 3, Day: 2}}}
}

// entryLine is what a test compares of an entry.
func entryLine(e *Entry) string {
	return fmt.Sprintf("%s %s %s %+d at %s expires %s balance %d", e.ID, e.Kind, e.Rule, e.Points,
		e.OccurredAt.Format(time.RFC3339), e.ExpiresAt.Format(time.RFC3339), e.BalanceAfter)
}

func entryLines(a *Account) []string {
	var out []string
	for _, e := range a.Entries {
		out = append(out, entryLine(e))
	}
	return out
}

func eventLines(evs []Pending) []string {
	var out []string
	for _, p := range evs {
		out = append(out, fmt.Sprintf("%s historic=%v", p.Event.ID, p.Event.Historic))
	}
	return out
}

func TestHistoricIsDecidedByTheEventsTimes(t *testing.T) {
	p := mustProgramme(t, testProgramme) // no history setting: 7 days
	at := day(2026, 3, 1, 12)
	tests := []struct {
		name     string
		ingested time.Time
		want     bool
	}{
		{"no ingestion time", time.Time{}, false},
		{"at once", at, false},
		{"exactly seven days later", at.Add(7 * 24 * time.Hour), false},
		{"a second more", at.Add(7*24*time.Hour + time.Second), true},
		{"years later", day(2029, 1, 1, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Historic(OrderFacts{At: at, IngestedAt: tt.ingested}); got != tt.want {
				t.Errorf("historic %v, want %v", got, tt.want)
			}
		})
	}
	p30 := mustProgramme(t, "base_currency: EUR\nhistory: {historic_after_days: 30}\n")
	if p30.Historic(OrderFacts{At: at, IngestedAt: at.Add(20 * 24 * time.Hour)}) {
		t.Error("20 days late is historic with historic_after_days: 30")
	}
}

// TestHistoricFirstOrderInTheBirthdayMonth: a 2019 first order in the
// birthday month, imported in 2026, earns its base points only; its lot
// expired a year after the order, which the ledger records at once, dated
// then, and never announces. A live order afterwards is not the first
// (no first-order bonus) but, in the birthday month, gets this year's
// birthday bonus. The same events applied again, at another clock, give
// the same entries.
func TestHistoricFirstOrderInTheBirthdayMonth(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	now := day(2026, 3, 20, 12)
	evs := []*ordersv1.OrderEvent{
		// 120.00 on 15 March 2019, submitted by an import on 18 March 2026.
		paidAt("h", "c", "h1", 120_00, day(2019, 3, 15, 10), day(2026, 3, 18, 9)),
		// 50.00 now, submitted at once.
		paidAt("l", "c", "l1", 50_00, day(2026, 3, 20, 11), day(2026, 3, 20, 11).Add(5*time.Second)),
	}
	run := func(clock time.Time) *Batch {
		b := NewBatch(p, clock)
		b.Accounts["c"] = NewAccount(p, "c", clock)
		gate := ordergate.New()
		for _, ev := range evs {
			if got := b.ApplyOrderEvent(context.Background(), gate, ev); got != Applied {
				t.Fatalf("%s: outcome %d", ev.GetEventId(), got)
			}
			if got := b.ApplyOrderEvent(context.Background(), gate, ev); got != Duplicate {
				t.Fatalf("%s redelivered: outcome %d", ev.GetEventId(), got)
			}
		}
		return b
	}
	b := run(now)
	a := b.Accounts["c"]
	// 365 days after 15 March 2019 is 14 March 2020 (2020 has 29 February).
	want := []string{
		"h:base earn base +120 at 2019-03-15T10:00:00Z expires 2020-03-14T10:00:00Z balance 120",
		"expiry:h:base expiry expiry -120 at 2020-03-14T10:00:00Z expires 0001-01-01T00:00:00Z balance 0",
		"l:base earn base +50 at 2026-03-20T11:00:00Z expires 2027-03-20T11:00:00Z balance 50",
		"birthday:c:2026 bonus birthday +200 at 2026-03-20T11:00:00Z expires 2027-03-20T11:00:00Z balance 250",
	}
	if got := entryLines(a); !slices.Equal(got, want) {
		t.Errorf("entries\n got %q\nwant %q", got, want)
	}
	wantEvents := []string{"h:earned historic=true", "expiry:h:base historic=true", "l:earned historic=false", "birthday:c:2026 historic=false"}
	if got := eventLines(b.Out); !slices.Equal(got, wantEvents) {
		t.Errorf("events\n got %q\nwant %q", got, wantEvents)
	}
	if a.PaidOrders != 2 || a.LastBirthdayYear != 2026 || a.Balance != 250 {
		t.Errorf("paid orders %d, birthday year %d, balance %d; want 2, 2026, 250", a.PaidOrders, a.LastBirthdayYear, a.Balance)
	}

	// The sweep now and years later: the live lots expire, dated at their
	// expiry; nothing is ever announced as expiring soon, as every sweep
	// comes either before the warning time or after the expiry.
	for _, at := range []time.Time{now, day(2031, 1, 1, 0), day(2031, 1, 2, 0)} {
		a.Sweep(p, at)
		b.collect(context.Background(), a)
	}
	for _, ev := range b.Out {
		if ev.Event.Expiring != 0 || !ev.Event.ExpiresAt.IsZero() {
			t.Errorf("expiring-soon event %s", ev.Event.ID)
		}
	}
	// Lots earned together are consumed by id: the birthday lot first.
	want = append(want,
		"expiry:birthday:c:2026 expiry expiry -200 at 2027-03-20T11:00:00Z expires 0001-01-01T00:00:00Z balance 50",
		"expiry:l:base expiry expiry -50 at 2027-03-20T11:00:00Z expires 0001-01-01T00:00:00Z balance 0")
	if got := entryLines(a); !slices.Equal(got, want) {
		t.Errorf("entries after the sweeps\n got %q\nwant %q", got, want)
	}
	checkInvariants(t, a)

	// Replayed into an empty ledger at a later clock: the same entries
	// and events.
	r := run(day(2026, 9, 1, 0))
	if got, want := entryLines(r.Accounts["c"]), want[:4]; !slices.Equal(got, want) {
		t.Errorf("replayed entries\n got %q\nwant %q", got, want)
	}
	if got := eventLines(r.Out); !slices.Equal(got, wantEvents) {
		t.Errorf("replayed events\n got %q\nwant %q", got, wantEvents)
	}
}

// TestHistoricFirstOrderGivesNoReferralBonus: the referrer of a customer
// whose first paid order is historic earns nothing, then or later.
func TestHistoricFirstOrderGivesNoReferralBonus(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	now := day(2026, 6, 1, 12)
	b := NewBatch(p, now)
	b.Accounts["ann"] = &Account{CustomerID: "ann", Exists: true, Tier: "Bronze", ReferralCode: ReferralCode("ann"), LotsLoaded: true}
	b.Accounts["ben"] = NewAccount(p, "ben", now)
	b.Referrers[ReferralCode("ann")] = "ann"
	first := paidAt("h", "ben", "h1", 20_00, day(2020, 6, 1, 12), now.Add(-time.Hour))
	first.Customer.ReferralCode = ReferralCode("ann")
	second := paidAt("l", "ben", "l1", 20_00, now.Add(-time.Minute), now)
	second.Customer.ReferralCode = ReferralCode("ann")
	gate := ordergate.New()
	for _, ev := range []*ordersv1.OrderEvent{first, second} {
		if got := b.ApplyOrderEvent(context.Background(), gate, ev); got != Applied {
			t.Fatalf("%s: outcome %d", ev.GetEventId(), got)
		}
	}
	if ann := b.Accounts["ann"]; ann.Balance != 0 || len(ann.Entries) != 0 {
		t.Errorf("referrer: balance %d, entries %q; want nothing", ann.Balance, entryLines(ann))
	}
	// ben: 20 for each order, no first-order bonus for either; the 2020
	// order's 20 expired in 2021.
	if ben := b.Accounts["ben"]; ben.Balance != 20 || ben.LifetimeEarned != 40 || ben.ReferredBy != "" {
		t.Errorf("referred: balance %d, earned %d, referred by %q; want 20, 40 and none", ben.Balance, ben.LifetimeEarned, ben.ReferredBy)
	}
}

const tierProgramme = `
base_currency: EUR
tiers:
  window_days: 365
  review_every_days: 30
  levels:
    - {name: Bronze, min_spend: "0", multiplier: "1"}
    - {name: Silver, min_spend: "500.00", multiplier: "1.5"}
    - {name: Gold, min_spend: "2000.00", multiplier: "2"}
`

// TestHistoricTiers: orders from 2019 to 2026 imported on one day earn at
// the tier the spend in the window ending at each order's time had reached
// (as far as the ledger has seen that spend when it applies the order),
// and leave the account at the tier of the spend in the window ending when
// they reached order-ingest, with one tier change, marked historic.
func TestHistoricTiers(t *testing.T) {
	p := mustProgramme(t, tierProgramme)
	imported := day(2026, 6, 1, 9)
	type order struct {
		id    string
		at    time.Time
		total int64
	}
	orders := []order{
		{"A", day(2019, 1, 10, 12), 400_00},
		{"B", day(2019, 3, 10, 12), 300_00},
		{"C", day(2019, 6, 10, 12), 1500_00},
		{"D", day(2019, 9, 10, 12), 200_00},
		{"E", day(2021, 1, 10, 12), 100_00},
		{"F", day(2026, 3, 1, 12), 600_00},
	}
	tests := []struct {
		name  string
		order []int
		// Points per order, worked out by hand from the spend in the
		// 365 days up to the order that was applied before it.
		want map[string]int64
	}{
		{"chronological", []int{0, 1, 2, 3, 4, 5}, map[string]int64{
			"A": 400,  // nothing before: Bronze
			"B": 300,  // A 400: Bronze
			"C": 2250, // A+B 700: Silver, 1500 × 1.5
			"D": 400,  // A+B+C 2200: Gold, 200 × 2
			"E": 100,  // 2019 is out of the window: Bronze
			"F": 600,  // E is five years before: Bronze
		}},
		{"newest first", []int{5, 4, 3, 2, 1, 0}, map[string]int64{
			"F": 600, "E": 100,
			"D": 200,  // A, B, C not applied yet
			"C": 1500, // D is after C: not in its window
			"B": 300, "A": 400,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAccount(p, "c", imported)
			got := map[string]int64{}
			for _, i := range tt.order {
				o := orders[i]
				f := OrderFacts{Source: "shop", OrderID: o.id, At: o.at, IngestedAt: imported.Add(time.Duration(i) * time.Second), BaseTotal: o.total}
				got[o.id] = a.ApplyPaid(p, o.id, f, nil, imported.Add(time.Minute)).Points
			}
			for id, w := range tt.want {
				if got[id] != w {
					t.Errorf("order %s earned %d, want %d", id, got[id], w)
				}
			}
			// The window ending on the import day holds F's 600.00: Silver.
			if a.Tier != "Silver" {
				t.Errorf("tier %s after the import, want Silver", a.Tier)
			}
			var changes []Event
			for _, ev := range a.Events {
				if ev.TierTo != "" {
					changes = append(changes, ev)
				}
			}
			if len(changes) != 1 || changes[0].TierFrom != "Bronze" || changes[0].TierTo != "Silver" || !changes[0].Historic ||
				changes[0].At.Before(imported) || changes[0].At.After(imported.Add(time.Minute)) {
				t.Errorf("tier changes %+v, want one, Bronze to Silver, historic, on the import day", changes)
			}
			// A live order earns at the account's tier; the review a month
			// later finds the same tier (F and the live order).
			live := a.ApplyPaid(p, "G", OrderFacts{Source: "shop", OrderID: "G", At: imported.Add(time.Hour), IngestedAt: imported.Add(time.Hour), BaseTotal: 100_00}, nil, imported.Add(time.Hour))
			if live.Points != 150 {
				t.Errorf("live order at Silver earned %d, want 150", live.Points)
			}
			if !a.ReviewTier(p, imported.AddDate(0, 1, 1)) || a.Tier != "Silver" {
				t.Errorf("after the review: %s, want Silver", a.Tier)
			}
		})
	}
}

// TestLotPastItsExpiryIsNeverAnnounced: warn skips a lot whose expiry has
// passed even before the lot is expired, and a sweep long after the
// warning time expires without warning. A lot of a historic order that
// was still open when the order arrived is the customer's and is
// announced like any other.
func TestLotPastItsExpiryIsNeverAnnounced(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	a := NewAccount(p, "c", t0)
	paid(p, a, "o1", 10_00, t0) // lots expire t0 + 365 days; warn 30 days before
	a.Events = nil
	a.warn(p, t0.Add(400*24*time.Hour))
	a.Sweep(p, t0.Add(5*365*24*time.Hour))
	for _, ev := range a.Events {
		if ev.Expiring != 0 {
			t.Errorf("announced %s after its expiry", ev.ID)
		}
	}
	if a.Balance != 0 {
		t.Errorf("balance %d after the expiry, want 0", a.Balance)
	}

	// Ordered on 1 March 2025, imported on 20 February 2026: its lot
	// expires on 1 March 2026 (365 days), 9 days after the import.
	f := OrderFacts{Source: "shop", OrderID: "h1", At: day(2025, 3, 1, 12), IngestedAt: day(2026, 2, 20, 12), BaseTotal: 10_00}
	h := NewAccount(p, "h", f.IngestedAt)
	h.ApplyPaid(p, "h1", f, nil, f.IngestedAt)
	if h.Balance != 10 {
		t.Fatalf("balance %d, want the open lot's 10", h.Balance)
	}
	h.Events = nil
	h.Sweep(p, day(2026, 2, 21, 0))
	if len(h.Events) != 1 || h.Events[0].Expiring != 10 || !h.Events[0].ExpiresAt.Equal(day(2026, 3, 1, 12)) || h.Events[0].Historic {
		t.Errorf("events %+v, want one warning of 10 points expiring on 1 March 2026", h.Events)
	}
}

// TestQuoteAgreesWithApplyPaid: what Account.Quote says an order earns is
// what ApplyPaid awards it (before birthday and referral bonuses), for
// live and historic orders, first or not.
func TestQuoteAgreesWithApplyPaid(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	now := day(2026, 11, 10, 12)
	a := NewAccount(p, "c", now)
	steps := []struct {
		name string
		f    OrderFacts
		want int64 // worked out by hand
	}{
		{"historic first order", OrderFacts{At: day(2025, 12, 1, 12), BaseTotal: 600_00}, 600 + 50},                               // base at Bronze, big bonus, no first order
		{"historic repeat in the window", OrderFacts{At: day(2026, 1, 1, 12), BaseTotal: 100_00}, 150},                            // 600.00 before: Silver
		{"live repeat", OrderFacts{At: now, Channel: "app", BaseTotal: 100_00}, 150 + 100},                                        // Silver (the import upgraded), app-double
		{"historic before everything", OrderFacts{At: day(2024, 1, 1, 12), BaseTotal: 100_00}, 100},                               // nothing in its window: Bronze
		{"live with shoes", OrderFacts{At: now, BaseTotal: 100_00, Lines: []Line{{Category: "shoes", Value: 100_00}}}, 150 + 200}, // Silver; not the app: shoes (3 − 1) × 100
	}
	for i, s := range steps {
		f := s.f
		f.Source, f.OrderID = "shop", fmt.Sprint("o", i)
		if f.IngestedAt.IsZero() {
			f.IngestedAt = now
		}
		var quoted int64
		for _, aw := range a.Quote(p, f) {
			quoted += aw.Points
		}
		got := a.ApplyPaid(p, f.OrderID, f, nil, now).Points
		if quoted != got || got != s.want {
			t.Errorf("%s: quoted %d, earned %d, want %d", s.name, quoted, got, s.want)
		}
	}
}

// TestHistoricClawBackIsMarked: the claw-back of a historic refund is
// marked historic; that of a live refund of the same order is not.
func TestHistoricClawBackIsMarked(t *testing.T) {
	p := mustProgramme(t, "base_currency: EUR\n")
	now := day(2026, 6, 1, 12)
	b := NewBatch(p, now)
	b.Accounts["c"] = NewAccount(p, "c", now)
	gate := ordergate.New()
	refund := func(id string, seq int32, cumulative int64, occurred, ingested time.Time) *ordersv1.OrderEvent {
		eur := &commonv1.Money{MinorUnits: cumulative, Currency: "EUR"}
		return &ordersv1.OrderEvent{EventId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, Source: "shop",
			OrderId: "h1", OrderSequence: seq, CustomerId: "c", OccurredAt: timestamppb.New(occurred), IngestedAt: timestamppb.New(ingested),
			Refund: &ordersv1.Refund{RefundId: id, RefundedTotal: &ordersv1.Amount{Base: eur}}}
	}
	for _, ev := range []*ordersv1.OrderEvent{
		paidAt("p", "c", "h1", 100_00, day(2025, 1, 1, 12), now),
		refund("r1", 2, 20_00, day(2025, 1, 5, 12), now),
		refund("r2", 3, 50_00, now.Add(-time.Hour), now),
	} {
		if got := b.ApplyOrderEvent(context.Background(), gate, ev); got != Applied {
			t.Fatalf("%s: outcome %d", ev.GetEventId(), got)
		}
	}
	want := []string{"p:earned historic=true", "r1:reversal historic=true", "r2:reversal historic=false"}
	if got := eventLines(b.Out); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if a := b.Accounts["c"]; a.Balance != 50 {
		t.Errorf("balance %d, want 100 less half", a.Balance)
	}
}
