package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/store"
)

// TestMigrateFoldsLotsAndSpend writes a ledger in the first layout (lots and
// spend in their own tables), opens the store, which migrates it, and
// checks that the invariants still hold (and Verify still sees them
// broken), and that the account reads and changes as before.
func TestMigrateFoldsLotsAndSpend(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqldb.Open(ctx, b.URL(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			first, err := os.ReadFile("../store/migrations/00001_ledger.sql") // the store's first layout
			if err != nil {
				t.Fatal(err)
			}
			if err := sqldb.Migrate(ctx, db, "ledger", fstest.MapFS{"00001_ledger.sql": {Data: first}}, nil); err != nil {
				t.Fatal(err)
			}
			at := t0.UnixMilli()
			exp := t0.Add(100 * 24 * time.Hour).UnixMilli()
			day := at / (24 * 60 * 60 * 1000)
			// alice earned 100 with order o1 and spent 30 of them, and got a
			// 10-point bonus whose expiry was announced: balance 80.
			for _, st := range []struct {
				q    string
				args []any
			}{
				{`INSERT INTO accounts (customer_id, balance, lifetime_earned, shortfall, tier, tier_since, reviewed_at, referral_code,
					referred_by, paid_orders, birth_month, birth_day, last_birthday_year, updated_at)
					VALUES ($1, 80, 110, 0, 'Bronze', $2, $2, 'Ralice', '', 1, 0, 0, 0, $2)`, []any{"alice", at}},
				{`INSERT INTO entries (entry_id, customer_id, kind, points, shortfall, balance_after, rule, source_ref, actor, reason,
					order_source, order_id, occurred_at, expires_at, recorded_at) VALUES
					('e1:base', 'alice', 1, 100, 0, 100, 'base', 'e1', '', '', 'shop', 'o1', $1, $2, $1),
					('bonus', 'alice', 2, 10, 0, 110, 'bonus', 'bonus', '', '', '', '', $1, $2, $1),
					('redeem:alice:k', 'alice', 3, -30, 0, 80, 'redeem', '', '', 'k', '', '', $1, 0, $1)`, []any{at, exp}},
				{`INSERT INTO lots (lot_id, customer_id, points, remaining, earned_at, expires_at, order_key, warned) VALUES
					('e1:base', 'alice', 100, 70, $1, $2, 'shop/o1', 0),
					('bonus', 'alice', 10, 10, $1, $2, '', 1)`, []any{at, exp}},
				{`INSERT INTO lot_uses (entry_id, lot_id, points) VALUES ('redeem:alice:k', 'e1:base', 30)`, nil},
				{`INSERT INTO spend (customer_id, ref, at, amount) VALUES ('alice', 'e1', $1, 10000)`, []any{at}},
				{`INSERT INTO orders (source, order_id, customer_id, base_total, qualifying, proportional, full_points, reversed,
					refunded, unqualified, closed, paid_at, paid, last_seq, expired_credit)
					VALUES ('shop', 'o1', 'alice', 10000, 10000, 100, 0, 0, 0, 0, 0, $1, 1, 1, 0)`, []any{at}},
				{`INSERT INTO entry_days (day, kind, shard, points, shortfall) VALUES ($1, 1, 0, 100, 0), ($1, 2, 0, 10, 0), ($1, 3, 0, -30, 0)`, []any{day}},
			} {
				if _, err := db.W.ExecContext(ctx, st.q, st.args...); err != nil {
					t.Fatalf("%s: %v", st.q, err)
				}
			}

			c := testkit.NewClock(t0.Add(time.Hour))
			sst, err := store.Open(ctx, db, bus.Encode, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			st := &rig{App: app.New(sst, c.Now), st: sst}
			p := mustProgramme(t)
			verify(t, st)
			v, err := st.Account(ctx, p, "alice", 200*24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			lots := map[string]ledger.Lot{}
			for _, l := range v.Account.Lots {
				lots[l.ID] = *l
			}
			if a := v.Account; a.Balance != 80 || v.Spend != 100_00 || v.Expiring != 80 || len(lots) != 2 ||
				lots["e1:base"].OrderKey != "shop/o1" || lots["e1:base"].Remaining != 70 || lots["e1:base"].Warned ||
				lots["bonus"].OrderKey != "" || lots["bonus"].Remaining != 10 || !lots["bonus"].Warned {
				t.Errorf("migrated account: balance %d, spend %d, expiring %d, lots %+v", a.Balance, v.Spend, v.Expiring, lots)
			}
			// Refunded in full: the order's own lot first, then the bonus;
			// 20 points had been spent.
			if _, err := st.ApplyOrders(ctx, p, inputs(refundEvent("e2", "alice", "o1", 100_00, 100_00, c.Now())), nil); err != nil {
				t.Fatal(err)
			}
			verify(t, st)
			if v, err = st.Account(ctx, p, "alice", 0); err != nil {
				t.Fatal(err)
			}
			if v.Account.Balance != 0 || v.Account.Shortfall != 20 || v.Spend != 0 {
				t.Errorf("after the refund: balance %d, shortfall %d, spend %d; want 0, 20, 0", v.Account.Balance, v.Account.Shortfall, v.Spend)
			}
			es, _, err := st.Entries(ctx, "alice", 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 1 || !slices.Equal(es[0].Uses, []ledger.LotUse{{LotID: "bonus", Points: 10}, {LotID: "e1:base", Points: 70}}) {
				t.Errorf("reversal: %+v", es[0])
			}

			// Verify sees a lot whose remainder disagrees with its uses, and
			// a use of an entry that is not a lot.
			for _, c := range []struct{ name, corrupt, repair string }{
				{"remainder", `UPDATE entries SET remaining = 5 WHERE entry_id = 'e1:base'`, `UPDATE entries SET remaining = 0 WHERE entry_id = 'e1:base'`},
				{"not a lot", `UPDATE entries SET remaining = NULL WHERE entry_id = 'bonus'`, `UPDATE entries SET remaining = 0 WHERE entry_id = 'bonus'`},
			} {
				if _, err := db.W.ExecContext(ctx, c.corrupt); err != nil {
					t.Fatal(err)
				}
				if err := st.Verify(ctx); !errors.Is(err, store.ErrInconsistent) {
					t.Errorf("%s: Verify = %v, want ErrInconsistent", c.name, err)
				}
				if _, err := db.W.ExecContext(ctx, c.repair); err != nil {
					t.Fatal(err)
				}
				verify(t, st)
			}
		})
	}
}
