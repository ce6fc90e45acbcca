package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/ordergate"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// Input is one canonical order event to apply, with the context (trace)
// its ledger events continue.
type Input struct {
	Ctx   context.Context
	Event *ordersv1.OrderEvent
	// Msg is the bus message it came in (nil outside the consumer).
	Msg jetstream.Msg
}

// Outcome is what became of an input.
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

// ApplyOrders applies canonical order events in order, in one
// transaction, each at most once: paid orders earn, refunds and
// cancellations claw back. An event numbered within its order
// (order_sequence, as order-ingest numbers every event) is recognised as
// seen by its order's last applied sequence; one without a number by its
// event id in processed_events.
//
// dead are dead letters of messages that were not order events, written in
// the same transaction.
func (s *Store) ApplyOrders(ctx context.Context, p *ledger.Programme, in []Input, dead []outbox.Message) ([]Outcome, error) {
	var out []Outcome
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		u := s.newUnit(tx, p, now)
		out = make([]Outcome, len(in))
		done, err := s.processed(ctx, tx, in)
		if err != nil {
			return err
		}
		var customers []string
		consumes := map[string]bool{}
		var orderKeys, clawKeys [][2]string
		var codes []any
		spendFrom := now
		for _, x := range in {
			ev := x.Event
			if done[ev.GetEventId()] {
				continue
			}
			customers = append(customers, ev.GetCustomerId())
			if k := ev.GetKind(); k == ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED || k == ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED {
				consumes[ev.GetCustomerId()] = true
				clawKeys = append(clawKeys, [2]string{ev.GetSource(), ev.GetOrderId()})
			}
			orderKeys = append(orderKeys, [2]string{ev.GetSource(), ev.GetOrderId()})
			if c := ev.GetCustomer().GetReferralCode(); c != "" && ev.GetKind() == ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID {
				codes = append(codes, c)
			}
			if t := ev.GetOccurredAt().AsTime(); t.Before(spendFrom) {
				spendFrom = t
			}
		}
		referrers, err := s.referrers(ctx, tx, codes)
		if err != nil {
			return err
		}
		for _, c := range customers {
			referrers[ledger.ReferralCode(c)] = c
		}
		for _, r := range referrers {
			customers = append(customers, r)
		}
		if err := u.loadAccounts(ctx, customers, spendFrom.Add(-p.TierWindow()), func(id string) bool { return consumes[id] },
			func(a *ledger.Account) bool { return p.CanRise(a.Tier) }); err != nil {
			return err
		}
		if err := u.loadOrders(ctx, orderKeys); err != nil {
			return err
		}
		if err := u.loadExpired(ctx, clawKeys); err != nil {
			return err
		}
		var seen [][]any
		gate := ordergate.New()
		for _, o := range u.orders {
			gate.Load(ordergate.Key{Source: o.Source, OrderID: o.OrderID}, o.LastSeq)
		}
		for _, i := range ordergate.Sequence(gateEvents(in)) {
			x := in[i]
			ev := x.Event
			if done[ev.GetEventId()] {
				out[i] = Duplicate
				continue
			}
			out[i] = u.applyOrderEvent(x.Ctx, gate, ev, referrers)
			if out[i] == Applied && ev.GetOrderSequence() == 0 {
				done[ev.GetEventId()] = true
				seen = append(seen, []any{ev.GetEventId(), ms(now)})
			}
		}
		if err := s.w.insertRows(ctx, tx, s.db.Dialect, "processed_events", "event_id, processed_at", "", seen); err != nil {
			return err
		}
		if len(dead) > 0 {
			if err := outbox.Add(ctx, tx, s.db.Dialect, now, dead...); err != nil {
				return err
			}
		}
		return u.save(ctx)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// applyOrderEvent applies one event; Later means it must wait for an
// earlier event of its order. Order-ingest numbers each order's events
// (order_sequence, from 1); JetStream redelivers the messages of a crashed
// consumer only after their ack wait, so newer events can arrive first.
func (u *unit) applyOrderEvent(ctx context.Context, gate *ordergate.Gate, ev *ordersv1.OrderEvent, referrers map[string]string) Outcome {
	key := ev.GetSource() + "/" + ev.GetOrderId()
	at := ev.GetOccurredAt().AsTime()
	o := u.orders[key]
	seq := ev.GetOrderSequence()
	switch gate.Decide(ordergate.Key{Source: ev.GetSource(), OrderID: ev.GetOrderId()}, seq) {
	case ordergate.Later:
		return Later
	case ordergate.Duplicate:
		return Duplicate // this position of the order's history was applied already
	}
	defer func() {
		if o := u.orders[key]; o != nil && seq > o.LastSeq {
			o.LastSeq, o.Dirty = seq, true
		}
	}()
	switch ev.GetKind() {
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED:
		if o == nil {
			u.orders[key] = ledger.NewOrder(ev.GetCustomerId(), ledger.FactsOf(ev))
		}
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID:
		if o != nil && (o.Paid || o.Closed) {
			// Paid once; a second paid event earns nothing. Nor does a
			// payment order-ingest saw after the order's cancellation
			// (numbered after it): a cancelled order earns nothing,
			// whichever of the two came first.
			return Applied
		}
		a := u.accounts[ev.GetCustomerId()]
		res := a.ApplyPaid(u.p, ev.GetEventId(), ledger.FactsOf(ev), o, u.now)
		u.orders[key] = res.Order
		var ref *ledger.Account
		if res.ReferralCode != "" {
			if id, ok := referrers[res.ReferralCode]; ok && id != a.CustomerID {
				ref = u.accounts[id]
				ref.AwardReferral(u.p, ev.GetEventId(), a.CustomerID, at)
			}
		}
		u.collect(ctx, a, ref)
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED:
		if o == nil || !o.Paid {
			return Applied // never paid: nothing was earned
		}
		a := u.accounts[o.CustomerID]
		if a == nil {
			return Applied
		}
		total := ev.GetRefund().GetRefundedTotal().GetBase().GetMinorUnits()
		if total == 0 {
			total = o.Refunded + ev.GetRefund().GetAmount().GetBase().GetMinorUnits()
		}
		a.ApplyRefund(u.p, ev.GetEventId(), o, total, at, u.now)
		u.collect(ctx, a)
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
		if a := u.accounts[o.CustomerID]; a != nil {
			a.ApplyCancel(u.p, ev.GetEventId(), o, at, u.now)
			u.collect(ctx, a)
		}
	}
	return Applied
}

// gateEvents is what ordergate.Sequence needs of a batch.
func gateEvents(in []Input) []ordergate.Event {
	out := make([]ordergate.Event, len(in))
	for i, x := range in {
		out[i] = ordergate.Event{Key: ordergate.Key{Source: x.Event.GetSource(), OrderID: x.Event.GetOrderId()}, Seq: x.Event.GetOrderSequence()}
	}
	return out
}

// processed returns which of the unnumbered events were applied before.
func (s *Store) processed(ctx context.Context, tx *sql.Tx, in []Input) (map[string]bool, error) {
	ids := make([]any, 0, len(in))
	for _, x := range in {
		if x.Event.GetOrderSequence() == 0 {
			ids = append(ids, x.Event.GetEventId())
		}
	}
	done := map[string]bool{}
	err := sqldb.InChunks(ids, func(chunk []any) error {
		chunk = padded(chunk)
		rows, err := s.query(ctx, tx, `SELECT event_id FROM processed_events WHERE event_id IN (`+s.db.Dialect.Placeholders(1, len(chunk))+`)`, chunk...)
		if err != nil {
			return fmt.Errorf("processed events: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			done[id] = true
		}
		return sqldb.CloseRows(rows)
	})
	return done, err
}

// referrers maps referral codes to their customers.
func (s *Store) referrers(ctx context.Context, tx *sql.Tx, codes []any) (map[string]string, error) {
	out := map[string]string{}
	err := sqldb.InChunks(codes, func(chunk []any) error {
		chunk = padded(chunk)
		rows, err := s.query(ctx, tx, `SELECT referral_code, customer_id FROM accounts WHERE referral_code IN (`+s.db.Dialect.Placeholders(1, len(chunk))+`)`, chunk...)
		if err != nil {
			return fmt.Errorf("referral codes: %w", err)
		}
		for rows.Next() {
			var code, id string
			if err := rows.Scan(&code, &id); err != nil {
				rows.Close()
				return err
			}
			out[code] = id
		}
		return sqldb.CloseRows(rows)
	})
	return out, err
}

// existingEntry reads an entry by id (nil when there is none).
func (s *Store) existingEntry(ctx context.Context, q queryer, id string) (*ledger.Entry, error) {
	es, err := s.entries(ctx, q, `WHERE entry_id = `+s.db.Dialect.Placeholders(1, 1), id)
	if err != nil || len(es) == 0 {
		return nil, err
	}
	return es[0], nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Redeem spends points for a reward or a number of points. A retry with
// the same key returns the first redemption; a different request under a
// used key is ErrIdempotencyReuse. Nothing changes on error.
func (s *Store) Redeem(ctx context.Context, p *ledger.Programme, customerID string, r ledger.Redemption) (*ledger.Entry, error) {
	var out *ledger.Entry
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		id := ledger.RedemptionID(customerID, r.Key)
		if prev, err := s.existingEntry(ctx, tx, id); err != nil || prev != nil {
			if prev != nil {
				if prev.CustomerID != customerID || prev.SourceRef != r.RewardID || (r.RewardID == "" && -prev.Points != r.Points) {
					return ledger.ErrIdempotencyReuse
				}
				out = prev
			}
			return err
		}
		now := s.now()
		u := s.newUnit(tx, p, now)
		if err := u.load(ctx, []string{customerID}, now.Add(-p.TierWindow())); err != nil {
			return err
		}
		if r.RewardID != "" {
			n, err := s.lockStock(ctx, tx, r.RewardID)
			if err != nil {
				return err
			}
			r.Redeemed = n
		}
		a := u.accounts[customerID]
		if !a.Exists {
			return fmt.Errorf("account %s: %w", customerID, ledger.ErrNotFound)
		}
		e, err := a.Redeem(p, r, now)
		if err != nil {
			return err
		}
		if r.RewardID != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE reward_stock SET redeemed = redeemed + 1 WHERE reward_id = `+s.db.Dialect.Placeholders(1, 1), r.RewardID); err != nil {
				return fmt.Errorf("reward stock: %w", err)
			}
		}
		u.collect(ctx, a)
		out = e
		return u.save(ctx)
	})
	return out, err
}

// lockStock returns how many of a reward were redeemed, locking its row
// (PostgreSQL) until the transaction ends.
func (s *Store) lockStock(ctx context.Context, tx *sql.Tx, rewardID string) (int64, error) {
	d := s.db.Dialect
	if _, err := tx.ExecContext(ctx, `INSERT INTO reward_stock (reward_id, redeemed) VALUES (`+d.Placeholders(1, 2)+`) ON CONFLICT (reward_id) DO NOTHING`, rewardID, 0); err != nil {
		return 0, fmt.Errorf("reward stock: %w", err)
	}
	var n int64
	err := tx.QueryRowContext(ctx, `SELECT redeemed FROM reward_stock WHERE reward_id = `+d.Placeholders(1, 1)+d.ForUpdate(), rewardID).Scan(&n)
	return n, err
}

// Redeemed returns how many of each reward were redeemed.
func (s *Store) Redeemed(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT reward_id, redeemed FROM reward_stock`)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, err
		}
		out[id] = n
	}
	return out, sqldb.CloseRows(rows)
}

// Adjust adds or removes points by hand on an existing account; a retry
// with the same key returns the first adjustment, a different request
// under a used key is ErrIdempotencyReuse.
func (s *Store) Adjust(ctx context.Context, p *ledger.Programme, customerID, key string, points int64, actor, reason string) (*ledger.Entry, error) {
	var out *ledger.Entry
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if prev, err := s.existingEntry(ctx, tx, ledger.AdjustmentID(customerID, key)); err != nil || prev != nil {
			if prev != nil {
				if prev.CustomerID != customerID || prev.Points != points || prev.Actor != actor || prev.Reason != reason {
					return ledger.ErrIdempotencyReuse
				}
				out = prev
			}
			return err
		}
		now := s.now()
		u := s.newUnit(tx, p, now)
		if err := u.load(ctx, []string{customerID}, now.Add(-p.TierWindow())); err != nil {
			return err
		}
		a := u.accounts[customerID]
		if !a.Exists {
			// An account comes into being with the customer's first order
			// event; a mistyped id must not open a new one.
			return fmt.Errorf("account %s: %w", customerID, ledger.ErrNotFound)
		}
		e, err := a.Adjust(p, key, points, actor, reason, now)
		if err != nil {
			return err
		}
		u.collect(ctx, a)
		out = e
		return u.save(ctx)
	})
	return out, err
}

// Sweep does the periodic work (expiry, expiry warnings, birthday bonuses,
// tier reviews) on every account that has some due at now, in
// transactions of at most batch accounts. It is idempotent; it returns how
// many accounts it looked at.
func (s *Store) Sweep(ctx context.Context, p *ledger.Programme, now time.Time, batch int) (int, error) {
	d := s.db.Dialect
	warnBy := now.Add(p.WarnBefore)
	q := `SELECT customer_id FROM entries WHERE remaining > 0 AND expires_at > 0 AND expires_at <= ` + d.Placeholders(1, 1) + `
		UNION SELECT customer_id FROM accounts WHERE reviewed_at <= ` + d.Placeholders(2, 1) + `
		UNION SELECT customer_id FROM accounts WHERE birth_month = ` + d.Placeholders(3, 1) + ` AND last_birthday_year < ` + d.Placeholders(4, 1)
	rows, err := s.db.R.QueryContext(ctx, q, ms(warnBy), ms(now.Add(-p.ReviewEvery())), int(now.Month()), now.Year())
	if err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	if err := sqldb.CloseRows(rows); err != nil {
		return 0, err
	}
	slices.Sort(ids)
	for start := 0; start < len(ids); start += batch {
		chunk := ids[start:min(start+batch, len(ids))]
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			u := s.newUnit(tx, p, now)
			if err := u.load(ctx, chunk, now.Add(-p.TierWindow())); err != nil {
				return err
			}
			for _, id := range chunk {
				a := u.accounts[id]
				if !a.Exists {
					a.Dirty = false // a lot without an account cannot happen; never create one here
					continue
				}
				a.Sweep(p, now)
				u.collect(ctx, a)
			}
			return u.save(ctx)
		})
		if err != nil {
			return start, err
		}
	}
	return len(ids), nil
}

// View is an account as GetAccount shows it.
type View struct {
	Account  *ledger.Account
	Spend    int64 // qualifying spend in the window ending now
	Expiring int64
	NextExp  time.Time
}

// Account reads an account as of now; points past their expiry are shown
// as expired even before the sweep writes them off. ErrNotFound when the
// customer has no account.
func (s *Store) Account(ctx context.Context, p *ledger.Programme, customerID string, within time.Duration) (*View, error) {
	now := s.now()
	a, err := s.readAccount(ctx, p, customerID, now.Add(-p.TierWindow()))
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, fmt.Errorf("account %s: %w", customerID, ledger.ErrNotFound)
	}
	a.ExpireDue(now)
	v := &View{Account: a, Spend: a.SpendIn(p, now)}
	v.Expiring, v.NextExp = a.Expiring(now.Add(within))
	return v, nil
}

// accountQuery reads an account ($1), its open lots and its qualifying
// spend after $2 in one statement, so from one snapshot and in one round
// trip: row kind 0 is the account, 1 a lot, 2 a paid order's spend.
const accountQuery = `SELECT 0, tier, referral_code, referred_by, '', balance, lifetime_earned, shortfall, tier_since,
		reviewed_at, paid_orders, birth_month, birth_day, last_birthday_year
	FROM accounts WHERE customer_id = $1
	UNION ALL
	SELECT 1, entry_id, order_source, order_id, '', points, remaining, occurred_at, expires_at, warned, 0, 0, 0, 0
	FROM entries WHERE customer_id = $1 AND remaining > 0
	UNION ALL
	SELECT 2, '', '', '', '', paid_at, qualifying - unqualified, 0, 0, 0, 0, 0, 0, 0
	FROM orders WHERE customer_id = $1 AND paid_at > $2 AND qualifying <> unqualified`

// readAccount reads an account with its open lots and the qualifying
// spend after spendFrom, without locks; nil when there is none.
func (s *Store) readAccount(ctx context.Context, p *ledger.Programme, customerID string, spendFrom time.Time) (*ledger.Account, error) {
	rows, err := s.r.queryPrepared(ctx, accountQuery, customerID, ms(spendFrom))
	if err != nil {
		return nil, fmt.Errorf("read account: %w", err)
	}
	a := &ledger.Account{CustomerID: customerID, Exists: true, LotsLoaded: true}
	found := false
	for rows.Next() {
		var kind int
		var t [4]string
		var n [9]int64
		if err := rows.Scan(&kind, &t[0], &t[1], &t[2], &t[3], &n[0], &n[1], &n[2], &n[3], &n[4], &n[5], &n[6], &n[7], &n[8]); err != nil {
			rows.Close()
			return nil, err
		}
		switch kind {
		case 0:
			found = true
			a.Tier, a.ReferralCode, a.ReferredBy = t[0], t[1], t[2]
			a.Balance, a.LifetimeEarned, a.Shortfall = n[0], n[1], n[2]
			a.TierSince, a.ReviewedAt, a.PaidOrders = fromMS(n[3]), fromMS(n[4]), n[5]
			a.Birthday.Month, a.Birthday.Day, a.LastBirthdayYear = int(n[6]), int(n[7]), int(n[8])
		case 1:
			a.Lots = append(a.Lots, &ledger.Lot{ID: t[0], OrderKey: orderKey(t[1], t[2]), Points: n[0], Remaining: n[1],
				EarnedAt: fromMS(n[2]), ExpiresAt: fromMS(n[3]), Warned: n[4] != 0})
		case 2:
			a.Spend = append(a.Spend, ledger.Spend{At: fromMS(n[0]), Amount: n[1]})
		}
	}
	if err := sqldb.CloseRows(rows); err != nil {
		return nil, err
	}
	if !found {
		return nil, nil
	}
	sortLots(a)
	return a, nil
}

const entryCols = `seq, entry_id, customer_id, kind, points, shortfall, balance_after, rule, source_ref, actor, reason,
	order_source, order_id, occurred_at, expires_at`

func (s *Store) entries(ctx context.Context, q queryer, where string, args ...any) ([]*ledger.Entry, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+entryCols+` FROM entries `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("entries: %w", err)
	}
	var out []*ledger.Entry
	byID := map[string]*ledger.Entry{}
	var ids []any
	for rows.Next() {
		e := &ledger.Entry{}
		var kind int
		var occ, exp int64
		if err := rows.Scan(&e.Seq, &e.ID, &e.CustomerID, &kind, &e.Points, &e.Shortfall, &e.BalanceAfter, &e.Rule,
			&e.SourceRef, &e.Actor, &e.Reason, &e.OrderSource, &e.OrderID, &occ, &exp); err != nil {
			rows.Close()
			return nil, err
		}
		e.Kind, e.OccurredAt, e.ExpiresAt = ledger.Kind(kind), fromMS(occ), fromMS(exp)
		out = append(out, e)
		byID[e.ID] = e
		if e.Points < 0 {
			ids = append(ids, e.ID)
		}
	}
	if err := sqldb.CloseRows(rows); err != nil {
		return nil, err
	}
	err = sqldb.InChunks(ids, func(chunk []any) error {
		rows, err := q.QueryContext(ctx, `SELECT u.entry_id, u.lot_id, u.points FROM lot_uses u JOIN entries l ON l.entry_id = u.lot_id
			WHERE u.entry_id IN (`+s.db.Dialect.Placeholders(1, len(chunk))+`) ORDER BY u.entry_id, l.occurred_at, u.lot_id`, chunk...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var lu ledger.LotUse
			if err := rows.Scan(&id, &lu.LotID, &lu.Points); err != nil {
				rows.Close()
				return err
			}
			byID[id].Uses = append(byID[id].Uses, lu)
		}
		return sqldb.CloseRows(rows)
	})
	return out, err
}

// Entries pages through an account's entries, newest first: at most n
// entries older than seq `before` (0: from the newest). next is the seq to
// continue from, 0 at the end.
func (s *Store) Entries(ctx context.Context, customerID string, before int64, n int) (es []*ledger.Entry, next int64, err error) {
	d := s.db.Dialect
	if before <= 0 {
		before = 1<<63 - 1
	}
	es, err = s.entries(ctx, s.db.R, `WHERE customer_id = `+d.Placeholders(1, 1)+` AND seq < `+d.Placeholders(2, 1)+
		` ORDER BY seq DESC LIMIT `+d.Placeholders(3, 1), customerID, before, n+1)
	if err != nil {
		return nil, 0, err
	}
	if len(es) > n {
		es = es[:n]
		next = es[n-1].Seq
	}
	return es, next, nil
}

// DayStats is one UTC day's movements by kind.
type DayStats struct {
	Day       time.Time
	ByKind    map[ledger.Kind]int64
	Shortfall int64
}

// Stats returns the movements per UTC day of the days [from, to) touches,
// and the balance outstanding before the first of them.
func (s *Store) Stats(ctx context.Context, from, to time.Time) (days []DayStats, before int64, err error) {
	d := s.db.Dialect
	// Days are whole: a period starts at a UTC midnight.
	first, last := ms(from)/msPerDay, (ms(to)+msPerDay-1)/msPerDay
	if err := s.db.R.QueryRowContext(ctx, `SELECT COALESCE(SUM(points), 0) FROM entry_days WHERE day < `+d.Placeholders(1, 1), first).Scan(&before); err != nil {
		return nil, 0, fmt.Errorf("stats: %w", err)
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT day, kind, SUM(points), SUM(shortfall) FROM entry_days
		WHERE day >= `+d.Placeholders(1, 1)+` AND day < `+d.Placeholders(2, 1)+` GROUP BY day, kind ORDER BY day, kind`, first, last)
	if err != nil {
		return nil, 0, fmt.Errorf("stats: %w", err)
	}
	for rows.Next() {
		var day int64
		var kind int
		var pts, short int64
		if err := rows.Scan(&day, &kind, &pts, &short); err != nil {
			rows.Close()
			return nil, 0, err
		}
		t := time.UnixMilli(day * msPerDay).UTC()
		if len(days) == 0 || !days[len(days)-1].Day.Equal(t) {
			days = append(days, DayStats{Day: t, ByKind: map[ledger.Kind]int64{}})
		}
		days[len(days)-1].ByKind[ledger.Kind(kind)] += pts
		days[len(days)-1].Shortfall += short
	}
	return days, before, sqldb.CloseRows(rows)
}

// ErrInconsistent is returned by Verify when stored balances disagree with
// the entries or the lots.
var ErrInconsistent = errors.New("ledger inconsistent")

// Verify proves the ledger's invariants: every account's balance equals
// the sum of its entries and the sum of its open lots and is never
// negative, every lot's remaining points (kept on its earning entry) equal
// what it earned less what entries took from it, entries take points only
// from lots, and the daily statistics add up to the entries.
func (s *Store) Verify(ctx context.Context) error {
	var bad []string
	rows, err := s.db.R.QueryContext(ctx, `SELECT a.customer_id, a.balance, COALESCE(e.s, 0), COALESCE(l.s, 0) FROM accounts a
		LEFT JOIN (SELECT customer_id, SUM(points) AS s FROM entries GROUP BY customer_id) e ON e.customer_id = a.customer_id
		LEFT JOIN (SELECT customer_id, SUM(remaining) AS s FROM entries WHERE remaining IS NOT NULL GROUP BY customer_id) l ON l.customer_id = a.customer_id
		WHERE a.balance <> COALESCE(e.s, 0) OR a.balance <> COALESCE(l.s, 0) OR a.balance < 0`)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for rows.Next() {
		var id string
		var bal, ent, lot int64
		if err := rows.Scan(&id, &bal, &ent, &lot); err != nil {
			rows.Close()
			return err
		}
		bad = append(bad, fmt.Sprintf("account %s: balance %d, entries %d, lots %d", id, bal, ent, lot))
	}
	if err := sqldb.CloseRows(rows); err != nil {
		return err
	}
	// A lot is its earning entry, the only kind of entry with a
	// remainder; what used a lot must name one.
	rows, err = s.db.R.QueryContext(ctx, `SELECT l.entry_id, l.points, COALESCE(l.remaining, -1), COALESCE(u.s, 0) FROM entries l
		JOIN (SELECT lot_id, SUM(points) AS s FROM lot_uses GROUP BY lot_id) u ON u.lot_id = l.entry_id
		WHERE l.remaining IS NULL
		UNION ALL
		SELECT l.entry_id, l.points, l.remaining, COALESCE(u.s, 0) FROM entries l
		LEFT JOIN (SELECT lot_id, SUM(points) AS s FROM lot_uses GROUP BY lot_id) u ON u.lot_id = l.entry_id
		WHERE l.remaining IS NOT NULL AND (l.points - COALESCE(u.s, 0) <> l.remaining OR l.remaining < 0 OR l.points <= 0)`)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for rows.Next() {
		var id string
		var pts, rem, used int64
		if err := rows.Scan(&id, &pts, &rem, &used); err != nil {
			rows.Close()
			return err
		}
		bad = append(bad, fmt.Sprintf("lot %s: earned %d, used %d, remaining %d", id, pts, used, rem))
	}
	if err := sqldb.CloseRows(rows); err != nil {
		return err
	}
	var entrySum, daySum, balanceSum int64
	if err := s.db.R.QueryRowContext(ctx, `SELECT (SELECT COALESCE(SUM(points), 0) FROM entries),
		(SELECT COALESCE(SUM(points), 0) FROM entry_days), (SELECT COALESCE(SUM(balance), 0) FROM accounts)`).Scan(&entrySum, &daySum, &balanceSum); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if entrySum != daySum || entrySum != balanceSum {
		bad = append(bad, fmt.Sprintf("entries sum to %d, daily statistics to %d, balances to %d", entrySum, daySum, balanceSum))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %d problems, first: %s", ErrInconsistent, len(bad), bad[0])
	}
	return nil
}
