package ledger

import (
	"context"
	"fmt"
	"time"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/ordergate"
)

// Batch is what one transaction of the ledger works on: the accounts,
// orders, entries and reward stock the store loaded for it, which the
// rules here read and change, and what the rules produced for the store
// to write with them.
type Batch struct {
	Programme *Programme
	// Now is the time of the change (expiry, recorded times).
	Now time.Time
	// Accounts by customer id; an account the store did not find is a
	// NewAccount (Exists false).
	Accounts map[string]*Account
	// Orders by Order.Key ("source/order_id"), as far as they were seen.
	Orders map[string]*Order
	// Processed holds the unnumbered order events applied before (by event
	// id); Seen the ones this batch applied, which the store records.
	Processed map[string]bool
	Seen      []string
	// Referrers maps the referral codes of the batch's paid orders to
	// their customers.
	Referrers map[string]string
	// Entries holds the entries the store was asked for by id: the first
	// result of an idempotency key.
	Entries map[string]*Entry
	// Redeemed is how many of each reward asked for were redeemed before
	// (its stock row locked); Taken how many this batch redeems.
	Redeemed, Taken map[string]int64
	// Out are the ledger events to publish, in order.
	Out []Pending
}

// Pending is a ledger event to publish, with the context of the request
// or message it follows from: only its trace, which the event continues.
type Pending struct {
	Ctx   context.Context
	Event Event
}

// NewBatch is an empty batch for the store to fill.
func NewBatch(p *Programme, now time.Time) *Batch {
	return &Batch{Programme: p, Now: now, Accounts: map[string]*Account{}, Orders: map[string]*Order{},
		Processed: map[string]bool{}, Referrers: map[string]string{}, Entries: map[string]*Entry{},
		Redeemed: map[string]int64{}, Taken: map[string]int64{}}
}

// collect moves the events accounts produced into Out, with ctx.
func (b *Batch) collect(ctx context.Context, accts ...*Account) {
	for _, a := range accts {
		if a == nil {
			continue
		}
		for _, ev := range a.Events {
			b.Out = append(b.Out, Pending{Ctx: ctx, Event: ev})
		}
		a.Events = a.Events[:0]
	}
}

// Needs is what the store loads for a batch.
type Needs struct {
	// Customers are the accounts to load (locked on PostgreSQL); Lots
	// names those whose open lots are needed (all when nil), Spend chooses
	// those whose qualifying spend after SpendFrom is.
	Customers []string
	Lots      map[string]bool
	Spend     func(*Account) bool
	SpendFrom time.Time
	// Orders are the orders to load; Clawbacks those of them, when paid,
	// whose expired points are needed.
	Orders, Clawbacks []OrderKey
	// ReferralCodes are the codes whose customers (Batch.Referrers) are
	// loaded with their accounts.
	ReferralCodes []string
	// Entries are entries to load by id; Rewards the rewards whose stock
	// rows are locked and read.
	Entries, Rewards []string
}

// OrderKey names an order: its source and its id there.
type OrderKey struct{ Source, OrderID string }

// AccountNeeds is what a change of the accounts ids needs: their open lots
// and the qualifying spend of the tier window ending now.
func AccountNeeds(p *Programme, now time.Time, ids ...string) Needs {
	return Needs{Customers: ids, SpendFrom: now.Add(-p.TierWindow())}
}

// Outcome is what became of an order event.
type Outcome int

const (
	// Applied: the event changed the ledger (or was recorded as seen).
	Applied Outcome = iota + 1
	// Duplicate: the event had been applied before.
	Duplicate
	// Later: an earlier event of the same order has not been applied yet
	// (it is being redelivered after a crash); the event must come back.
	Later
)

// OrderNeeds is what applying evs reads, processed being the unnumbered
// events applied before (nothing is loaded for them): the customers'
// accounts, the lots only of those whose orders are refunded or cancelled
// (earning appends a lot and needs none of the others), the spend of
// accounts that can still rise a tier and of those with a historic paid
// order (its multiplier is the tier of its time, from the spend), the
// orders, and the referrers of paid orders.
func OrderNeeds(p *Programme, now time.Time, evs []*ordersv1.OrderEvent, processed map[string]bool) Needs {
	historic := map[string]bool{}
	n := Needs{Lots: map[string]bool{}, Spend: func(a *Account) bool { return p.CanRise(a.Tier) || historic[a.CustomerID] }}
	spendFrom := now
	for _, ev := range evs {
		if processed[ev.GetEventId()] {
			continue
		}
		n.Customers = append(n.Customers, ev.GetCustomerId())
		if ev.GetKind() == ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID && p.HistoricEvent(ev) {
			historic[ev.GetCustomerId()] = true
		}
		key := OrderKey{Source: ev.GetSource(), OrderID: ev.GetOrderId()}
		if k := ev.GetKind(); k == ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED || k == ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED {
			n.Lots[ev.GetCustomerId()] = true
			n.Clawbacks = append(n.Clawbacks, key)
		}
		n.Orders = append(n.Orders, key)
		if c := ev.GetCustomer().GetReferralCode(); c != "" && ev.GetKind() == ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID {
			n.ReferralCodes = append(n.ReferralCodes, c)
		}
		if t := ev.GetOccurredAt().AsTime(); t.Before(spendFrom) {
			spendFrom = t
		}
	}
	n.SpendFrom = spendFrom.Add(-p.TierWindow())
	return n
}

// KnowReferralCodes adds the codes of the customers of evs not processed
// before to Referrers: a first order may name the code of a customer of
// the same batch, and a customer may not refer themselves.
func (b *Batch) KnowReferralCodes(evs []*ordersv1.OrderEvent) {
	for _, ev := range evs {
		if !b.Processed[ev.GetEventId()] {
			b.Referrers[ReferralCode(ev.GetCustomerId())] = ev.GetCustomerId()
		}
	}
}

// ApplyOrderEvent applies one canonical order event, as gate orders the
// events of its order: paid orders earn once, refunds and cancellations
// claw back. Later means it must wait for an earlier event of its order:
// order-ingest numbers each order's events (order_sequence, from 1), and
// JetStream redelivers the messages of a crashed consumer only after their
// ack wait, so newer events can arrive first. ctx is the trace the ledger
// events it causes continue.
func (b *Batch) ApplyOrderEvent(ctx context.Context, gate *ordergate.Gate, ev *ordersv1.OrderEvent) Outcome {
	key := ev.GetSource() + "/" + ev.GetOrderId()
	at := ev.GetOccurredAt().AsTime()
	o := b.Orders[key]
	seq := ev.GetOrderSequence()
	switch gate.Decide(ordergate.Key{Source: ev.GetSource(), OrderID: ev.GetOrderId()}, seq) {
	case ordergate.Later:
		return Later
	case ordergate.Duplicate:
		return Duplicate // this position of the order's history was applied already
	}
	defer func() {
		if o := b.Orders[key]; o != nil && seq > o.LastSeq {
			o.LastSeq, o.Dirty = seq, true
		}
	}()
	p := b.Programme
	switch ev.GetKind() {
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED:
		if o == nil {
			b.Orders[key] = NewOrder(ev.GetCustomerId(), FactsOf(ev))
		}
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID:
		if o != nil && (o.Paid || o.Closed) {
			// Paid once; a second paid event earns nothing. Nor does a
			// payment order-ingest saw after the order's cancellation
			// (numbered after it): a cancelled order earns nothing,
			// whichever of the two came first.
			return Applied
		}
		a := b.Accounts[ev.GetCustomerId()]
		res := a.ApplyPaid(p, ev.GetEventId(), FactsOf(ev), o, b.Now)
		b.Orders[key] = res.Order
		var ref *Account
		if res.ReferralCode != "" {
			if id, ok := b.Referrers[res.ReferralCode]; ok && id != a.CustomerID {
				ref = b.Accounts[id]
				ref.AwardReferral(p, ev.GetEventId(), a.CustomerID, at)
			}
		}
		b.collect(ctx, a, ref)
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED:
		if o == nil || !o.Paid {
			return Applied // never paid: nothing was earned
		}
		a := b.Accounts[o.CustomerID]
		if a == nil {
			return Applied
		}
		total := ev.GetRefund().GetRefundedTotal().GetBase().GetMinorUnits()
		if total == 0 {
			total = o.Refunded + ev.GetRefund().GetAmount().GetBase().GetMinorUnits()
		}
		n := len(a.Events)
		a.ApplyRefund(p, ev.GetEventId(), o, total, at, b.Now)
		markReversal(p, ev, a, n)
		b.collect(ctx, a)
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED:
		if o == nil {
			return Applied
		}
		if !o.Paid {
			// Cancelled before its payment was seen: remember it, so
			// that the payment, should it still come, earns nothing.
			o.Closed, o.Dirty = true, true
			return Applied
		}
		if a := b.Accounts[o.CustomerID]; a != nil {
			n := len(a.Events)
			a.ApplyCancel(p, ev.GetEventId(), o, at, b.Now)
			markReversal(p, ev, a, n)
			b.collect(ctx, a)
		}
	}
	return Applied
}

// markReversal marks historic the claw-back of a historic refund or
// cancellation ev among the events a produced from the nth on. The lots
// that expired on the way are not its doing and stay as they are.
func markReversal(p *Programme, ev *ordersv1.OrderEvent, a *Account, n int) {
	if !p.HistoricEvent(ev) {
		return
	}
	for i := n; i < len(a.Events); i++ {
		if e := a.Events[i].Entry; e != nil && e.Kind == KindReversal {
			a.Events[i].Historic = true
		}
	}
}

// Redeem spends a customer's points for a reward or a number of points.
// A retry with the same key returns the first redemption (loaded in
// Entries under RedemptionID); a different request under a used key is
// ErrIdempotencyReuse. The reward's stock (Redeemed) must be loaded.
func (b *Batch) Redeem(ctx context.Context, customerID string, r Redemption) (*Entry, error) {
	if prev := b.Entries[RedemptionID(customerID, r.Key)]; prev != nil {
		if prev.CustomerID != customerID || prev.SourceRef != r.RewardID || (r.RewardID == "" && -prev.Points != r.Points) {
			return nil, ErrIdempotencyReuse
		}
		return prev, nil
	}
	a := b.Accounts[customerID]
	if !a.Exists {
		return nil, fmt.Errorf("account %s: %w", customerID, ErrNotFound)
	}
	if r.RewardID != "" {
		r.Redeemed = b.Redeemed[r.RewardID] + b.Taken[r.RewardID]
	}
	e, err := a.Redeem(b.Programme, r, b.Now)
	if err != nil {
		return nil, err
	}
	if r.RewardID != "" {
		b.Taken[r.RewardID]++
	}
	b.collect(ctx, a)
	return e, nil
}

// Adjust adds or removes points by hand on an existing account; a retry
// with the same key returns the first adjustment (loaded in Entries under
// AdjustmentID), a different request under a used key is
// ErrIdempotencyReuse.
func (b *Batch) Adjust(ctx context.Context, customerID, key string, points int64, actor, reason string) (*Entry, error) {
	if prev := b.Entries[AdjustmentID(customerID, key)]; prev != nil {
		if prev.CustomerID != customerID || prev.Points != points || prev.Actor != actor || prev.Reason != reason {
			return nil, ErrIdempotencyReuse
		}
		return prev, nil
	}
	a := b.Accounts[customerID]
	if !a.Exists {
		// An account comes into being with the customer's first order
		// event; a mistyped id must not open a new one.
		return nil, fmt.Errorf("account %s: %w", customerID, ErrNotFound)
	}
	e, err := a.Adjust(b.Programme, key, points, actor, reason, b.Now)
	if err != nil {
		return nil, err
	}
	b.collect(ctx, a)
	return e, nil
}

// Sweep does the periodic work (expiry, expiry warnings, birthday bonuses,
// tier reviews) on the accounts ids. It is idempotent.
func (b *Batch) Sweep(ctx context.Context, ids []string) {
	for _, id := range ids {
		a := b.Accounts[id]
		if !a.Exists {
			a.Dirty = false // a lot without an account cannot happen; never create one here
			continue
		}
		a.Sweep(b.Programme, b.Now)
		b.collect(ctx, a)
	}
}

// Due is what makes an account due for the sweep at a time: lots expiring
// by ExpiringBy (expiry, or its warning), a tier review not done since
// ReviewedBefore, or a birthday in BirthMonth not yet rewarded in Year.
type Due struct {
	ExpiringBy, ReviewedBefore time.Time
	BirthMonth, Year           int
}

// DueAt is what makes an account due for the sweep at now.
func DueAt(p *Programme, now time.Time) Due {
	return Due{ExpiringBy: now.Add(p.WarnBefore), ReviewedBefore: now.Add(-p.ReviewEvery()), BirthMonth: int(now.Month()), Year: now.Year()}
}

// DayStats is one UTC day's movements by kind.
type DayStats struct {
	Day       time.Time
	ByKind    map[Kind]int64
	Shortfall int64
}
