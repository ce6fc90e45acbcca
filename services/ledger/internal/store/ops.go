package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// UpdateOrders applies canonical order events in one transaction: it
// loads what applying them needs (ledger.OrderNeeds; accounts locked on
// PostgreSQL), hands it to fn as a batch, and writes what fn changed, the
// events fn saw and the ledger events, with dead (dead letters of
// messages that were not order events) in the same transaction.
func (s *Store) UpdateOrders(ctx context.Context, p *ledger.Programme, now time.Time, evs []*ordersv1.OrderEvent,
	dead []outbox.Message, fn func(*ledger.Batch) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		b := ledger.NewBatch(p, now)
		u := &unit{s: s, tx: tx, b: b}
		if err := s.processed(ctx, tx, evs, b.Processed); err != nil {
			return err
		}
		n := ledger.OrderNeeds(p, now, evs, b.Processed)
		if err := s.referrers(ctx, tx, n.ReferralCodes, b.Referrers); err != nil {
			return err
		}
		for _, r := range b.Referrers {
			n.Customers = append(n.Customers, r)
		}
		if err := u.loadAccounts(ctx, n); err != nil {
			return err
		}
		if err := u.loadOrders(ctx, n.Orders); err != nil {
			return err
		}
		if err := u.loadExpired(ctx, n.Clawbacks); err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
		seen := make([][]any, len(b.Seen))
		for i, id := range b.Seen {
			seen[i] = []any{id, ms(now)}
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
}

// UpdateAccounts changes accounts in one transaction: it loads what n
// names (the accounts locked on PostgreSQL, entries by id, reward stock
// locked), hands it to fn as a batch, and writes what fn changed with the
// ledger events. Nothing changes when fn fails.
func (s *Store) UpdateAccounts(ctx context.Context, p *ledger.Programme, now time.Time, n ledger.Needs, fn func(*ledger.Batch) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		b := ledger.NewBatch(p, now)
		u := &unit{s: s, tx: tx, b: b}
		for _, id := range n.Entries {
			e, err := s.existingEntry(ctx, tx, id)
			if err != nil {
				return err
			}
			if e != nil {
				b.Entries[id] = e
			}
		}
		if err := u.loadAccounts(ctx, n); err != nil {
			return err
		}
		for _, id := range n.Rewards {
			r, err := s.lockStock(ctx, tx, id)
			if err != nil {
				return err
			}
			b.Redeemed[id] = r
		}
		if err := fn(b); err != nil {
			return err
		}
		for id, k := range b.Taken {
			if _, err := tx.ExecContext(ctx, `UPDATE reward_stock SET redeemed = redeemed + `+s.db.Dialect.Placeholders(1, 1)+
				` WHERE reward_id = `+s.db.Dialect.Placeholders(2, 1), k, id); err != nil {
				return fmt.Errorf("reward stock: %w", err)
			}
		}
		return u.save(ctx)
	})
}

// processed adds to done which of the unnumbered events were applied
// before.
func (s *Store) processed(ctx context.Context, tx *sql.Tx, evs []*ordersv1.OrderEvent, done map[string]bool) error {
	ids := make([]any, 0, len(evs))
	for _, ev := range evs {
		if ev.GetOrderSequence() == 0 {
			ids = append(ids, ev.GetEventId())
		}
	}
	return sqldb.InChunks(ids, func(chunk []any) error {
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
}

// referrers adds the customers of referral codes to out.
func (s *Store) referrers(ctx context.Context, tx *sql.Tx, codes []string, out map[string]string) error {
	args := make([]any, len(codes))
	for i, c := range codes {
		args[i] = c
	}
	return sqldb.InChunks(args, func(chunk []any) error {
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

// Due returns the accounts due for the sweep (ledger.DueAt), sorted.
func (s *Store) Due(ctx context.Context, due ledger.Due) ([]string, error) {
	d := s.db.Dialect
	q := `SELECT customer_id FROM entries WHERE remaining > 0 AND expires_at > 0 AND expires_at <= ` + d.Placeholders(1, 1) + `
		UNION SELECT customer_id FROM accounts WHERE reviewed_at <= ` + d.Placeholders(2, 1) + `
		UNION SELECT customer_id FROM accounts WHERE birth_month = ` + d.Placeholders(3, 1) + ` AND last_birthday_year < ` + d.Placeholders(4, 1)
	rows, err := s.db.R.QueryContext(ctx, q, ms(due.ExpiringBy), ms(due.ReviewedBefore), due.BirthMonth, due.Year)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := sqldb.CloseRows(rows); err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return ids, nil
}

// Account reads a customer's account with its open lots and the
// qualifying spend after spendFrom, without locks; ErrNotFound when the
// customer has none.
func (s *Store) Account(ctx context.Context, customerID string, spendFrom time.Time) (*ledger.Account, error) {
	a, err := s.readAccount(ctx, customerID, spendFrom)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, fmt.Errorf("account %s: %w", customerID, ledger.ErrNotFound)
	}
	return a, nil
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
func (s *Store) readAccount(ctx context.Context, customerID string, spendFrom time.Time) (*ledger.Account, error) {
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

// Stats returns the movements per UTC day of the days [from, to) touches,
// and the balance outstanding before the first of them.
func (s *Store) Stats(ctx context.Context, from, to time.Time) (days []ledger.DayStats, before int64, err error) {
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
			days = append(days, ledger.DayStats{Day: t, ByKind: map[ledger.Kind]int64{}})
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
