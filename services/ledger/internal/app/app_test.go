package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// backends runs the contract suite against every database.
var backends = testkit.Databases("ledger.db")

func openStore(tb testing.TB, url string, c *testkit.Clock) *rig {
	tb.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	st, err := store.Open(ctx, db, bus.Encode, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	return &rig{App: app.New(st, c.Now), st: st}
}

// rig is the use cases over a store at a test clock, with the store's
// own reads.
type rig struct {
	*app.App
	st *store.Store
}

func (r *rig) Verify(ctx context.Context) error { return r.st.Verify(ctx) }

func (r *rig) Redeemed(ctx context.Context) (map[string]int64, error) { return r.st.Redeemed(ctx) }

const programme = `
base_currency: EUR
tiers:
  levels:
    - {name: Bronze, min_spend: "0"}
    - {name: Silver, min_spend: "500.00", multiplier: "2"}
bonuses: {first_order: 10, referral: 25}
expiry: {after_days: 100, warn_days: 10}
rewards:
  - {id: mug, name: Mug, cost: 50, stock: 3}
`

func mustProgramme(tb testing.TB) *ledger.Programme {
	tb.Helper()
	p, err := ledger.ParseProgramme([]byte(programme))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

func eur(minor int64) *commonv1.Money { return &commonv1.Money{MinorUnits: minor, Currency: "EUR"} }

func paidEvent(id, customer, order string, total int64, at time.Time) *ordersv1.OrderEvent {
	return &ordersv1.OrderEvent{EventId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, Source: "shop",
		OrderId: order, CustomerId: customer, OccurredAt: timestamppb.New(at), Total: eur(total), BaseTotal: eur(total)}
}

func refundEvent(id, customer, order string, amount, cumulative int64, at time.Time) *ordersv1.OrderEvent {
	return &ordersv1.OrderEvent{EventId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, Source: "shop",
		OrderId: order, CustomerId: customer, OccurredAt: timestamppb.New(at),
		Refund: &ordersv1.Refund{RefundId: id, Amount: &ordersv1.Amount{Base: eur(amount)}, RefundedTotal: &ordersv1.Amount{Base: eur(cumulative)}}}
}

func inputs(evs ...*ordersv1.OrderEvent) []app.Input {
	in := make([]app.Input, len(evs))
	for i, ev := range evs {
		in[i] = app.Input{Ctx: context.Background(), Event: ev}
	}
	return in
}

func balance(tb testing.TB, st *rig, p *ledger.Programme, customer string) int64 {
	tb.Helper()
	v, err := st.Account(context.Background(), p, customer, 0)
	if err != nil {
		tb.Fatalf("account %s: %v", customer, err)
	}
	return v.Account.Balance
}

func verify(tb testing.TB, st *rig) {
	tb.Helper()
	if err := st.Verify(context.Background()); err != nil {
		tb.Fatal(err)
	}
}

func TestStoreContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Run("orders earn once, refunds claw back, redelivery changes nothing", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st, p := openStore(t, b.URL(t), c), mustProgramme(t)
				ctx := context.Background()
				batch := inputs(
					paidEvent("e1", "alice", "o1", 120_00, t0), // 120 + 10 first order
					paidEvent("e2", "alice", "o2", 80_00, t0.Add(time.Hour)),
					refundEvent("e3", "alice", "o1", 30_00, 30_00, t0.Add(2*time.Hour)), // 30 of 120 back
					paidEvent("e4", "bob", "o3", 10_00, t0),
				)
				out, err := st.ApplyOrders(ctx, p, batch, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i, o := range out {
					if o != ledger.Applied {
						t.Errorf("event %d: outcome %v", i, o)
					}
				}
				if got := balance(t, st, p, "alice"); got != 120+10+80-30 {
					t.Errorf("alice %d, want 180", got)
				}
				// Redelivery of the whole batch, and the same batch split.
				out, err = st.ApplyOrders(ctx, p, batch, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i, o := range out {
					if o != ledger.Duplicate {
						t.Errorf("redelivered event %d: outcome %v", i, o)
					}
				}
				if _, err := st.ApplyOrders(ctx, p, append(batch[2:3], batch[2:3]...), nil); err != nil {
					t.Fatal(err)
				}
				if got := balance(t, st, p, "alice"); got != 180 {
					t.Errorf("alice after redelivery %d, want 180", got)
				}
				es, _, err := st.Entries(ctx, "alice", 0, 100)
				if err != nil {
					t.Fatal(err)
				}
				if len(es) != 4 || es[0].Kind != ledger.KindReversal || es[0].Points != -30 || len(es[0].Uses) == 0 || es[0].Uses[0].LotID != "e1:base" {
					t.Errorf("entries newest first with the refunded order's lot used: %+v", es)
				}
				verify(t, st)
			})

			t.Run("an order's events wait for the ones before them", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st, p := openStore(t, b.URL(t), c), mustProgramme(t)
				ctx := context.Background()
				pd := paidEvent("e1", "c", "o1", 100_00, t0)
				pd.OrderSequence = 1
				rf := refundEvent("e2", "c", "o1", 50_00, 50_00, t0)
				rf.OrderSequence = 2
				out, err := st.ApplyOrders(ctx, p, inputs(rf), nil)
				if err != nil || out[0] != ledger.Later {
					t.Fatalf("refund before its order: %v %v, want Later", out, err)
				}
				out, err = st.ApplyOrders(ctx, p, inputs(pd, rf, rf), nil)
				if err != nil || out[0] != ledger.Applied || out[1] != ledger.Applied || out[2] != ledger.Duplicate {
					t.Fatalf("in order: %v %v", out, err)
				}
				if got := balance(t, st, p, "c"); got != 100+10-50 { // the first-order bonus goes only with a full refund
					t.Errorf("balance %d, want 60", got)
				}
				verify(t, st)
			})

			t.Run("a refund after expiry takes back only what had not expired", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st, p := openStore(t, b.URL(t), c), mustProgramme(t)
				ctx := context.Background()
				if _, err := st.ApplyOrders(ctx, p, inputs(paidEvent("e1", "c", "o1", 100_00, t0)), nil); err != nil {
					t.Fatal(err)
				}
				c.Add(101 * 24 * time.Hour) // o1's 110 points expire
				if _, err := st.Sweep(ctx, p, c.Now(), 10); err != nil {
					t.Fatal(err)
				}
				if _, err := st.ApplyOrders(ctx, p, inputs(paidEvent("e2", "c", "o2", 40_00, c.Now())), nil); err != nil {
					t.Fatal(err)
				}
				if _, err := st.ApplyOrders(ctx, p, inputs(refundEvent("e3", "c", "o1", 50_00, 50_00, c.Now())), nil); err != nil {
					t.Fatal(err)
				}
				if got := balance(t, st, p, "c"); got != 40 {
					t.Errorf("balance %d, want o2's 40", got)
				}
				verify(t, st)
			})

			t.Run("tier upgrade doubles later earning", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st, p := openStore(t, b.URL(t), c), mustProgramme(t)
				ctx := context.Background()
				if _, err := st.ApplyOrders(ctx, p, inputs(paidEvent("e1", "c", "o1", 500_00, t0)), nil); err != nil {
					t.Fatal(err)
				}
				if _, err := st.ApplyOrders(ctx, p, inputs(paidEvent("e2", "c", "o2", 10_00, t0.Add(time.Hour))), nil); err != nil {
					t.Fatal(err)
				}
				c.Add(2 * time.Hour)
				v, err := st.Account(ctx, p, "c", 0)
				if err != nil {
					t.Fatal(err)
				}
				if v.Account.Tier != "Silver" || v.Account.Balance != 500+10+20 || v.Spend != 510_00 {
					t.Errorf("tier %s balance %d spend %d, want Silver 530 51000", v.Account.Tier, v.Account.Balance, v.Spend)
				}
			})

			t.Run("referral bonus goes to the referrer once", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st, p := openStore(t, b.URL(t), c), mustProgramme(t)
				ctx := context.Background()
				if _, err := st.ApplyOrders(ctx, p, inputs(paidEvent("e1", "ann", "o1", 5_00, t0)), nil); err != nil {
					t.Fatal(err)
				}
				code := ledger.ReferralCode("ann")
				first := paidEvent("e2", "ben", "o2", 5_00, t0)
				first.Customer = &ordersv1.CustomerAttributes{ReferralCode: code}
				second := paidEvent("e3", "ben", "o3", 5_00, t0)
				second.Customer = &ordersv1.CustomerAttributes{ReferralCode: code}
				if _, err := st.ApplyOrders(ctx, p, inputs(first, second), nil); err != nil {
					t.Fatal(err)
				}
				if got := balance(t, st, p, "ann"); got != 5+10+25 {
					t.Errorf("referrer %d, want 40", got)
				}
				verify(t, st)
			})

			t.Run("redeem is idempotent and never overdraws", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st, p := openStore(t, b.URL(t), c), mustProgramme(t)
				ctx := context.Background()
				if _, err := st.ApplyOrders(ctx, p, inputs(paidEvent("e1", "c", "o1", 90_00, t0)), nil); err != nil {
					t.Fatal(err)
				}
				e1, err := st.Redeem(ctx, p, "c", ledger.Redemption{Key: "k1", RewardID: "mug"})
				if err != nil {
					t.Fatal(err)
				}
				again, err := st.Redeem(ctx, p, "c", ledger.Redemption{Key: "k1", RewardID: "mug"})
				if err != nil || again.ID != e1.ID || again.BalanceAfter != 50 {
					t.Fatalf("retry: %v %+v", err, again)
				}
				if _, err := st.Redeem(ctx, p, "c", ledger.Redemption{Key: "k1", Points: 5}); !errors.Is(err, ledger.ErrIdempotencyReuse) {
					t.Errorf("key reused for another request: %v", err)
				}
				if _, err := st.Redeem(ctx, p, "c", ledger.Redemption{Key: "k2", Points: 51}); !errors.Is(err, ledger.ErrInsufficientPoints) {
					t.Errorf("overdraw: %v", err)
				}
				if _, err := st.Redeem(ctx, p, "nobody", ledger.Redemption{Key: "k", Points: 1}); !errors.Is(err, ledger.ErrNotFound) {
					t.Errorf("redeem without an account: %v", err)
				}
				if _, err := st.Adjust(ctx, p, "nobody", "a0", 5, "ops", "typo"); !errors.Is(err, ledger.ErrNotFound) {
					t.Errorf("adjust without an account: %v", err)
				}
				if got := balance(t, st, p, "c"); got != 50 {
					t.Errorf("balance %d, want 50", got)
				}
				red, err := st.Redeemed(ctx)
				if err != nil || red["mug"] != 1 {
					t.Errorf("mugs redeemed %v %v, want 1", red, err)
				}
				e, err := st.Adjust(ctx, p, "c", "a1", -20, "ops", "correction")
				if err != nil || e.BalanceAfter != 30 {
					t.Fatalf("adjust: %v %+v", err, e)
				}
				if _, err := st.Adjust(ctx, p, "c", "a1", -20, "ops", "another reason"); !errors.Is(err, ledger.ErrIdempotencyReuse) {
					t.Errorf("adjust key reused for another request: %v", err)
				}
				verify(t, st)
			})

			t.Run("sweep expires and warns once", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st, p := openStore(t, b.URL(t), c), mustProgramme(t)
				ctx := context.Background()
				if _, err := st.ApplyOrders(ctx, p, inputs(paidEvent("e1", "c", "o1", 40_00, t0)), nil); err != nil {
					t.Fatal(err)
				}
				c.Add(95 * 24 * time.Hour)
				v, err := st.Account(ctx, p, "c", 10*24*time.Hour)
				if err != nil || v.Expiring != 50 {
					t.Fatalf("expiring %v %v, want 50", v, err)
				}
				for range 2 {
					if _, err := st.Sweep(ctx, p, c.Now(), 10); err != nil {
						t.Fatal(err)
					}
				}
				c.Add(10 * 24 * time.Hour)
				for range 2 {
					if _, err := st.Sweep(ctx, p, c.Now(), 10); err != nil {
						t.Fatal(err)
					}
				}
				if got := balance(t, st, p, "c"); got != 0 {
					t.Errorf("balance after expiry %d", got)
				}
				es, _, _ := st.Entries(ctx, "c", 0, 10)
				if len(es) != 4 || es[0].Kind != ledger.KindExpiry || es[1].Kind != ledger.KindExpiry {
					t.Errorf("entries %+v, want two expiries over two earns", es)
				}
				days, before, err := st.Stats(ctx, t0.Add(-24*time.Hour), c.Now())
				if err != nil || before != 0 || len(days) != 2 || days[0].ByKind[ledger.KindEarn] != 40 || days[1].ByKind[ledger.KindExpiry] != -50 {
					t.Errorf("stats %+v %d %v", days, before, err)
				}
				verify(t, st)
			})
		})
	}
}

// TestConcurrentRedemptions: 100 redemptions at once against one account
// through two stores on one PostgreSQL database (two ledger instances):
// exactly as many succeed as the balance allows.
func TestConcurrentRedemptions(t *testing.T) {
	url := testkit.Postgres(t)
	c := testkit.NewClock(t0)
	a, b := openStore(t, url, c), openStore(t, url, c)
	p := mustProgramme(t)
	ctx := context.Background()
	if _, err := a.ApplyOrders(ctx, p, inputs(paidEvent("e1", "c", "o1", 990_00, t0)), nil); err != nil {
		t.Fatal(err)
	}
	// 990 + 10 = 1,000 points; each redemption takes 30: 33 fit.
	var ok, short atomic.Int64
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := a
			if i%2 == 1 {
				st = b
			}
			_, err := st.Redeem(ctx, p, "c", ledger.Redemption{Key: fmt.Sprint("k", i), Points: 30})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ledger.ErrInsufficientPoints):
				short.Add(1)
			default:
				t.Errorf("redeem %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 33 || short.Load() != 67 {
		t.Errorf("%d succeeded, %d refused; want 33 and 67", ok.Load(), short.Load())
	}
	if got := balance(t, a, p, "c"); got != 10 {
		t.Errorf("balance %d, want 10", got)
	}
	verify(t, a)
}

// TestConcurrentFirstOrders: two ledger instances on one PostgreSQL
// database apply the first two orders of the same new customers at the
// same time: every customer ends with both orders and one first-order
// bonus, whichever transaction created the account.
func TestConcurrentFirstOrders(t *testing.T) {
	url := testkit.Postgres(t)
	c := testkit.NewClock(t0)
	a, b := openStore(t, url, c), openStore(t, url, c)
	p := mustProgramme(t)
	ctx := context.Background()
	const customers = 20
	var wg sync.WaitGroup
	for i, st := range []*rig{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range customers {
				ev := paidEvent(fmt.Sprintf("e%d-%d", n, i), fmt.Sprint("new", n), fmt.Sprintf("o%d-%d", n, i), 100_00, t0)
				if _, err := st.ApplyOrders(ctx, p, inputs(ev), nil); err != nil {
					t.Errorf("apply: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	for n := range customers {
		if got := balance(t, a, p, fmt.Sprint("new", n)); got != 100+100+10 {
			t.Errorf("customer %d: balance %d, want 210", n, got)
		}
	}
	verify(t, a)
}
