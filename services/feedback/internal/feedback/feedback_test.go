package feedback

import (
	"errors"
	"testing"
	"time"
)

func tallyOf(k Kind, scores ...int) Tally {
	var t Tally
	for _, s := range scores {
		t.Add(k, s, 1)
	}
	return t
}

func TestNetPromoterScore(t *testing.T) {
	tests := []struct {
		name   string
		scores []int
		want   float64
		ok     bool
	}{
		{"no responses", nil, 0, false},
		{"all passives", []int{7, 8, 7, 8}, 0, true},
		{"all promoters", []int{9, 10, 10}, 100, true},
		{"all detractors", []int{0, 6, 3}, -100, true},
		{"boundaries", []int{6, 7, 8, 9}, 0, true},
		{"mixed", []int{10, 10, 10, 9, 8, 0, 5, 7}, 25, true}, // 4 promoters, 2 detractors of 8
		{"one detractor", []int{6}, -100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tallyOf(NPS, tt.scores...).NetPromoterScore()
			if got != tt.want || ok != tt.ok {
				t.Errorf("NPS(%v) = %v, %v; want %v, %v", tt.scores, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestCSATAndCES(t *testing.T) {
	tests := []struct {
		name        string
		kind        Kind
		scores      []int
		share, mean float64
		ok          bool
	}{
		{"csat none", CSAT, nil, 0, 0, false},
		{"csat mixed", CSAT, []int{5, 4, 3, 1}, 0.5, 3.25, true},
		{"csat all satisfied", CSAT, []int{4, 5}, 1, 4.5, true},
		{"ces none", CES, nil, 0, 0, false},
		{"ces", CES, []int{1, 7, 4}, 0, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := tallyOf(tt.kind, tt.scores...)
			var mean, share float64
			var ok bool
			if tt.kind == CSAT {
				share, ok = tl.CSATShare()
				mean, _ = tl.CSATMean()
			} else {
				mean, ok = tl.CESMean()
			}
			if share != tt.share || mean != tt.mean || ok != tt.ok {
				t.Errorf("got share %v mean %v ok %v; want %v %v %v", share, mean, ok, tt.share, tt.mean, tt.ok)
			}
		})
	}
}

func TestTallyMergeAndWeights(t *testing.T) {
	var a Tally
	a.Add(NPS, 10, 3)
	a.Add(NPS, 2, 1)
	b := tallyOf(NPS, 8)
	a.Merge(b)
	if got, _ := a.NetPromoterScore(); got != 40 {
		t.Errorf("NPS = %v, want 40 (3 promoters, 1 detractor of 5)", got)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		kind  Kind
		score int
		err   error
	}{
		{"nps 0", NPS, 0, nil},
		{"nps 10", NPS, 10, nil},
		{"nps 11", NPS, 11, ErrScoreOutOfRange},
		{"nps -1", NPS, -1, ErrScoreOutOfRange},
		{"csat 0", CSAT, 0, ErrScoreOutOfRange},
		{"csat 5", CSAT, 5, nil},
		{"csat 6", CSAT, 6, ErrScoreOutOfRange},
		{"ces 7", CES, 7, nil},
		{"ces 8", CES, 8, ErrScoreOutOfRange},
		{"unknown kind", Kind(9), 1, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.kind.Check(tt.score); !errors.Is(err, tt.err) && !(err == nil && tt.err == nil) {
				t.Errorf("Check(%d) = %v, want %v", tt.score, err, tt.err)
			}
		})
	}
}

func TestAgonyRules(t *testing.T) {
	for score := 0; score <= 10; score++ {
		if got, want := Detractor(Response{Kind: NPS, Score: score}), score <= 6; got != want {
			t.Errorf("NPS %d detractor = %v, want %v", score, got, want)
		}
	}
	if Detractor(Response{Kind: CSAT, Score: 1}) {
		t.Error("a CSAT of 1 is not an NPS detractor")
	}
	for rating := 1; rating <= 5; rating++ {
		if got, want := Negative(rating), rating <= 2; got != want {
			t.Errorf("review %d negative = %v, want %v", rating, got, want)
		}
	}
}

func TestSlowFirstResponse(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	const threshold = 6 * time.Hour
	ev := func(k TicketEventKind, after time.Duration) TicketEvent {
		return TicketEvent{ID: "e", TicketID: "T-1", CustomerID: "c", Kind: k, At: t0.Add(after)}
	}
	tests := []struct {
		name   string
		events []TicketEvent
		now    time.Duration
		want   bool
	}{
		{"unanswered within threshold", []TicketEvent{ev(TicketOpened, 0)}, 5 * time.Hour, false},
		{"unanswered exactly at threshold", []TicketEvent{ev(TicketOpened, 0)}, 6 * time.Hour, false},
		{"unanswered past threshold (sweep)", []TicketEvent{ev(TicketOpened, 0)}, 6*time.Hour + time.Second, true},
		{"answered in time", []TicketEvent{ev(TicketOpened, 0), ev(TicketFirstResponse, time.Hour)}, 48 * time.Hour, false},
		{"answered late", []TicketEvent{ev(TicketOpened, 0), ev(TicketFirstResponse, 7*time.Hour)}, 7 * time.Hour, true},
		{"resolved in time without a response", []TicketEvent{ev(TicketOpened, 0), ev(TicketResolved, time.Hour)}, 48 * time.Hour, false},
		{"response before opening arrives", []TicketEvent{ev(TicketFirstResponse, time.Hour), ev(TicketOpened, 0)}, 48 * time.Hour, false},
		{"no opening seen", []TicketEvent{ev(TicketFirstResponse, 10*time.Hour)}, 48 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := &Ticket{}
			for _, e := range tt.events {
				tk.Apply(e)
			}
			if got := tk.SlowFirstResponse(t0.Add(tt.now), threshold); got != tt.want {
				t.Errorf("SlowFirstResponse = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("raised once", func(t *testing.T) {
		tk := &Ticket{}
		tk.Apply(ev(TicketOpened, 0))
		c := tk.OpenCase(t0.Add(7 * time.Hour))
		if c.ID != "slow:T-1" || c.Reason != SlowFirstResponse || c.CustomerID != "c" {
			t.Errorf("case %+v", c)
		}
		if tk.SlowFirstResponse(t0.Add(24*time.Hour), threshold) {
			t.Error("a ticket's agony is raised once")
		}
	})
}

func TestReopen(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	tk := &Ticket{}
	tk.Apply(TicketEvent{TicketID: "T", Kind: TicketOpened, At: t0})
	tk.Apply(TicketEvent{TicketID: "T", Kind: TicketResolved, At: t0.Add(time.Hour)})
	tk.Apply(TicketEvent{TicketID: "T", Kind: TicketReopened, At: t0.Add(2 * time.Hour)})
	if !tk.Resolved().IsZero() || tk.Reopens != 1 {
		t.Errorf("reopened ticket %+v", tk)
	}
	if !tk.Answered().Equal(t0.Add(time.Hour)) || tk.SlowFirstResponse(t0.Add(24*time.Hour), 6*time.Hour) {
		t.Errorf("reopened ticket answered at %v; want the first resolution, not slow", tk.Answered())
	}
	tk.Apply(TicketEvent{TicketID: "T", Kind: TicketResolved, At: t0.Add(3 * time.Hour)})
	if !tk.Resolved().Equal(t0.Add(3 * time.Hour)) {
		t.Errorf("resolved at %v", tk.Resolved())
	}
}

// TestTicketEventsInAnyOrder: every order of delivery of the same events
// folds to the same ticket.
func TestTicketEventsInAnyOrder(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	ev := func(k TicketEventKind, h int) TicketEvent {
		return TicketEvent{TicketID: "T", Kind: k, At: t0.Add(time.Duration(h) * time.Hour)}
	}
	histories := map[string][]TicketEvent{
		"resolved, reopened":           {ev(TicketOpened, 0), ev(TicketResolved, 1), ev(TicketReopened, 2)},
		"resolved, reopened, resolved": {ev(TicketOpened, 0), ev(TicketFirstResponse, 1), ev(TicketResolved, 2), ev(TicketReopened, 3), ev(TicketResolved, 4)},
	}
	for name, evs := range histories {
		var want *Ticket
		permute(evs, func(order []TicketEvent) {
			tk := &Ticket{}
			for _, e := range order {
				tk.Apply(e)
			}
			if want == nil {
				want = tk
				return
			}
			if !tk.Resolved().Equal(want.Resolved()) || !tk.Answered().Equal(want.Answered()) || !tk.OpenedAt.Equal(want.OpenedAt) || tk.Reopens != want.Reopens {
				t.Errorf("%s: delivered as %v: resolved %v, answered %v; in order: resolved %v, answered %v",
					name, kinds(order), tk.Resolved(), tk.Answered(), want.Resolved(), want.Answered())
			}
		})
	}
}

func permute(evs []TicketEvent, fn func([]TicketEvent)) {
	var rec func(k int)
	rec = func(k int) {
		if k == len(evs) {
			fn(evs)
			return
		}
		for i := k; i < len(evs); i++ {
			evs[k], evs[i] = evs[i], evs[k]
			rec(k + 1)
			evs[k], evs[i] = evs[i], evs[k]
		}
	}
	rec(0)
}

func kinds(evs []TicketEvent) []TicketEventKind {
	out := make([]TicketEventKind, len(evs))
	for i, e := range evs {
		out[i] = e.Kind
	}
	return out
}

func TestCase(t *testing.T) {
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	const ttl = time.Hour
	c := Case{ID: "nps:r1"}
	if err := c.Claim("ann", now, ttl); err != nil {
		t.Fatal(err)
	}
	if err := c.Claim("ann", now.Add(time.Minute), ttl); err != nil || !c.ClaimedAt.Equal(now.Add(time.Minute)) {
		t.Errorf("claim again by the same agent renews the claim: %v, %v", err, c.ClaimedAt)
	}
	if err := c.Claim("bob", now.Add(30*time.Minute), ttl); !errors.Is(err, ErrClaimed) {
		t.Errorf("claim by another: %v", err)
	}
	if err := c.Resolve("bob", Recovered, "called", now.Add(30*time.Minute), ttl); !errors.Is(err, ErrClaimed) || !c.ResolvedAt.IsZero() {
		t.Errorf("resolve by another agent while ann's claim holds: %v, resolved at %v", err, c.ResolvedAt)
	}
	if err := c.Resolve("ann", Outcome(9), "", now, ttl); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown outcome: %v", err)
	}
	if err := c.Resolve("ann", Recovered, "called", now.Add(2*time.Minute), ttl); err != nil {
		t.Fatal(err)
	}
	if c.ClaimedBy != "ann" || c.Outcome != Recovered || !c.ResolvedAt.Equal(now.Add(2*time.Minute)) {
		t.Errorf("resolved case: %+v", c)
	}
	if err := c.Resolve("ann", Lost, "", now, ttl); !errors.Is(err, ErrResolved) {
		t.Errorf("resolve twice: %v", err)
	}
	if err := c.Claim("ann", now, ttl); !errors.Is(err, ErrResolved) {
		t.Errorf("claim resolved: %v", err)
	}
}

func TestCaseClaimLapses(t *testing.T) {
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	c := Case{ID: "slow:desk/T-1"}
	if err := c.Claim("ann", now, time.Hour); err != nil {
		t.Fatal(err)
	}
	// An hour later ann's claim has lapsed: bob may take the case over.
	if err := c.Claim("bob", now.Add(time.Hour), time.Hour); err != nil || c.ClaimedBy != "bob" {
		t.Fatalf("take over a lapsed claim: %v, claimed by %q", err, c.ClaimedBy)
	}
	// With claims that never lapse, nobody may.
	if err := c.Claim("ann", now.Add(1000*time.Hour), 0); !errors.Is(err, ErrClaimed) {
		t.Errorf("claims without a lapse: %v", err)
	}
	// An unclaimed case is claimed by whoever resolves it.
	u := Case{ID: "nps:survey/r2"}
	if err := u.Resolve("carl", NoAnswer, "", now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if u.ClaimedBy != "carl" || !u.ClaimedAt.Equal(now) {
		t.Errorf("resolved unclaimed case: claimed by %q at %v", u.ClaimedBy, u.ClaimedAt)
	}
	if err := (&Case{}).Resolve("", Lost, "", now, time.Hour); !errors.Is(err, ErrInvalid) {
		t.Errorf("resolve without an agent: %v", err)
	}
}

func TestPeriodStart(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	ny, _ := time.LoadLocation("America/New_York")
	// 2026-11-01 20:30 UTC is Monday 05:30 in Tokyo and Sunday 15:30 in New York.
	at := time.Date(2026, 11, 1, 20, 30, 0, 0, time.UTC)
	tests := []struct {
		name string
		g    Granularity
		loc  *time.Location
		want time.Time
	}{
		{"day utc", Day, time.UTC, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"day tokyo", Day, tokyo, time.Date(2026, 11, 2, 0, 0, 0, 0, tokyo)},
		{"week tokyo", Week, tokyo, time.Date(2026, 11, 2, 0, 0, 0, 0, tokyo)},
		{"week new york", Week, ny, time.Date(2026, 10, 26, 0, 0, 0, 0, ny)},
		{"month new york", Month, ny, time.Date(2026, 11, 1, 0, 0, 0, 0, ny)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PeriodStart(at, tt.g, tt.loc); !got.Equal(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Minute)
	}
	got := Percentiles(ds, 50, 90, 99)
	want := []time.Duration{50 * time.Minute, 90 * time.Minute, 99 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("p%d = %v, want %v", i, got[i], want[i])
		}
	}
	if got := Percentiles(nil, 50); got[0] != 0 {
		t.Errorf("empty: %v", got)
	}
	if got := Percentiles([]time.Duration{time.Second}, 50, 99); got[0] != time.Second || got[1] != time.Second {
		t.Errorf("one: %v", got)
	}
}
