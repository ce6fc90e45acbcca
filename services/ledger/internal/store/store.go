// Package store keeps points-ledger's facts in SQL (PostgreSQL or SQLite):
// accounts, the append-only entries (an earning entry is also its lot and
// carries what is left of it), what used each lot, orders (whose paid
// amounts are the qualifying spend), applied order events, reward stock,
// and the outbox of ledger events. It holds SQL only: a change
// (UpdateOrders, UpdateAccounts) loads what a use case needs into a
// ledger.Batch (accounts locked on PostgreSQL), runs the use case's
// function over it, where the domain's rules decide, and writes what
// changed with the ledger events in the same transaction.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

var _ app.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// Encoder turns a domain event into its outbox message; ctx carries the
// trace the event continues.
type Encoder func(ctx context.Context, ev ledger.Event) (outbox.Message, error)

// Store is points-ledger's database.
type Store struct {
	db     *sqldb.DB
	encode Encoder
	// w prepares statements for transactions, r for reads outside them
	// (the same pool on PostgreSQL).
	w, r *stmts
}

// Open migrates db and returns the store.
func Open(ctx context.Context, db *sqldb.DB, encode Encoder, log *slog.Logger) (*Store, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := sqldb.Migrate(ctx, db, "ledger", sub, log); err != nil {
		return nil, err
	}
	if err := sqldb.Migrate(ctx, db, "outbox", outbox.Migrations(), log); err != nil {
		return nil, err
	}
	// PostgreSQL switches a prepared statement to a generic plan after
	// five runs, and those of the IN-list queries here made a batch three
	// times slower (measured); it prepares only the writes.
	queries := db.Dialect != sqldb.Postgres
	st := &Store{db: db, encode: encode, w: newStmts(db.W, queries), r: newStmts(db.R, queries)}
	if db.R == db.W {
		st.r = st.w
	}
	return st, nil
}

// Close releases the store's prepared statements (closing the database
// releases them too); the database stays open.
func (s *Store) Close() {
	s.w.close()
	s.r.close()
}

// inTx runs fn in a transaction (sqldb.DB.InTx), then prepares the
// statements it ran for the first time.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	err := s.db.InTx(ctx, fn)
	s.w.flush(ctx)
	return err
}

// query runs q as a prepared statement in tx, or outside a transaction
// when tx is nil.
func (s *Store) query(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if tx != nil {
		return s.w.query(ctx, tx, q, args...)
	}
	return s.r.query(ctx, nil, q, args...)
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// unit is the transaction a batch is loaded in and saved from (reads of
// one account use readAccount).
type unit struct {
	s  *Store
	tx *sql.Tx
	b  *ledger.Batch
}

// loadAccounts reads the accounts n.Customers names, with the open lots
// of those n.Lots names and the qualifying spend after n.SpendFrom of those
// n.Spend chooses (all when nil); on PostgreSQL the account rows are
// locked until the transaction ends. Accounts that do not exist are
// created in memory.
func (u *unit) loadAccounts(ctx context.Context, n ledger.Needs) error {
	// Sorted, so that transactions lock accounts in one global order and
	// never deadlock on each other, whatever their chunks.
	ids := slices.Clone(n.Customers)
	slices.Sort(ids)
	var want []any
	accounts := u.b.Accounts
	for i, id := range ids {
		if _, ok := accounts[id]; !ok && (i == 0 || ids[i-1] != id) {
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		return nil
	}
	d := u.s.db.Dialect
	return sqldb.InChunks(want, func(chunk []any) error {
		ids := padded(chunk)
		in := d.Placeholders(1, len(ids))
		rows, err := u.s.query(ctx, u.tx, `SELECT customer_id, balance, lifetime_earned, shortfall, tier, tier_since,
			reviewed_at, referral_code, referred_by, paid_orders, birth_month, birth_day, last_birthday_year
			FROM accounts WHERE customer_id IN (`+in+`) ORDER BY customer_id`+u.lock(), ids...)
		if err != nil {
			return fmt.Errorf("load accounts: %w", err)
		}
		for rows.Next() {
			a := &ledger.Account{Exists: true}
			var since, reviewed int64
			if err := rows.Scan(&a.CustomerID, &a.Balance, &a.LifetimeEarned, &a.Shortfall, &a.Tier, &since, &reviewed,
				&a.ReferralCode, &a.ReferredBy, &a.PaidOrders, &a.Birthday.Month, &a.Birthday.Day, &a.LastBirthdayYear); err != nil {
				rows.Close()
				return err
			}
			a.TierSince, a.ReviewedAt = fromMS(since), fromMS(reviewed)
			accounts[a.CustomerID] = a
		}
		if err := sqldb.CloseRows(rows); err != nil {
			return err
		}
		for _, id := range chunk {
			if _, ok := accounts[id.(string)]; !ok {
				accounts[id.(string)] = ledger.NewAccount(u.b.Programme, id.(string), u.b.Now)
			}
		}
		var lotIDs []any
		for _, id := range chunk {
			if n.Lots == nil || n.Lots[id.(string)] {
				lotIDs = append(lotIDs, id)
				accounts[id.(string)].LotsLoaded = true
			}
		}
		if len(lotIDs) == 0 {
			lotIDs = append(lotIDs, "") // no customer has the empty id
		}
		lotIDs = padded(lotIDs)
		rows, err = u.s.query(ctx, u.tx, `SELECT customer_id, entry_id, points, remaining, occurred_at, expires_at, order_source, order_id, warned
			FROM entries WHERE customer_id IN (`+d.Placeholders(1, len(lotIDs))+`) AND remaining > 0`, lotIDs...)
		if err != nil {
			return fmt.Errorf("load lots: %w", err)
		}
		for rows.Next() {
			var cust, src, order string
			var earned, expires int64
			var warned int
			l := &ledger.Lot{}
			if err := rows.Scan(&cust, &l.ID, &l.Points, &l.Remaining, &earned, &expires, &src, &order, &warned); err != nil {
				rows.Close()
				return err
			}
			l.EarnedAt, l.ExpiresAt, l.Warned, l.OrderKey = fromMS(earned), fromMS(expires), warned != 0, orderKey(src, order)
			a := accounts[cust]
			a.Lots = append(a.Lots, l)
		}
		if err := sqldb.CloseRows(rows); err != nil {
			return err
		}
		// Qualifying spend is what the paid orders qualified for, less
		// what refunds took back, dated when each was paid.
		var spendIDs []any
		for _, id := range chunk {
			if n.Spend == nil || n.Spend(accounts[id.(string)]) {
				spendIDs = append(spendIDs, id)
			}
		}
		if len(spendIDs) == 0 {
			spendIDs = append(spendIDs, "") // no customer has the empty id
		}
		spendIDs = padded(spendIDs)
		args := append(spendIDs, ms(n.SpendFrom))
		rows, err = u.s.query(ctx, u.tx, `SELECT customer_id, paid_at, qualifying - unqualified FROM orders
			WHERE customer_id IN (`+d.Placeholders(1, len(spendIDs))+`) AND paid_at > `+d.Placeholders(len(spendIDs)+1, 1)+` AND qualifying <> unqualified`, args...)
		if err != nil {
			return fmt.Errorf("load spend: %w", err)
		}
		for rows.Next() {
			var cust string
			var sp ledger.Spend
			var at int64
			if err := rows.Scan(&cust, &at, &sp.Amount); err != nil {
				rows.Close()
				return err
			}
			sp.At = fromMS(at)
			a := accounts[cust]
			a.Spend = append(a.Spend, sp)
		}
		if err := sqldb.CloseRows(rows); err != nil {
			return err
		}
		for _, id := range chunk {
			sortLots(accounts[id.(string)])
		}
		return nil
	})
}

func sortLots(a *ledger.Account) { ledger.SortLots(a) }

// orderKey is the key ("source/order_id") of the order an entry belongs
// to, "" for none.
func orderKey(source, orderID string) string {
	if orderID == "" {
		return ""
	}
	return source + "/" + orderID
}

// lock is the locking suffix of the account query: PostgreSQL locks the
// rows, in key order so that transactions never deadlock on each other.
func (u *unit) lock() string { return u.s.db.Dialect.ForUpdate() }

// loadOrders reads paid orders by key ("source/order_id").
func (u *unit) loadOrders(ctx context.Context, keys []ledger.OrderKey) error {
	d := u.s.db.Dialect
	bySource := map[string][]any{}
	for _, k := range keys {
		if _, ok := u.b.Orders[k.Source+"/"+k.OrderID]; !ok {
			bySource[k.Source] = append(bySource[k.Source], k.OrderID)
		}
	}
	for src, ids := range bySource {
		err := sqldb.InChunks(ids, func(chunk []any) error {
			chunk = padded(chunk)
			args := append([]any{src}, chunk...)
			rows, err := u.s.query(ctx, u.tx, `SELECT source, order_id, customer_id, base_total, qualifying, proportional,
				full_points, reversed, refunded, unqualified, closed, paid_at, paid, last_seq, expired_credit FROM orders
				WHERE source = `+d.Placeholders(1, 1)+` AND order_id IN (`+d.Placeholders(2, len(chunk))+`)`, args...)
			if err != nil {
				return fmt.Errorf("load orders: %w", err)
			}
			for rows.Next() {
				o := &ledger.Order{}
				var closed, isPaid int
				var paid int64
				if err := rows.Scan(&o.Source, &o.OrderID, &o.CustomerID, &o.BaseTotal, &o.Qualifying, &o.Proportional,
					&o.Full, &o.Reversed, &o.Refunded, &o.Unqualified, &closed, &paid, &isPaid, &o.LastSeq, &o.ExpiredCredit); err != nil {
					rows.Close()
					return err
				}
				o.Closed, o.PaidAt, o.Paid = closed != 0, fromMS(paid), isPaid != 0
				u.b.Orders[o.Key()] = o
			}
			return sqldb.CloseRows(rows)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// loadExpired reads, for the paid orders among keys, how many of their
// points expired (what the expiry entries took from their lots).
func (u *unit) loadExpired(ctx context.Context, keys []ledger.OrderKey) error {
	var custs, orderIDs []any
	seen := map[string]bool{}
	for _, k := range keys {
		if o := u.b.Orders[k.Source+"/"+k.OrderID]; o != nil && o.Paid {
			if !seen[o.CustomerID] {
				seen[o.CustomerID] = true
				custs = append(custs, o.CustomerID)
			}
			orderIDs = append(orderIDs, o.OrderID)
		}
	}
	if len(orderIDs) == 0 {
		return nil
	}
	d := u.s.db.Dialect
	// Padded to powers of two, as the other cached statements are, so
	// that the statement cache holds a few texts of this query.
	custs = padded(custs)
	return sqldb.InChunks(orderIDs, func(chunk []any) error {
		chunk = padded(chunk)
		args := append(append([]any{}, custs...), chunk...)
		rows, err := u.s.query(ctx, u.tx, `SELECT l.order_source, l.order_id, COALESCE(SUM(x.points), 0) FROM entries l
			JOIN lot_uses x ON x.lot_id = l.entry_id AND x.entry_id = 'expiry:' || l.entry_id
			WHERE l.customer_id IN (`+d.Placeholders(1, len(custs))+`) AND l.order_id IN (`+d.Placeholders(len(custs)+1, len(chunk))+`)
			GROUP BY l.order_source, l.order_id`, args...)
		if err != nil {
			return fmt.Errorf("load expired points: %w", err)
		}
		for rows.Next() {
			var src, order string
			var n int64
			if err := rows.Scan(&src, &order, &n); err != nil {
				rows.Close()
				return err
			}
			if o := u.b.Orders[orderKey(src, order)]; o != nil && o.Paid {
				o.Expired = n
			}
		}
		return sqldb.CloseRows(rows)
	})
}

// save writes every change of the batch and its ledger events.
func (u *unit) save(ctx context.Context) error {
	d := u.s.db.Dialect
	now := ms(u.b.Now)
	var newAccts, accts, entries, uses, lots, orders [][]any
	type dayKey struct {
		day   int64
		kind  ledger.Kind
		shard int
	}
	days := map[dayKey][2]int64{}
	for _, a := range u.b.Accounts {
		if !a.Dirty {
			continue
		}
		row := []any{a.CustomerID, a.Balance, a.LifetimeEarned, a.Shortfall, a.Tier, ms(a.TierSince),
			ms(a.ReviewedAt), a.ReferralCode, a.ReferredBy, a.PaidOrders, a.Birthday.Month, a.Birthday.Day, a.LastBirthdayYear, now}
		// An account that did not exist had no row to lock: it is
		// inserted, never upserted, so a concurrent transaction that
		// created it first makes this one fail with a unique violation
		// and run again on the fresh row (sqldb.InTx) instead of
		// overwriting it.
		if a.Exists {
			accts = append(accts, row)
		} else {
			newAccts = append(newAccts, row)
		}
		// A new lot is written with its earning entry; a lot loaded
		// before has its remainder updated.
		newLots := map[string]*ledger.Lot{}
		for _, l := range a.Lots {
			switch {
			case l.New:
				newLots[l.ID] = l
			case l.Dirty:
				lots = append(lots, []any{l.ID, l.Remaining, boolInt(l.Warned)})
			}
		}
		for _, e := range a.Entries {
			var remaining any // NULL: the entry earned no lot
			warned := 0
			if l := newLots[e.ID]; l != nil {
				remaining, warned = l.Remaining, boolInt(l.Warned)
			}
			entries = append(entries, []any{e.ID, e.CustomerID, int(e.Kind), e.Points, e.Shortfall, e.BalanceAfter, e.Rule,
				e.SourceRef, e.Actor, e.Reason, e.OrderSource, e.OrderID, ms(e.OccurredAt), ms(e.ExpiresAt), now, remaining, warned})
			for _, lu := range e.Uses {
				uses = append(uses, []any{e.ID, lu.LotID, lu.Points})
			}
			k := dayKey{day: ms(e.OccurredAt) / msPerDay, kind: e.Kind, shard: shardOf(e.CustomerID)}
			v := days[k]
			days[k] = [2]int64{v[0] + e.Points, v[1] + e.Shortfall}
		}
	}
	for _, o := range u.b.Orders {
		if o.Dirty {
			orders = append(orders, []any{o.Source, o.OrderID, o.CustomerID, o.BaseTotal, o.Qualifying, o.Proportional,
				o.Full, o.Reversed, o.Refunded, o.Unqualified, boolInt(o.Closed), ms(o.PaidAt), boolInt(o.Paid), o.LastSeq, o.ExpiredCredit})
		}
	}
	byFirst := func(a, b []any) int { return cmp.Compare(a[0].(string), b[0].(string)) }
	slices.SortFunc(accts, byFirst)
	slices.SortFunc(newAccts, byFirst)
	const accountCols = "customer_id, balance, lifetime_earned, shortfall, tier, tier_since, reviewed_at, referral_code, referred_by, paid_orders, birth_month, birth_day, last_birthday_year, updated_at"
	steps := []struct {
		table, cols, conflict string
		rows                  [][]any
	}{
		{"accounts", accountCols, "", newAccts},
		{"accounts", "customer_id, balance, lifetime_earned, shortfall, tier, tier_since, reviewed_at, referral_code, referred_by, paid_orders, birth_month, birth_day, last_birthday_year, updated_at",
			"(customer_id) DO UPDATE SET balance = excluded.balance, lifetime_earned = excluded.lifetime_earned, shortfall = excluded.shortfall, tier = excluded.tier, tier_since = excluded.tier_since, reviewed_at = excluded.reviewed_at, referred_by = excluded.referred_by, paid_orders = excluded.paid_orders, birth_month = excluded.birth_month, birth_day = excluded.birth_day, last_birthday_year = excluded.last_birthday_year, updated_at = excluded.updated_at", accts},
		{"entries", "entry_id, customer_id, kind, points, shortfall, balance_after, rule, source_ref, actor, reason, order_source, order_id, occurred_at, expires_at, recorded_at, remaining, warned", "", entries},
		{"lot_uses", "entry_id, lot_id, points", "", uses},
		{"orders", "source, order_id, customer_id, base_total, qualifying, proportional, full_points, reversed, refunded, unqualified, closed, paid_at, paid, last_seq, expired_credit",
			"(order_id, source) DO UPDATE SET base_total = excluded.base_total, qualifying = excluded.qualifying, proportional = excluded.proportional, full_points = excluded.full_points, reversed = excluded.reversed, refunded = excluded.refunded, unqualified = excluded.unqualified, closed = excluded.closed, paid_at = excluded.paid_at, paid = excluded.paid, last_seq = excluded.last_seq, expired_credit = excluded.expired_credit", orders},
	}
	var dayRows [][]any
	for k, v := range days {
		dayRows = append(dayRows, []any{k.day, int(k.kind), k.shard, v[0], v[1]})
	}
	// A fixed order, so that concurrent transactions lock the rows in the
	// same order and never deadlock.
	slices.SortFunc(dayRows, func(a, b []any) int {
		for i := range 3 {
			x, y := toInt64(a[i]), toInt64(b[i])
			if x != y {
				return cmp.Compare(x, y)
			}
		}
		return 0
	})
	steps = append(steps, struct {
		table, cols, conflict string
		rows                  [][]any
	}{"entry_days", "day, kind, shard, points, shortfall",
		"(day, kind, shard) DO UPDATE SET points = entry_days.points + excluded.points, shortfall = entry_days.shortfall + excluded.shortfall", dayRows})
	for _, st := range steps {
		if err := u.s.w.insertRows(ctx, u.tx, d, st.table, st.cols, st.conflict, st.rows); err != nil {
			return err
		}
	}
	slices.SortFunc(lots, byFirst)
	if err := u.s.w.updateLots(ctx, u.tx, d, lots); err != nil {
		return err
	}
	if len(u.b.Out) == 0 {
		return nil
	}
	msgs := make([]outbox.Message, 0, len(u.b.Out))
	for _, p := range u.b.Out {
		m, err := u.s.encode(p.Ctx, p.Event)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", p.Event.ID, err)
		}
		msgs = append(msgs, m)
	}
	return outbox.Add(ctx, u.tx, d, u.b.Now, msgs...)
}

const msPerDay = 24 * 60 * 60 * 1000

// statShards spreads a day's statistics over rows by customer.
const statShards = 16

func shardOf(customerID string) int {
	var h uint32 = 2166136261
	for i := 0; i < len(customerID); i++ {
		h ^= uint32(customerID[i])
		h *= 16777619
	}
	return int(h % statShards)
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int:
		return int64(x)
	}
	return 0
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
