package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// backends runs the contract suite against both databases.
var backends = testkit.Databases("segmentation.db")

func openStore(tb testing.TB, url string) *store.Store {
	tb.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	st, err := store.Open(ctx, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

var t0 = time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)

func paid(id, customer, order string, at time.Time, value int64) segment.Event {
	return segment.Event{ID: id, Kind: segment.Paid, CustomerID: customer, Source: "shop", OrderID: order, Channel: "web",
		OccurredAt: at, BaseTotal: value, Currency: "EUR"}
}

// countingRescorer scores by order count and emits one message per change,
// so that the tests see what the store hands it and writes.
func countingRescorer(calls *[]string) store.Rescorer {
	return perCustomer(countingScore(calls))
}

// perCustomer turns a function of one customer into a Rescorer.
func perCustomer(fn func(f *segment.Features, agony bool, old *segment.Score) (segment.Score, []outbox.Message)) store.Rescorer {
	return func(items []store.Rescore) ([]segment.Score, []outbox.Message) {
		var scores []segment.Score
		var msgs []outbox.Message
		for _, it := range items {
			sc, m := fn(it.Features, it.Agony, it.Old)
			scores = append(scores, sc)
			msgs = append(msgs, m...)
		}
		return scores, msgs
	}
}

func countingScore(calls *[]string) func(f *segment.Features, agony bool, old *segment.Score) (segment.Score, []outbox.Message) {
	return func(f *segment.Features, agony bool, old *segment.Score) (segment.Score, []outbox.Message) {
		*calls = append(*calls, f.CustomerID)
		sc := segment.Score{CustomerID: f.CustomerID, RFM: segment.RFM{R: 1, F: int(min(f.Orders, 5)), M: 1}, ScoredAt: t0}
		sc.Segment = segment.Of(sc.RFM)
		if agony {
			sc.Flags |= segment.Agony
		}
		if f.Orders > 0 {
			sc.Prediction = &segment.Prediction{ExpectedPurchases: 1.5, HorizonDays: 365, PAlive: 0.75, ExpectedOrderValue: 1234, CLV: 5678}
		}
		var msgs []outbox.Message
		if sc.Changed(old) {
			msgs = append(msgs, outbox.Message{ID: fmt.Sprintf("seg-%s-%d-%d", f.CustomerID, sc.Segment, sc.Flags), Subject: "test." + f.CustomerID, Data: []byte("x")})
		}
		return sc, msgs
	}
}

func outboxCount(tb testing.TB, st *store.Store) int {
	tb.Helper()
	var n int
	if err := st.DB().W.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM outbox").Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestStoreContract(t *testing.T) {
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			t.Run("apply", func(t *testing.T) { testApply(t, openStore(t, be.URL(t))) })
			t.Run("idempotent", func(t *testing.T) { testIdempotent(t, openStore(t, be.URL(t))) })
			t.Run("runs and models", func(t *testing.T) { testRun(t, openStore(t, be.URL(t))) })
			t.Run("agony", func(t *testing.T) { testAgony(t, openStore(t, be.URL(t))) })
			t.Run("agony marks", func(t *testing.T) { testAgonyMarks(t, openStore(t, be.URL(t))) })
			t.Run("large batch", func(t *testing.T) { testLargeBatch(t, openStore(t, be.URL(t))) })
			t.Run("awkward text", func(t *testing.T) { testAwkwardText(t, openStore(t, be.URL(t))) })
			t.Run("concurrent stores", func(t *testing.T) {
				url := be.URL(t)
				testConcurrent(t, openStore(t, url), openStore(t, url))
			})
		})
	}
}

func testApply(t *testing.T, st *store.Store) {
	ctx := context.Background()
	var calls []string
	b1 := store.Batch{Now: t0, Events: []segment.Event{
		paid("e1", "alice", "o1", t0, 5000),
		paid("e2", "bob", "o2", t0, 700),
		paid("e3", "alice", "o3", t0.AddDate(0, 0, 3), 3000),
		// In order within the batch: the refund sees the order paid above.
		{ID: "e4", Kind: segment.Refunded, CustomerID: "alice", Source: "shop", OrderID: "o3", RefundedTotal: 1000},
	}}
	ups, applied, err := store.ApplyWith(ctx, st, b1, countingRescorer(&calls))
	if err != nil {
		t.Fatal(err)
	}
	if applied != 4 || len(ups) != 2 || !reflect.DeepEqual(calls, []string{"alice", "bob"}) {
		t.Fatalf("applied %d, updates %d, rescored %v", applied, len(ups), calls)
	}
	if outboxCount(t, st) != 2 {
		t.Errorf("outbox has %d messages, want 2", outboxCount(t, st))
	}
	// A later batch sees the orders and scores of the first: a cancellation
	// takes back exactly the order, and the rescorer gets the old score.
	var old *segment.Score
	_, _, err = store.ApplyWith(ctx, st, store.Batch{Now: t0, Events: []segment.Event{
		{ID: "e5", Kind: segment.Cancelled, CustomerID: "alice", Source: "shop", OrderID: "o1"},
	}}, perCustomer(func(f *segment.Features, agony bool, o *segment.Score) (segment.Score, []outbox.Message) {
		old = o
		return countingScore(&calls)(f, agony, o)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if old == nil || old.RFM.F != 2 || old.Prediction == nil || old.Prediction.CLV != 5678 {
		t.Errorf("old score %+v", old)
	}
	cs, err := st.Customers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Fatalf("%d customers", len(cs))
	}
	a := cs[0].Features
	if a.CustomerID != "alice" || a.Orders != 1 || a.TotalValue != 2000 || a.Refunds != 1 || a.RefundedValue != 1000 ||
		len(a.Days) != 1 || a.Days[0].Day != segment.DayNumber(t0.AddDate(0, 0, 3)) || !reflect.DeepEqual(a.Channels, map[string]int64{"web": 1}) {
		t.Errorf("alice %+v", a)
	}
	if cs[0].Score == nil || cs[0].Score.RFM.F != 1 || cs[1].Score == nil || cs[1].Score.Segment != segment.Lost {
		t.Errorf("scores %+v %+v", cs[0].Score, cs[1].Score)
	}
	if !cs[0].Score.ScoredAt.Equal(t0) {
		t.Errorf("scored at %v", cs[0].Score.ScoredAt)
	}
}

func testIdempotent(t *testing.T, st *store.Store) {
	ctx := context.Background()
	var calls []string
	b := store.Batch{Now: t0, Events: []segment.Event{
		paid("e1", "alice", "o1", t0, 5000),
		paid("e1", "alice", "o1", t0, 5000), // duplicate publish inside the batch
		paid("e2", "alice", "o2", t0.AddDate(0, 0, 1), 1000),
	}}
	if _, applied, err := store.ApplyWith(ctx, st, b, countingRescorer(&calls)); err != nil || applied != 2 {
		t.Fatalf("applied %d, %v", applied, err)
	}
	before, _ := st.Customers(ctx)
	ups, applied, err := store.ApplyWith(ctx, st, b, countingRescorer(&calls))
	if err != nil || applied != 0 || len(ups) != 0 {
		t.Fatalf("redelivery applied %d, updated %d, %v", applied, len(ups), err)
	}
	after, _ := st.Customers(ctx)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("redelivery changed state:\n%+v\n%+v", before[0].Features, after[0].Features)
	}
	if after[0].Features.Orders != 2 || after[0].Features.TotalValue != 6000 {
		t.Errorf("features %+v", after[0].Features)
	}
	// A failed transaction leaves nothing behind.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := store.ApplyWith(cctx, st, store.Batch{Now: t0, Events: []segment.Event{paid("e9", "carol", "o9", t0, 1)}}, countingRescorer(&calls)); err == nil {
		t.Fatal("apply with a cancelled context succeeded")
	}
	if cs, _ := st.Customers(ctx); len(cs) != 1 {
		t.Errorf("failed batch left %d customers", len(cs))
	}
}

func testRun(t *testing.T, st *store.Store) {
	ctx := context.Background()
	if _, err := st.LoadState(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("state before any run: %v", err)
	}
	if _, err := st.LatestModel(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("model before any fit: %v", err)
	}
	var calls []string
	if _, _, err := store.ApplyWith(ctx, st, store.Batch{Now: t0, Events: []segment.Event{paid("e1", "alice", "o1", t0, 5000)}}, countingRescorer(&calls)); err != nil {
		t.Fatal(err)
	}
	state := store.State{ScoredAt: t0, VIPThreshold: 99, VIPByCLV: true,
		Boundaries: segment.Boundaries{Recency: segment.Quintiles{1, 2, 3, 4}, Customers: 1},
		CLV:        []segment.Quantile{{Q: 0.5, Value: 10}}}
	// Values that only survive a round trip exactly.
	pred := &segment.Prediction{ExpectedPurchases: 1.0 / 3, HorizonDays: 365, PAlive: 0.1 + 0.2, ExpectedOrderValue: 1 << 40, CLV: -(1 << 50),
		Interval: true, PurchasesLow: 0.1 + 0.7, PurchasesHigh: math.Nextafter(2, 3), CLVLow: -(1 << 51), CLVHigh: 1<<62 + 1}
	for i, fitted := range []time.Time{t0, t0.Add(time.Hour)} {
		model := json.RawMessage(fmt.Sprintf(`{"fit":%d}`, i))
		err := st.SaveRun(ctx, store.Run{State: state, Now: fitted, Model: &store.ModelRecord{FittedAt: fitted, Customers: 1, Model: model},
			Scores: []segment.Score{{CustomerID: "alice", RFM: segment.RFM{R: 5, F: 5, M: 5}, Segment: segment.Champions, Flags: segment.VIP, ScoredAt: fitted,
				Prediction: pred}},
			Messages: []outbox.Message{{ID: fmt.Sprintf("run-%d", i), Subject: "test.alice", Data: []byte("x")}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.LoadState(ctx)
	if err != nil || !reflect.DeepEqual(got, state) {
		t.Errorf("state %+v, %v; want %+v", got, err, state)
	}
	m, err := st.LatestModel(ctx)
	if err != nil || !m.FittedAt.Equal(t0.Add(time.Hour)) || string(m.Model) != `{"fit":1}` || m.Customers != 1 {
		t.Errorf("latest model %+v %s, %v", m, m.Model, err)
	}
	cs, _ := st.Customers(ctx)
	if cs[0].Score.Segment != segment.Champions || cs[0].Score.Flags != segment.VIP || cs[0].Score.Prediction == nil || *cs[0].Score.Prediction != *pred {
		t.Errorf("score after run %+v", cs[0].Score)
	}
	if n := outboxCount(t, st); n != 3 {
		t.Errorf("outbox %d, want 3", n)
	}
}

func testAgony(t *testing.T, st *store.Store) {
	ctx := context.Background()
	var calls []string
	if _, err := store.SetAgonyWith(ctx, st, "nobody", true, t0, countingRescorer(&calls)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("agony of an unknown customer: %v", err)
	}
	if _, _, err := store.ApplyWith(ctx, st, store.Batch{Now: t0, Events: []segment.Event{paid("e1", "alice", "o1", t0, 5000)}}, countingRescorer(&calls)); err != nil {
		t.Fatal(err)
	}
	u, err := store.SetAgonyWith(ctx, st, "alice", true, t0, countingRescorer(&calls))
	if err != nil || u.New.Flags&segment.Agony == 0 || u.Old == nil || u.Old.Flags&segment.Agony != 0 {
		t.Fatalf("set agony: %+v, %v", u, err)
	}
	// Agony survives later order events.
	if _, _, err := store.ApplyWith(ctx, st, store.Batch{Now: t0, Events: []segment.Event{paid("e2", "alice", "o2", t0, 100)}}, countingRescorer(&calls)); err != nil {
		t.Fatal(err)
	}
	cs, _ := st.Customers(ctx)
	if !cs[0].Agony || cs[0].Score.Flags&segment.Agony == 0 {
		t.Errorf("agony lost: %+v %+v", cs[0].Agony, cs[0].Score)
	}
}

// testAgonyMarks: the feedback service's marks set and clear agony, only
// forward in time; a mark for a customer without orders waits for their
// first order; dead letters ride along.
func testAgonyMarks(t *testing.T, st *store.Store) {
	ctx := context.Background()
	var calls []string
	if _, _, err := store.ApplyWith(ctx, st, store.Batch{Now: t0, Events: []segment.Event{paid("e1", "alice", "o1", t0, 5000)}}, countingRescorer(&calls)); err != nil {
		t.Fatal(err)
	}
	mark := func(id, c string, on bool, at time.Time) segment.AgonyMark {
		return segment.AgonyMark{EventID: id, CustomerID: c, On: on, At: at}
	}
	agonyOf := func(c string) bool {
		t.Helper()
		cs, err := st.Customers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range cs {
			if x.Features.CustomerID == c {
				if x.Agony != (x.Score.Flags&segment.Agony != 0) {
					t.Errorf("%s: agony %v, score flags %v", c, x.Agony, x.Score.Flags)
				}
				return x.Agony
			}
		}
		t.Fatalf("%s not found", c)
		return false
	}
	tests := []struct {
		name            string
		marks           []segment.AgonyMark
		applied, update int
		alice           bool
	}{
		{"agony", []segment.AgonyMark{mark("a1", "alice", true, t0.Add(time.Hour)), mark("b1", "bob", true, t0.Add(time.Hour))}, 2, 1, true},
		{"redelivered", []segment.AgonyMark{mark("a1", "alice", true, t0.Add(time.Hour))}, 0, 0, true},
		{"recovered", []segment.AgonyMark{mark("r1", "alice", false, t0.Add(2*time.Hour))}, 1, 1, false},
		{"old agony replayed", []segment.AgonyMark{mark("a1", "alice", true, t0.Add(time.Hour))}, 0, 0, false},
		{"in one batch, time wins", []segment.AgonyMark{mark("r2", "alice", false, t0.Add(4*time.Hour)), mark("a2", "alice", true, t0.Add(3*time.Hour))}, 1, 0, false},
		{"same instant, agony wins", []segment.AgonyMark{mark("a3", "alice", true, t0.Add(4*time.Hour))}, 1, 1, true},
	}
	for _, tt := range tests {
		calls = nil
		ups, applied, err := store.MarkAgonyWith(ctx, st, store.AgonyBatch{Now: t0, Marks: tt.marks}, countingRescorer(&calls))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if applied != tt.applied || len(ups) != tt.update || agonyOf("alice") != tt.alice {
			t.Errorf("%s: applied %d, updates %d, alice agony %v; want %d, %d, %v", tt.name, applied, len(ups), agonyOf("alice"), tt.applied, tt.update, tt.alice)
		}
	}
	before := outboxCount(t, st)
	dead := outbox.Message{ID: "dlq-1", Subject: "boomerang.deadletter.segmentation.feedback_agony", Data: []byte("x")}
	if _, _, err := store.MarkAgonyWith(ctx, st, store.AgonyBatch{Now: t0, Extra: []outbox.Message{dead}}, countingRescorer(&calls)); err != nil {
		t.Fatal(err)
	}
	if n := outboxCount(t, st); n != before+1 {
		t.Errorf("outbox %d, want %d", n, before+1)
	}
	// Bob had no orders when his agony came; his first order carries it.
	if _, _, err := store.ApplyWith(ctx, st, store.Batch{Now: t0, Events: []segment.Event{paid("e2", "bob", "o2", t0, 100)}}, countingRescorer(&calls)); err != nil {
		t.Fatal(err)
	}
	if !agonyOf("bob") {
		t.Error("bob's agony reported before his first order was lost")
	}
}

func testLargeBatch(t *testing.T, st *store.Store) {
	ctx := context.Background()
	var evs []segment.Event
	for i := 0; i < 3000; i++ {
		c := fmt.Sprintf("c%04d", i%700)
		evs = append(evs, paid(fmt.Sprintf("e%d", i), c, fmt.Sprintf("o%d", i), t0.AddDate(0, 0, i%40), int64(100+i)))
	}
	var calls []string
	ups, applied, err := store.ApplyWith(ctx, st, store.Batch{Now: t0, Events: evs}, countingRescorer(&calls))
	if err != nil || applied != 3000 || len(ups) != 700 {
		t.Fatalf("applied %d, updates %d, %v", applied, len(ups), err)
	}
	cs, err := st.Customers(ctx)
	if err != nil || len(cs) != 700 {
		t.Fatalf("%d customers, %v", len(cs), err)
	}
	var orders int64
	for _, c := range cs {
		orders += c.Features.Orders
		for i := 1; i < len(c.Features.Days); i++ {
			if c.Features.Days[i].Day <= c.Features.Days[i-1].Day {
				t.Fatalf("%s days out of order: %+v", c.Features.CustomerID, c.Features.Days)
			}
		}
	}
	if orders != 3000 {
		t.Errorf("orders %d, want 3000", orders)
	}
}

// testConcurrent applies interleaved and overlapping batches through two
// stores on one database at once (two replicas): every event counts once.
func testConcurrent(t *testing.T, a, b *store.Store) {
	ctx := context.Background()
	const events, customers = 1200, 30
	var all []segment.Event
	want := map[string]int64{}
	for i := 0; i < events; i++ {
		c := fmt.Sprintf("c%02d", i%customers)
		want[c] += int64(i + 1)
		all = append(all, paid(fmt.Sprintf("e%d", i), c, fmt.Sprintf("o%d", i), t0.Add(time.Duration(i)*time.Hour), int64(i+1)))
	}
	errs := make(chan error, 2)
	for w, st := range []*store.Store{a, b} {
		go func() {
			var calls []string
			// Each store takes every batch of 40, the second in reverse
			// order, so they race on the same new customers and events.
			for k := 0; k < events/40; k++ {
				j := k
				if w == 1 {
					j = events/40 - 1 - k
				}
				if _, _, err := store.ApplyWith(ctx, st, store.Batch{Now: t0, Events: all[j*40 : (j+1)*40]}, countingRescorer(&calls)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	cs, err := a.Customers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != customers {
		t.Fatalf("%d customers", len(cs))
	}
	for _, c := range cs {
		if f := c.Features; f.Orders != events/customers || f.TotalValue != want[f.CustomerID] {
			t.Errorf("%s: %d orders, value %d; want %d, %d", f.CustomerID, f.Orders, f.TotalValue, events/customers, want[f.CustomerID])
		}
	}
}

// testAwkwardText: ids and channels with the characters that quote, escape
// or separate values in SQL and in PostgreSQL's array literals survive a
// batch, a scoring run and an agony mark unchanged.
func testAwkwardText(t *testing.T, st *store.Store) {
	ctx := context.Background()
	ids := []string{`we"ird`, `back\slash`, `com,ma`, `{braces}`, `sp ace`, `NULL`, `'quote`, `ünï`}
	var evs []segment.Event
	for i, id := range ids {
		ev := paid(fmt.Sprintf("e-%s", id), id, "o-"+id, t0, int64(100+i))
		ev.Channel = id
		evs = append(evs, ev)
	}
	var calls []string
	if _, applied, err := store.ApplyWith(ctx, st, store.Batch{Now: t0, Events: evs}, countingRescorer(&calls)); err != nil || applied != len(ids) {
		t.Fatalf("applied %d, %v", applied, err)
	}
	// Redelivered: every id is found again.
	if _, applied, err := store.ApplyWith(ctx, st, store.Batch{Now: t0, Events: evs}, countingRescorer(&calls)); err != nil || applied != 0 {
		t.Fatalf("redelivery applied %d, %v", applied, err)
	}
	scores := make([]segment.Score, len(ids))
	for i, id := range ids {
		scores[i] = segment.Score{CustomerID: id, Segment: segment.Loyal, ScoredAt: t0}
	}
	if err := st.SaveRun(ctx, store.Run{Now: t0, Scores: scores}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.MarkAgonyWith(ctx, st, store.AgonyBatch{Now: t0, Marks: []segment.AgonyMark{{EventID: "a", CustomerID: ids[0], On: true, At: t0}}},
		countingRescorer(&calls)); err != nil {
		t.Fatal(err)
	}
	cs, err := st.Customers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]segment.Customer{}
	for _, c := range cs {
		got[c.Features.CustomerID] = c
	}
	for i, id := range ids {
		c, ok := got[id]
		if !ok || c.Features.TotalValue != int64(100+i) || !reflect.DeepEqual(c.Features.Channels, map[string]int64{id: 1}) || c.Score == nil {
			t.Errorf("%q: %+v", id, c)
			continue
		}
		if want := segment.Loyal; i > 0 && c.Score.Segment != want {
			t.Errorf("%q: segment %v, want %v", id, c.Score.Segment, want)
		}
		if agony := i == 0; c.Agony != agony {
			t.Errorf("%q: agony %v, want %v", id, c.Agony, agony)
		}
	}
}
