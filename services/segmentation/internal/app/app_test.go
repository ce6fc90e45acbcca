package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/hot"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var start = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

// simulate draws customers from the BG/NBD story (purchase rate from a
// gamma, dropout after each purchase from a beta) over days, with order
// values around 50 EUR, and returns their paid-order events in time order.
func simulate(customers, days int, seed uint64) []segment.Event {
	src := rand.New(rand.NewPCG(seed, seed+1))
	lambda := distuv.Gamma{Alpha: 0.6, Beta: 6, Src: src}
	drop := distuv.Beta{Alpha: 1, Beta: 4, Src: src}
	type at struct {
		day int
		ev  segment.Event
	}
	var all []at
	n := 0
	for c := 0; c < customers; c++ {
		id := fmt.Sprintf("cust-%04d", c)
		day := src.IntN(days / 2)
		rate, p := lambda.Rand(), drop.Rand()
		for day < days {
			n++
			all = append(all, at{day, segment.Event{
				ID: fmt.Sprintf("ev-%d", n), Kind: segment.Paid, CustomerID: id, Source: "shop", OrderID: fmt.Sprintf("o-%d", n),
				Channel: []string{"web", "app"}[n%2], OccurredAt: start.AddDate(0, 0, day).Add(time.Duration(n%600) * time.Second),
				BaseTotal: int64(2500 + src.IntN(5000)), Currency: "EUR", Discounted: src.IntN(3) == 0,
			}})
			if src.Float64() < p {
				break
			}
			day += 1 + int(src.ExpFloat64()/math.Max(rate, 1e-3))
		}
	}
	// Per customer in order; across customers any order will do, but keep
	// it chronological as a shop would send it.
	for i := 1; i < len(all); i++ {
		for j := i; j > 0 && all[j].day < all[j-1].day; j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
	out := make([]segment.Event, len(all))
	for i, a := range all {
		out[i] = a.ev
	}
	return out
}

type fixture struct {
	st     *store.Store
	hot    hot.Store
	scorer *app.App
	now    time.Time
}

func newFixture(tb testing.TB, h hot.Store) *fixture {
	tb.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(tb.TempDir(), "seg.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, db, log)
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{st: st, hot: h, now: start.AddDate(0, 0, 200)}
	f.scorer, err = app.New(ctx, st, h, app.Options{
		Rules: segment.DefaultFlagRules, HorizonDays: 365, AnnualDiscountRate: 0.1, Now: func() time.Time { return f.now },
	}, log)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func (f *fixture) apply(tb testing.TB, evs []segment.Event, batch int) {
	tb.Helper()
	for i := 0; i < len(evs); i += batch {
		if _, _, err := f.scorer.ApplyOrders(context.Background(), evs[i:min(i+batch, len(evs))], nil, time.Time{}, false); err != nil {
			tb.Fatal(err)
		}
	}
}

func TestRefit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, hot.NewMemory())
	evs := simulate(600, 200, 7)
	f.apply(t, evs, 250)
	res, err := f.scorer.Refit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Model == nil || res.FitErr != nil {
		t.Fatalf("no model: %v", res.FitErr)
	}
	if res.Customers != 600 || res.Changed == 0 {
		t.Errorf("run %+v", res)
	}
	m, state := f.scorer.Model()
	if m.BGNBD.R <= 0 || m.GammaGamma.P <= 0 || !m.FittedAt.Equal(f.now) || state.Boundaries.Customers != 600 || !state.VIPByCLV {
		t.Errorf("model %+v state %+v", m, state)
	}
	cs, err := f.st.Customers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var vips, churn int
	segs := map[segment.Segment]int{}
	for _, c := range cs {
		sc := c.Score
		if sc == nil || sc.Segment == segment.Unscored || sc.Prediction == nil {
			t.Fatalf("%s not scored: %+v", c.Features.CustomerID, sc)
		}
		p := sc.Prediction
		if p.PAlive < 0 || p.PAlive > 1 || p.ExpectedPurchases < 0 || p.CLV < 0 || p.HorizonDays != 365 {
			t.Fatalf("%s prediction %+v", c.Features.CustomerID, p)
		}
		if len(c.Features.Days) == 1 && p.PAlive != 1 {
			t.Errorf("one-time buyer with P(alive) %v", p.PAlive)
		}
		if sc.Flags&segment.VIP != 0 {
			vips++
		}
		if sc.Flags&segment.ChurnRisk != 0 {
			churn++
		}
		segs[sc.Segment]++
		hp, err := f.hot.Profile(ctx, c.Features.CustomerID)
		if err != nil || !reflect.DeepEqual(hp, sc.Profile(c.Features)) {
			t.Fatalf("hot profile of %s differs from SQL: %+v vs %+v", c.Features.CustomerID, hp, sc.Profile(c.Features))
		}
	}
	t.Logf("model %+v %+v vips %d churn %d segs %v", m.BGNBD, m.GammaGamma, vips, churn, segs)
	if vips < 30 || vips > 40 {
		t.Errorf("%d VIPs of 600, want about 5%%", vips)
	}
	if churn == 0 || len(segs) < 6 {
		t.Errorf("churn risks %d, segments %v", churn, segs)
	}
	// Scoring the same base again announces nothing new.
	again, err := f.scorer.Refit(ctx)
	if err != nil || again.Changed != 0 {
		t.Errorf("second run changed %d, %v", again.Changed, err)
	}
	// The model survives a restart.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s2, err := app.New(ctx, f.st, f.hot, app.Options{Rules: segment.DefaultFlagRules}, log)
	if err != nil {
		t.Fatal(err)
	}
	if m2, st2 := s2.Model(); !reflect.DeepEqual(m2.BGNBD, m.BGNBD) || st2.VIPThreshold != state.VIPThreshold {
		t.Errorf("reloaded model %+v, state %+v", m2, st2)
	}
}

func TestWithoutModel(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, hot.NewMemory())
	// One-time buyers only: the models cannot be fitted, RFM still works.
	var evs []segment.Event
	for i := 0; i < 20; i++ {
		evs = append(evs, segment.Event{ID: fmt.Sprint("e", i), Kind: segment.Paid, CustomerID: fmt.Sprint("c", i), Source: "s",
			OrderID: fmt.Sprint("o", i), OccurredAt: start.AddDate(0, 0, i*5), BaseTotal: int64(1000 * (i + 1)), Currency: "EUR"})
	}
	f.apply(t, evs, 7)
	// Before any run: no model yet.
	if p, err := f.hot.Profile(ctx, "c3"); err != nil || p.Prediction != nil || p.Withheld != segment.WithheldNoModel {
		t.Errorf("before a run: %+v, %v; want withheld for want of a model", p, err)
	}
	res, err := f.scorer.Refit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Model != nil || res.FitErr == nil {
		t.Fatalf("model fitted on one-time buyers: %+v", res)
	}
	p, err := f.hot.Profile(ctx, "c19")
	if err != nil {
		t.Fatal(err)
	}
	if p.Prediction != nil || p.Segment != segment.New || p.RFM != (segment.RFM{R: 5, F: 1, M: 5}) || p.Flags&segment.VIP == 0 ||
		p.Withheld != segment.WithheldNotEnoughHistory {
		t.Errorf("latest, biggest one-time buyer: %+v", p)
	}
	// A customer who appears after the run is scored against its
	// boundaries at once.
	f.apply(t, []segment.Event{{ID: "late", Kind: segment.Paid, CustomerID: "late", Source: "s", OrderID: "late",
		OccurredAt: f.now, BaseTotal: 1, Currency: "EUR"}}, 1)
	p, _ = f.hot.Profile(ctx, "late")
	if p.RFM != (segment.RFM{R: 5, F: 1, M: 1}) || p.Segment != segment.New || p.Flags != segment.NewCustomer ||
		p.Withheld != segment.WithheldNotEnoughHistory {
		t.Errorf("late customer %+v", p)
	}
	// The reason survives a rebuild from SQL.
	if _, err := f.scorer.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if p, _ = f.hot.Profile(ctx, "late"); p.Withheld != segment.WithheldNotEnoughHistory {
		t.Errorf("late customer after a rebuild: %+v", p)
	}
	pop, _ := f.hot.Population(ctx)
	if pop.Orders[1] != 21 {
		t.Errorf("population %+v", pop)
	}
}

// TestRedisFlushRebuild scores a base into Redis, keeps applying orders
// incrementally, then flushes Redis and rebuilds it from SQL: every read
// must answer as before.
func TestRedisFlushRebuild(t *testing.T) {
	ctx := context.Background()
	url := testkit.Redis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	h := hot.NewRedis(c, "boomerang:seg:")
	f := newFixture(t, h)
	evs := simulate(300, 200, 11)
	f.apply(t, evs[:len(evs)/2], 100)
	if _, err := f.scorer.Refit(ctx); err != nil {
		t.Fatal(err)
	}
	f.apply(t, evs[len(evs)/2:], 37)
	f.apply(t, []segment.Event{{ID: "cx", Kind: segment.Cancelled, CustomerID: evs[0].CustomerID, Source: evs[0].Source, OrderID: evs[0].OrderID}}, 1)
	if err := f.scorer.SetAgony(ctx, evs[1].CustomerID, true); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, h)
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if built, _ := h.Built(ctx); built {
		t.Fatal("flushed Redis says it is built")
	}
	if err := f.scorer.EnsureHot(ctx); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, h)
	if !reflect.DeepEqual(before, after) {
		for k := range before.profiles {
			if !reflect.DeepEqual(before.profiles[k], after.profiles[k]) {
				t.Errorf("profile %s:\n%+v\n%+v", k, before.profiles[k], after.profiles[k])
			}
		}
		t.Fatalf("rebuilt state differs:\n%+v\n%+v", before.pop, after.pop)
	}
	if len(before.profiles) != 300 || len(before.top) == 0 || before.summary.Model == nil {
		t.Errorf("too little state compared: %d profiles, %d top", len(before.profiles), len(before.top))
	}
}

type state struct {
	profiles map[string]segment.Profile
	top      []hot.Ranked
	spend    []hot.Ranked
	members  map[segment.Segment][]string
	pop      *segment.Population
	summary  hot.Summary
}

func snapshot(tb testing.TB, h hot.Store) state {
	tb.Helper()
	ctx := context.Background()
	s := state{profiles: map[string]segment.Profile{}, members: map[segment.Segment][]string{}}
	for i := 0; i < 300; i++ {
		id := fmt.Sprintf("cust-%04d", i)
		if p, err := h.Profile(ctx, id); err == nil {
			s.profiles[id] = p
		}
	}
	var err error
	if s.top, err = h.Top(ctx, hot.ByCLV, 1000); err != nil {
		tb.Fatal(err)
	}
	s.spend, _ = h.Top(ctx, hot.BySpend, 1000)
	for _, sg := range segment.Segments {
		s.members[sg], _ = h.Members(ctx, sg, "", 1000)
	}
	s.pop, _ = h.Population(ctx)
	s.summary, _ = h.Summary(ctx)
	return s
}

// TestAlmostNoDropoutSpread values a base whose customers drop out with
// much the same probability: the fit's a and b run off to millions, and
// every customer must still be valued with those parameters as fitted,
// with finite predictions. The base has over 500 repeat customers, so the
// fit is plain maximum likelihood: the small-fit penalty would hold a and
// b near their start.
func TestAlmostNoDropoutSpread(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, hot.NewMemory())
	src := rand.New(rand.NewPCG(5, 6))
	var evs []segment.Event
	from := f.now.AddDate(0, 0, -200)
	n := 0
	for c := range 1100 {
		rate, drop, day := 0.005+src.ExpFloat64()*0.03, 0.1+src.Float64()*0.5, src.IntN(100)
		for day < 199 {
			n++
			evs = append(evs, segment.Event{ID: fmt.Sprint("e", n), Kind: segment.Paid, CustomerID: fmt.Sprintf("c%04d", c), Source: "shop",
				OrderID: fmt.Sprint("o", n), OccurredAt: from.AddDate(0, 0, day), BaseTotal: int64(2000 + src.IntN(6000)), Currency: "EUR"})
			if src.Float64() < drop {
				break
			}
			day += 1 + int(src.ExpFloat64()/rate)
		}
	}
	f.apply(t, evs, 200)
	res, err := f.scorer.Refit(ctx)
	if err != nil || res.Model == nil {
		t.Fatalf("refit %+v, %v", res, err)
	}
	t.Logf("BG/NBD %+v", res.Model.BGNBD)
	if ab := res.Model.BGNBD.A + res.Model.BGNBD.B; ab < 1e5 {
		t.Errorf("fitted a+b = %g: want the concentrated dropout Beta (a+b ≥ 1e5) this base is built to produce", ab)
	}
	if res.Unvalued != 0 {
		t.Errorf("%d of %d customers not valued", res.Unvalued, res.Customers)
	}
	cs, _ := f.st.Customers(ctx)
	for _, c := range cs {
		p := c.Score.Prediction
		if p == nil || !(p.PAlive > 0 && p.PAlive <= 1) || !(p.ExpectedPurchases > 0) || math.IsInf(p.ExpectedPurchases, 0) || p.CLV <= 0 {
			t.Fatalf("%s: %+v", c.Features.CustomerID, p)
		}
	}
}

// TestRefitDegenerate runs Refit on bases no model can be fitted to: the
// customers are rescored, the fit's failure is in FitErr, no customer gets
// a prediction (none extrapolated, none NaN).
func TestRefitDegenerate(t *testing.T) {
	shop := func(customers int, orders func(c int) int, value func(c, k int) int64) func(now time.Time) []segment.Event {
		return func(now time.Time) []segment.Event {
			var evs []segment.Event
			for c := range customers {
				for k := range orders(c) {
					evs = append(evs, segment.Event{ID: fmt.Sprintf("e%d-%d", c, k), Kind: segment.Paid, CustomerID: fmt.Sprintf("c%03d", c),
						Source: "shop", OrderID: fmt.Sprintf("o%d-%d", c, k), OccurredAt: now.AddDate(0, 0, -150+c%30+20*k),
						BaseTotal: value(c, k), Currency: "EUR"})
				}
			}
			return evs
		}
	}
	tests := []struct {
		name   string
		events func(now time.Time) []segment.Event
	}{
		{"five customers, one with a single 60 EUR order", shop(5, func(c int) int { return 1 + c%3 }, func(c, _ int) int64 { return int64(6000 + 1000*c) })},
		{"all one-time buyers", shop(200, func(int) int { return 1 }, func(c, _ int) int64 { return int64(1000 + 37*c) })},
		{"one spend value", shop(300, func(c int) int { return 1 + c%4 }, func(int, int) int64 { return 6000 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, hot.NewMemory())
			f.apply(t, tt.events(f.now), 100)
			res, err := f.scorer.Refit(ctx)
			if err != nil || res.FitErr == nil || res.Model != nil || res.Customers == 0 {
				t.Fatalf("refit %+v, %v; want rescored customers, a fit error and no model", res, err)
			}
			t.Logf("fit: %v", res.FitErr)
			cs, err := f.st.Customers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				if c.Score.Prediction != nil {
					t.Errorf("%s: prediction %+v; want none", c.Features.CustomerID, c.Score.Prediction)
				}
			}
		})
	}
}

// TestStoredSmallModelNotUsed: a model saved before fits asked for enough
// history, fitted on a handful of customers, is not loaded.
func TestStoredSmallModelNotUsed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, hot.NewMemory())
	for _, tt := range []struct {
		repeat int
		loaded bool
	}{{3, false}, {clv.MinRepeatCustomers, true}} {
		m := clv.Model{Unit: clv.Day, FittedAt: f.now, BGNBD: clv.BGNBD{R: 1, Alpha: 1, A: 1, B: 1},
			GammaGamma: clv.GammaGamma{P: 1, Q: 2, Gamma: 10}, Customers: 5 + tt.repeat, RepeatCustomers: tt.repeat}
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.st.SaveRun(ctx, store.Run{Now: f.now, Model: &store.ModelRecord{FittedAt: f.now, Customers: int64(m.Customers), Model: raw}}); err != nil {
			t.Fatal(err)
		}
		a, err := app.New(ctx, f.st, hot.NewMemory(), app.Options{Rules: segment.DefaultFlagRules, Now: func() time.Time { return f.now }},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := a.Model(); (got != nil) != tt.loaded {
			t.Errorf("%d repeat customers: model loaded %v, want %v", tt.repeat, got != nil, tt.loaded)
		}
	}
}
