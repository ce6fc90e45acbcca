package segment

import (
	"math"
	"reflect"
	"testing"
	"time"
)

var day0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func paid(id, order string, at time.Time, value int64, discounted bool, channel string) Event {
	return Event{ID: id, Kind: Paid, CustomerID: "c1", Source: "shopify", OrderID: order, Channel: channel,
		OccurredAt: at, BaseTotal: value, Currency: "EUR", Discounted: discounted}
}

// run applies events in order, keeping the orders as a store would.
func run(evs ...Event) *Features {
	f := &Features{CustomerID: "c1"}
	orders := map[string]*Order{}
	for _, ev := range evs {
		o, _ := Apply(f, orders[ev.Source+"/"+ev.OrderID], ev)
		if o != nil {
			orders[ev.Source+"/"+ev.OrderID] = o
		}
	}
	return f
}

func TestFeatures(t *testing.T) {
	tests := []struct {
		name                       string
		events                     []Event
		orders, value, discounted  int64
		refunds, refunded          int64
		days                       int
		channels                   []string
		first, last                time.Time
		wantX                      int
		wantTX, wantT, wantMonetry float64
	}{
		{
			name:   "one order",
			events: []Event{paid("e1", "o1", day0, 5000, false, "web")},
			orders: 1, value: 5000, days: 1, channels: []string{"web"}, first: day0, last: day0,
			wantT: 10,
		},
		{
			name: "same-day orders are one purchase day",
			events: []Event{
				paid("e1", "o1", day0, 5000, true, "web"),
				paid("e2", "o2", day0.Add(3*time.Hour), 2000, false, "app"),
				paid("e3", "o3", day0.AddDate(0, 0, 4), 3000, false, ""),
			},
			orders: 3, value: 10000, discounted: 1, days: 2, channels: []string{"app", "shopify", "web"},
			first: day0, last: day0.AddDate(0, 0, 4), wantX: 1, wantTX: 4, wantT: 10, wantMonetry: 3000,
		},
		{
			name: "placed orders and duplicates count nothing",
			events: []Event{
				{ID: "e0", Kind: Placed, CustomerID: "c1", Source: "shopify", OrderID: "o1", OccurredAt: day0, BaseTotal: 5000},
				paid("e1", "o1", day0, 5000, false, "web"),
				paid("e1b", "o1", day0, 5000, false, "web"),
			},
			orders: 1, value: 5000, days: 1, channels: []string{"web"}, first: day0, last: day0, wantT: 10,
		},
		{
			name: "refunds take back value up to what was paid",
			events: []Event{
				paid("e1", "o1", day0, 5000, false, "web"),
				paid("e2", "o2", day0.AddDate(0, 0, 2), 4000, false, "web"),
				{ID: "r1", Kind: Refunded, Source: "shopify", OrderID: "o2", RefundedTotal: 1000},
				{ID: "r2", Kind: Refunded, Source: "shopify", OrderID: "o2", RefundedTotal: 9000},
			},
			orders: 2, value: 5000, refunds: 2, refunded: 4000, days: 2, channels: []string{"web"},
			first: day0, last: day0.AddDate(0, 0, 2), wantX: 1, wantTX: 2, wantT: 10, wantMonetry: 0,
		},
		{
			name: "a cancellation removes the order and its day",
			events: []Event{
				paid("e1", "o1", day0, 5000, false, "web"),
				paid("e2", "o2", day0.AddDate(0, 0, 6), 4000, true, "app"),
				{ID: "r1", Kind: Refunded, Source: "shopify", OrderID: "o2", RefundedTotal: 1000},
				{ID: "c2", Kind: Cancelled, Source: "shopify", OrderID: "o2"},
			},
			orders: 1, value: 5000, refunds: 1, refunded: 1000, days: 1, channels: []string{"web"},
			first: day0, last: day0, wantT: 10,
		},
		{
			name: "test orders are ignored",
			events: []Event{
				{ID: "e1", Kind: Paid, CustomerID: "c1", Source: "s", OrderID: "o1", OccurredAt: day0, BaseTotal: 100, Test: true},
			},
		},
		{
			name: "cancelled before paid stays out",
			events: []Event{
				{ID: "c1", Kind: Cancelled, Source: "shopify", OrderID: "o1"},
				paid("e1", "o1", day0, 5000, false, "web"),
			},
		},
	}
	asOf := DayNumber(day0) + 10
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := run(tt.events...)
			if f.Orders != tt.orders || f.TotalValue != tt.value || f.DiscountedOrders != tt.discounted ||
				f.Refunds != tt.refunds || f.RefundedValue != tt.refunded || len(f.Days) != tt.days {
				t.Fatalf("got orders %d value %d discounted %d refunds %d refunded %d days %d, want %d %d %d %d %d %d",
					f.Orders, f.TotalValue, f.DiscountedOrders, f.Refunds, f.RefundedValue, len(f.Days),
					tt.orders, tt.value, tt.discounted, tt.refunds, tt.refunded, tt.days)
			}
			if got := f.ChannelNames(); len(got)+len(tt.channels) > 0 && !reflect.DeepEqual(got, tt.channels) {
				t.Errorf("channels %v, want %v", got, tt.channels)
			}
			if !f.FirstOrderAt().Equal(tt.first) || !f.LastOrderAt().Equal(tt.last) {
				t.Errorf("first/last %v %v, want %v %v", f.FirstOrderAt(), f.LastOrderAt(), tt.first, tt.last)
			}
			s, ok := f.Summarize(asOf)
			if ok != (tt.orders > 0) {
				t.Fatalf("summary ok %v", ok)
			}
			if ok && (s.X != tt.wantX || s.TX != tt.wantTX || s.T != tt.wantT || s.Monetary != tt.wantMonetry) {
				t.Errorf("summary %+v, want x %d t_x %v T %v m %v", s, tt.wantX, tt.wantTX, tt.wantT, tt.wantMonetry)
			}
		})
	}
}

func TestAverageAndShare(t *testing.T) {
	f := run(paid("e1", "o1", day0, 1000, true, ""), paid("e2", "o2", day0, 2001, false, ""), paid("e3", "o3", day0, 0, true, ""))
	if got := f.AverageOrderValue(); got != 1000 {
		t.Errorf("AOV %d, want 1000", got)
	}
	if got := f.DiscountedShare(); math.Abs(got-2.0/3) > 1e-12 {
		t.Errorf("discounted share %v, want 2/3", got)
	}
}

func TestQuintilesTies(t *testing.T) {
	tests := []struct {
		name   string
		values []int64
		want   map[int64]int
	}{
		{"distinct", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, map[int64]int{1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4, 9: 5, 10: 5}},
		{"a big tie shares the lowest score and skips", []int64{1, 1, 1, 1, 1, 1, 2, 3, 4, 5}, map[int64]int{1: 1, 2: 4, 3: 4, 4: 5, 5: 5}},
		{"all equal", []int64{7, 7, 7}, map[int64]int{7: 1}},
		{"one customer", []int64{42}, map[int64]int{42: 1}},
		{"ties across a boundary stay together", []int64{1, 2, 2, 2, 3}, map[int64]int{1: 1, 2: 2, 3: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := NewQuintiles(append([]int64(nil), tt.values...))
			for v, want := range tt.want {
				if got := q.Score(v); got != want {
					t.Errorf("score(%d) = %d, want %d (thresholds %v)", v, got, want, q)
				}
			}
			// The rank rule, checked directly.
			for _, v := range tt.values {
				less := 0
				for _, u := range tt.values {
					if u < v {
						less++
					}
				}
				if got, want := q.Score(v), 1+5*less/len(tt.values); got != want {
					t.Errorf("score(%d) = %d, rank rule says %d", v, got, want)
				}
			}
		})
	}
}

func TestBoundariesRecencyByLastDay(t *testing.T) {
	var fs []*Features
	for i := 0; i < 5; i++ {
		fs = append(fs, run(paid("e", "o", day0.AddDate(0, 0, i*10), 100*int64(i+1), false, "")))
	}
	b := ComputeBoundaries(fs)
	for i, f := range fs {
		if got := b.Score(f); got != (RFM{R: i + 1, F: 1, M: i + 1}) {
			t.Errorf("customer %d: %+v", i, got)
		}
	}
	if got := b.Score(&Features{}); got != (RFM{}) {
		t.Errorf("no orders scored %+v", got)
	}
}

func TestMapCoversGridOnce(t *testing.T) {
	used := map[Segment]bool{}
	for r := 1; r <= 5; r++ {
		for f := 1; f <= 5; f++ {
			var claims []Segment
			for _, rule := range Map {
				if rule.Claims(r, f) {
					claims = append(claims, rule.Segment)
				}
			}
			if len(claims) != 1 {
				t.Errorf("R%d F%d claimed by %v, want exactly one segment", r, f, claims)
				continue
			}
			if got := Of(RFM{R: r, F: f}); got != claims[0] {
				t.Errorf("Of(R%d F%d) = %v, want %v", r, f, got, claims[0])
			}
			used[claims[0]] = true
		}
	}
	for _, s := range Segments {
		if !used[s] {
			t.Errorf("segment %v has no cell", s)
		}
	}
	for _, c := range []struct {
		rfm  RFM
		want Segment
	}{{RFM{5, 5, 1}, Champions}, {RFM{1, 1, 5}, Lost}, {RFM{5, 1, 1}, New}, {RFM{1, 5, 1}, CantLoseThem}, {RFM{0, 3, 3}, Unscored}} {
		if got := Of(c.rfm); got != c.want {
			t.Errorf("Of(%+v) = %v, want %v", c.rfm, got, c.want)
		}
	}
}

func TestParseSegment(t *testing.T) {
	for _, s := range Segments {
		got, err := ParseSegment(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSegment(%q) = %v, %v", s.String(), got, err)
		}
	}
	if _, err := ParseSegment("unscored"); err == nil {
		t.Error("unscored parsed")
	}
}

func TestFlags(t *testing.T) {
	today := DayNumber(day0) + 100
	old := func(n int, discounted int) *Features {
		var evs []Event
		for i := 0; i < n; i++ {
			evs = append(evs, paid("e", string(rune('a'+i)), day0.AddDate(0, 0, i), 1000, i < discounted, ""))
		}
		return run(evs...)
	}
	rules := DefaultFlagRules
	tests := []struct {
		name string
		in   FlagInput
		want Flags
	}{
		{"nothing", FlagInput{Features: old(1, 0), VIPThreshold: math.MaxInt64, Today: today}, 0},
		{"vip at the threshold", FlagInput{Features: old(1, 0), VIPValue: 500, VIPThreshold: 500, Today: today}, VIP},
		{"zero value is never vip", FlagInput{Features: old(1, 0), VIPValue: 0, VIPThreshold: 0, Today: today}, 0},
		{"price sensitive", FlagInput{Features: old(4, 2), VIPThreshold: math.MaxInt64, Today: today}, PriceSensitive},
		{"too few orders to judge", FlagInput{Features: old(2, 2), VIPThreshold: math.MaxInt64, Today: today}, 0},
		{"churn risk for repeat customers", FlagInput{Features: old(2, 0), Prediction: &Prediction{PAlive: 0.1}, VIPThreshold: math.MaxInt64, Today: today}, ChurnRisk},
		{"no churn risk for one-time buyers", FlagInput{Features: old(1, 0), Prediction: &Prediction{PAlive: 0.1}, VIPThreshold: math.MaxInt64, Today: today}, 0},
		{"alive enough", FlagInput{Features: old(2, 0), Prediction: &Prediction{PAlive: 0.3}, VIPThreshold: math.MaxInt64, Today: today}, 0},
		{"agony", FlagInput{Features: old(1, 0), Agony: true, VIPThreshold: math.MaxInt64, Today: today}, Agony},
		{"new", FlagInput{Features: old(1, 0), VIPThreshold: math.MaxInt64, Today: DayNumber(day0) + 29}, NewCustomer},
		{"no longer new", FlagInput{Features: old(1, 0), VIPThreshold: math.MaxInt64, Today: DayNumber(day0) + 30}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rules.Flags(tt.in); got != tt.want {
				t.Errorf("flags %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVIPThreshold(t *testing.T) {
	vals := []int64{100, 900, 500, 300, 700, 0, 0, 0, 0, 0}
	if got := VIPThreshold(vals, 0.2); got != 700 {
		t.Errorf("top 20%%: %d, want 700", got)
	}
	if got := VIPThreshold(vals, 0.01); got != 900 {
		t.Errorf("top 1%%: %d, want 900 (at least one VIP)", got)
	}
	if got := VIPThreshold([]int64{0, 0}, 0.5); got != 1 {
		t.Errorf("all zero: %d, want 1 (nobody qualifies)", got)
	}
	if got := VIPThreshold(vals, 0); got != math.MaxInt64 {
		t.Errorf("no share: %d", got)
	}
}

func TestRepeatCurve(t *testing.T) {
	// 10 customers with 1 order, 5 with 2, 2 with 3, 1 with 5.
	got := RepeatCurve(map[int64]int64{1: 10, 2: 5, 3: 2, 5: 1}, 10)
	want := []RepeatPoint{
		{1, 18, 8.0 / 18}, {2, 8, 3.0 / 8}, {3, 3, 1.0 / 3}, {4, 1, 1}, {5, 1, 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("curve %+v, want %+v", got, want)
	}
	if got := RepeatCurve(map[int64]int64{1: 10, 2: 5}, 1); len(got) != 1 {
		t.Errorf("max orders not respected: %+v", got)
	}
}

func TestPopulationAddRemove(t *testing.T) {
	pop := NewPopulation()
	a := Profile{Orders: 2, TotalValue: 500, Segment: Loyal, Prediction: &Prediction{CLV: 900}}
	b := Profile{Orders: 1, TotalValue: 100, Segment: New}
	pop.Add(&a, 1)
	pop.Add(&b, 1)
	moved := b
	moved.Orders, moved.TotalValue, moved.Segment = 2, 300, Loyal
	pop.Add(&b, -1)
	pop.Add(&moved, 1)
	want := &Population{Segments: map[Segment]SegmentStat{Loyal: {2, 800, 900}}, Orders: map[int64]int64{2: 2}}
	if !reflect.DeepEqual(pop, want) {
		t.Errorf("population %+v, want %+v", pop, want)
	}
}

func TestCLVDistribution(t *testing.T) {
	vals := make([]int64, 100)
	for i := range vals {
		vals[i] = int64(100 - i)
	}
	got := CLVDistribution(vals)
	want := []Quantile{{0.1, 10}, {0.25, 25}, {0.5, 50}, {0.75, 75}, {0.9, 90}, {0.99, 99}, {1, 100}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if CLVDistribution(nil) != nil {
		t.Error("empty distribution not nil")
	}
}

func TestAgonyStateApply(t *testing.T) {
	t1, t2 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		state  AgonyState
		mark   AgonyMark
		want   AgonyState
		effect bool
	}{
		{"first agony", AgonyState{}, AgonyMark{On: true, At: t1}, AgonyState{On: true, AsOf: t1}, true},
		{"newer clear", AgonyState{On: true, AsOf: t1}, AgonyMark{At: t2}, AgonyState{AsOf: t2}, true},
		{"older agony", AgonyState{AsOf: t2}, AgonyMark{On: true, At: t1}, AgonyState{AsOf: t2}, false},
		{"redelivered agony", AgonyState{On: true, AsOf: t1}, AgonyMark{On: true, At: t1}, AgonyState{On: true, AsOf: t1}, false},
		{"agony at the instant of a clear", AgonyState{AsOf: t1}, AgonyMark{On: true, At: t1}, AgonyState{On: true, AsOf: t1}, true},
		{"clear at the instant of agony", AgonyState{On: true, AsOf: t1}, AgonyMark{At: t1}, AgonyState{On: true, AsOf: t1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, effect := tt.state.Apply(tt.mark)
			if got.On != tt.want.On || !got.AsOf.Equal(tt.want.AsOf) || effect != tt.effect {
				t.Errorf("got %+v, %v; want %+v, %v", got, effect, tt.want, tt.effect)
			}
		})
	}
}
