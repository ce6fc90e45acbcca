package hot_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/redisx"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/hot"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// stores runs the contract suite against both implementations.
var stores = []struct {
	name string
	open func(tb testing.TB) hot.Store
}{
	{"memory", func(testing.TB) hot.Store { return hot.NewMemory() }},
	{"redis", openRedis},
}

func openRedis(tb testing.TB) hot.Store {
	tb.Helper()
	c, err := redisx.Open(context.Background(), testkit.Redis(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return hot.NewRedis(c, "test:seg:")
}

var t0 = time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)

func profile(id string, orders, value int64, seg segment.Segment, clvValue int64) segment.Profile {
	p := segment.Profile{CustomerID: id, Currency: "EUR", Orders: orders, TotalValue: value, AverageOrderValue: value / max(orders, 1),
		FirstOrderAt: t0, LastOrderAt: t0.Add(time.Hour), Channels: []string{"web"}, RFM: segment.RFM{R: 3, F: 2, M: 1},
		Segment: seg, Flags: segment.VIP | segment.NewCustomer}
	if clvValue >= 0 {
		p.Prediction = &segment.Prediction{ExpectedPurchases: 1.25, HorizonDays: 365, PAlive: 0.5, ExpectedOrderValue: 999, CLV: clvValue}
	}
	return p
}

func TestContract(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Run("profiles", func(t *testing.T) { testProfiles(t, s.open(t)) })
			t.Run("moves between segments", func(t *testing.T) { testMoves(t, s.open(t)) })
			t.Run("leaderboards", func(t *testing.T) { testTop(t, s.open(t)) })
			t.Run("paging", func(t *testing.T) { testPaging(t, s.open(t)) })
			t.Run("replace equals incremental", func(t *testing.T) { testReplace(t, s.open(t), s.open(t)) })
		})
	}
}

func testProfiles(t *testing.T, st hot.Store) {
	ctx := context.Background()
	if _, err := st.Profile(ctx, "nobody"); !errors.Is(err, hot.ErrNotFound) {
		t.Fatalf("unknown customer: %v", err)
	}
	want := profile("alice", 3, 9000, segment.Loyal, 12000)
	if err := st.Put(ctx, []segment.Profile{want}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Profile(ctx, "alice")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("profile %+v, %v; want %+v", got, err, want)
	}
	if built, err := st.Built(ctx); err != nil || built {
		t.Errorf("built before any rebuild: %v %v", built, err)
	}
	sum := hot.Summary{ScoredAt: t0, Customers: 1, CLV: []segment.Quantile{{Q: 0.5, Value: 12000}},
		Model: &clv.Model{Unit: clv.Day, FittedAt: t0, BGNBD: clv.BGNBD{R: 0.24, Alpha: 4.4, A: 0.79, B: 2.4}, Customers: 1}}
	if err := st.SetSummary(ctx, sum); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Summary(ctx); err != nil || !reflect.DeepEqual(got, sum) {
		t.Errorf("summary %+v, %v", got, err)
	}
}

func testMoves(t *testing.T, st hot.Store) {
	ctx := context.Background()
	must(t, st.Put(ctx, []segment.Profile{
		profile("a", 1, 100, segment.New, -1),
		profile("b", 1, 200, segment.New, -1),
		profile("c", 4, 5000, segment.Champions, 7000),
	}))
	// b orders again and moves; in one call a customer may even move twice.
	must(t, st.Put(ctx, []segment.Profile{
		profile("b", 2, 300, segment.PotentialLoyalist, 400),
		profile("a", 2, 150, segment.Promising, 50),
		profile("a", 3, 180, segment.PotentialLoyalist, 60),
	}))
	wantMembers := map[segment.Segment][]string{
		segment.New: nil, segment.Promising: nil,
		segment.PotentialLoyalist: {"a", "b"}, segment.Champions: {"c"},
	}
	for s, want := range wantMembers {
		got, err := st.Members(ctx, s, "", 10)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%v members %v, %v; want %v", s, got, err, want)
		}
	}
	pop, err := st.Population(ctx)
	must(t, err)
	want := &segment.Population{
		Segments: map[segment.Segment]segment.SegmentStat{
			segment.PotentialLoyalist: {Customers: 2, Value: 480, CLV: 460},
			segment.Champions:         {Customers: 1, Value: 5000, CLV: 7000},
		},
		Orders: map[int64]int64{2: 1, 3: 1, 4: 1},
	}
	if !reflect.DeepEqual(pop, want) {
		t.Errorf("population %+v, want %+v", pop, want)
	}
}

func testTop(t *testing.T, st hot.Store) {
	ctx := context.Background()
	must(t, st.Put(ctx, []segment.Profile{
		profile("a", 1, 100, segment.New, 500),
		profile("b", 1, 900, segment.New, 500), // ties on CLV: descending id
		profile("c", 1, 300, segment.New, 800),
		profile("d", 1, 50, segment.New, -1), // no prediction: not on the CLV board
		profile("e", 0, 0, segment.Unscored, -1),
	}))
	clvTop, err := st.Top(ctx, hot.ByCLV, 10)
	must(t, err)
	if want := []hot.Ranked{{"c", 800}, {"b", 500}, {"a", 500}}; !reflect.DeepEqual(clvTop, want) {
		t.Errorf("top by CLV %v, want %v", clvTop, want)
	}
	spend, err := st.Top(ctx, hot.BySpend, 2)
	must(t, err)
	if want := []hot.Ranked{{"b", 900}, {"c", 300}}; !reflect.DeepEqual(spend, want) {
		t.Errorf("top by spend %v, want %v", spend, want)
	}
	// A customer whose orders were all cancelled leaves the boards.
	must(t, st.Put(ctx, []segment.Profile{profile("b", 0, 0, segment.Unscored, -1)}))
	spend, _ = st.Top(ctx, hot.BySpend, 10)
	if want := []hot.Ranked{{"c", 300}, {"a", 100}, {"d", 50}}; !reflect.DeepEqual(spend, want) {
		t.Errorf("top by spend after cancellation %v, want %v", spend, want)
	}
}

func testPaging(t *testing.T, st hot.Store) {
	ctx := context.Background()
	var ps []segment.Profile
	for i := 0; i < 25; i++ {
		ps = append(ps, profile(fmt.Sprintf("c%02d", 24-i), 1, 100, segment.Lost, -1))
	}
	must(t, st.Put(ctx, ps))
	var all []string
	after := ""
	for pages := 0; ; pages++ {
		page, err := st.Members(ctx, segment.Lost, after, 10)
		must(t, err)
		if len(page) == 0 {
			if pages != 3 {
				t.Errorf("%d pages, want 3", pages)
			}
			break
		}
		all = append(all, page...)
		after = page[len(page)-1]
	}
	for i, id := range all {
		if id != fmt.Sprintf("c%02d", i) {
			t.Fatalf("paged %v", all)
		}
	}
	if len(all) != 25 {
		t.Errorf("paged %d members", len(all))
	}
}

// testReplace writes the same history incrementally into one store and as
// a rebuild into another: every read must agree.
func testReplace(t *testing.T, inc, rebuilt hot.Store) {
	ctx := context.Background()
	final := map[string]segment.Profile{}
	var order []string
	for step := 0; step < 4; step++ {
		var ps []segment.Profile
		for i := 0; i < 40; i++ {
			id := fmt.Sprintf("c%02d", (i*7+step*3)%50)
			p := profile(id, int64(1+(i+step)%6), int64(100*(i+1)+step), segment.Segments[(i+step)%len(segment.Segments)], int64(i*13%90))
			ps = append(ps, p)
			if _, ok := final[id]; !ok {
				order = append(order, id)
			}
			final[id] = p
		}
		must(t, inc.Put(ctx, ps))
	}
	var all []segment.Profile
	for _, id := range order {
		all = append(all, final[id])
	}
	sum := hot.Summary{ScoredAt: t0, Customers: len(all)}
	must(t, inc.SetSummary(ctx, sum))
	must(t, rebuilt.Put(ctx, []segment.Profile{profile("stale", 9, 9, segment.Lost, 9)}))
	must(t, rebuilt.Replace(ctx, all, sum))
	if built, _ := rebuilt.Built(ctx); !built {
		t.Error("not built after Replace")
	}
	if _, err := rebuilt.Profile(ctx, "stale"); !errors.Is(err, hot.ErrNotFound) {
		t.Errorf("a customer left out of the rebuild is still there: %v", err)
	}
	assertSame(t, inc, rebuilt, order)
}

// assertSame fails unless a and b answer every read alike for the
// customers ids.
func assertSame(t *testing.T, a, b hot.Store, ids []string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		pa, errA := a.Profile(ctx, id)
		pb, errB := b.Profile(ctx, id)
		if errA != nil || errB != nil || !reflect.DeepEqual(pa, pb) {
			t.Errorf("profile %s: %+v (%v) vs %+v (%v)", id, pa, errA, pb, errB)
		}
	}
	for _, by := range []hot.Ranking{hot.ByCLV, hot.BySpend} {
		ta, _ := a.Top(ctx, by, 1000)
		tb, _ := b.Top(ctx, by, 1000)
		if !reflect.DeepEqual(ta, tb) {
			t.Errorf("top %v:\n%v\n%v", by, ta, tb)
		}
	}
	for _, s := range segment.Segments {
		ma, _ := a.Members(ctx, s, "", 1000)
		mb, _ := b.Members(ctx, s, "", 1000)
		if !reflect.DeepEqual(ma, mb) {
			t.Errorf("members of %v:\n%v\n%v", s, ma, mb)
		}
	}
	popA, _ := a.Population(ctx)
	popB, _ := b.Population(ctx)
	if !reflect.DeepEqual(popA, popB) {
		t.Errorf("population:\n%+v\n%+v", popA, popB)
	}
	sa, _ := a.Summary(ctx)
	sb, _ := b.Summary(ctx)
	if !reflect.DeepEqual(sa, sb) {
		t.Errorf("summary:\n%+v\n%+v", sa, sb)
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
