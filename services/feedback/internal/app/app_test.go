package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// backends are the databases the use cases run on.
var backends = testkit.Databases("feedback.db")

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

const threshold = 6 * time.Hour

// fixture is a store and the use cases over it.
type fixture struct {
	*store.Store
	app *app.App
}

func openStore(tb testing.TB, url string, c *testkit.Clock, zones ...string) *fixture {
	tb.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, db, store.Options{Encode: bus.Encode, Now: c.Now, ScoreZones: zones, Log: log})
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{Store: st, app: app.New(st, nil, app.Options{Now: c.Now, FirstResponseThreshold: threshold}, log)}
}

func survey(id, customer string, k feedback.Kind, score int, at time.Time) feedback.Input {
	return feedback.Input{Response: &feedback.Response{ID: id, CustomerID: customer, Kind: k, Score: score, Channel: "email", Comment: "free text", At: at}}
}

func review(platform, id, customer string, rating int, created time.Time) feedback.Input {
	return feedback.Input{Review: &feedback.Review{ID: id, Platform: platform, CustomerID: customer, Rating: rating, Text: "text", Product: "SKU-1", CreatedAt: created}}
}

func ticket(id, ticketID, customer string, k feedback.TicketEventKind, at time.Time) feedback.Input {
	return feedback.Input{Ticket: &feedback.TicketEvent{ID: id, TicketID: ticketID, CustomerID: customer, Kind: k, Channel: "chat", At: at}}
}

func intake(tb testing.TB, st *fixture, profiles map[string]feedback.Profile, in ...feedback.Input) app.Result {
	tb.Helper()
	res, err := st.app.RecordWith(context.Background(), in, profiles, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

func outboxSubjects(tb testing.TB, st *fixture) []string {
	tb.Helper()
	rows, err := st.DB().R.QueryContext(context.Background(), "SELECT subject FROM outbox ORDER BY seq")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func tally(tb testing.TB, st *fixture, from, to time.Time, segment int) feedback.Tally {
	tb.Helper()
	bs, err := st.Scores(context.Background(), from, to, time.Unix(0, 0), time.Hour, segment)
	if err != nil {
		tb.Fatal(err)
	}
	var t feedback.Tally
	for _, b := range bs {
		b.Tally(&t)
	}
	return t
}

// TestUseCases runs the use cases over the store on every database.
func TestUseCases(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Run("responses are stored once and counted in the rollup", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				profiles := map[string]feedback.Profile{"ann": {Segment: 1, CLV: 500_00, Currency: "EUR"}, "bob": {Segment: 6, CLV: 20_00, Currency: "EUR"}}
				batch := []feedback.Input{
					survey("r1", "ann", feedback.NPS, 10, t0),
					survey("r2", "ann", feedback.NPS, 8, t0.Add(time.Minute)),
					survey("r3", "bob", feedback.NPS, 3, t0.Add(2*time.Hour)),
					survey("r4", "bob", feedback.CSAT, 5, t0),
					survey("r5", "bob", feedback.CSAT, 2, t0),
					survey("r6", "ann", feedback.CES, 3, t0),
					survey("r1", "ann", feedback.NPS, 10, t0), // the same response twice in one batch
				}
				res := intake(t, st, profiles, batch...)
				for i, want := range []feedback.InputOutcome{feedback.Applied, feedback.Applied, feedback.Applied, feedback.Applied, feedback.Applied, feedback.Applied, feedback.Duplicate} {
					if res.Outcomes[i] != want {
						t.Errorf("input %d: outcome %v, want %v", i, res.Outcomes[i], want)
					}
				}
				if len(res.Cases) != 1 || res.Cases[0].ID != "nps:r3" || res.Cases[0].Reason != feedback.NPSDetractor {
					t.Errorf("cases %+v, want the detractor's", res.Cases)
				}
				again := intake(t, st, profiles, batch...)
				for i, o := range again.Outcomes {
					if o != feedback.Duplicate {
						t.Errorf("redelivered input %d: %v", i, o)
					}
				}
				if len(again.Cases) != 0 {
					t.Errorf("redelivery opened cases %+v", again.Cases)
				}
				all := tally(t, st, t0.Add(-time.Hour), t0.Add(24*time.Hour), 0)
				want := feedback.Tally{NPS: 3, Promoters: 1, Detractors: 1, CSAT: 2, Satisfied: 1, CSATSum: 7, CES: 1, CESSum: 3}
				if all != want {
					t.Errorf("tally %+v, want %+v", all, want)
				}
				if got := tally(t, st, t0.Add(-time.Hour), t0.Add(24*time.Hour), 6); got.NPS != 1 || got.Detractors != 1 || got.CSAT != 2 {
					t.Errorf("bob's segment %+v", got)
				}
				if got := tally(t, st, t0, t0.Add(time.Hour), 0); got.NPS != 2 {
					t.Errorf("first hour: %d NPS responses, want 2", got.NPS)
				}
				if subj := outboxSubjects(t, st); len(subj) != 1 || subj[0] != "boomerang.feedback.v1.agony.bob" {
					t.Errorf("outbox %v", subj)
				}
			})

			t.Run("a segment segmentation could not tell is filled in later", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				intake(t, st, nil, survey("r1", "cat", feedback.NPS, 9, t0), survey("r2", "cat", feedback.CSAT, 4, t0))
				pend, err := st.PendingCustomers(context.Background(), 10)
				if err != nil || len(pend) != 1 || pend[0].ID != "cat" {
					t.Fatalf("pending %v %v", pend, err)
				}
				if got := tally(t, st, t0, t0.Add(time.Hour), 0); got.NPS != 1 || got.CSAT != 1 {
					t.Errorf("counted before the segment is known: %+v", got)
				}
				if err := st.app.RecordProfiles(context.Background(), map[string]feedback.Profile{"cat": {Segment: 8, CLV: 99_00, Currency: "EUR"}}); err != nil {
					t.Fatal(err)
				}
				if got := tally(t, st, t0, t0.Add(time.Hour), 8); got.NPS != 1 || got.Promoters != 1 || got.CSAT != 1 {
					t.Errorf("segment 8 after the fill: %+v", got)
				}
				if got := tally(t, st, t0, t0.Add(time.Hour), 0); got.NPS != 1 {
					t.Errorf("moved, not copied: %+v", got)
				}
				bs, _ := st.Scores(context.Background(), t0, t0.Add(time.Hour), time.Unix(0, 0), time.Hour, 0)
				for _, b := range bs {
					if b.Segment == 0 {
						t.Errorf("an empty bucket is still reported: %+v", b)
					}
				}
				if pend, _ := st.PendingCustomers(context.Background(), 10); len(pend) != 0 {
					t.Errorf("still pending %v", pend)
				}
				// Later responses take the known segment at once.
				intake(t, st, nil, survey("r3", "cat", feedback.NPS, 0, t0))
				if got := tally(t, st, t0, t0.Add(time.Hour), 8); got.NPS != 2 || got.Detractors != 1 {
					t.Errorf("segment 8: %+v", got)
				}
			})

			t.Run("the day rollup of a reporting zone agrees with the quarter hours, rebuilt or kept", func(t *testing.T) {
				c := testkit.NewClock(t0)
				url := b.URL(t)
				tokyo, _ := time.LoadLocation("Asia/Tokyo")
				st := openStore(t, url, c, "Asia/Tokyo")
				ctx := context.Background()
				var in []feedback.Input
				for i := range 200 {
					in = append(in, survey(fmt.Sprint("r", i), fmt.Sprint("c", i%7), feedback.Kind(1+i%3), 1+i%5, t0.Add(time.Duration(i)*37*time.Minute)))
				}
				intake(t, st, nil, in[:100]...)
				// Half the customers get their segment later: the fill
				// moves their counts in both rollups.
				if err := st.app.RecordProfiles(ctx, map[string]feedback.Profile{"c1": {Segment: 3}, "c2": {Segment: 5}}); err != nil {
					t.Fatal(err)
				}
				intake(t, st, map[string]feedback.Profile{"c3": {Segment: 3}}, in[100:]...)
				days := func(st *fixture, segment int) feedback.Tally {
					first, last := feedback.DayNumber(t0, tokyo), feedback.DayNumber(t0.Add(200*37*time.Minute), tokyo)+1
					bs, err := st.ScoreDays(ctx, tokyo, first, last, segment)
					if err != nil {
						t.Fatal(err)
					}
					var tl feedback.Tally
					for _, b := range bs {
						b.Tally(&tl)
					}
					return tl
				}
				from, to := t0.Add(-24*time.Hour), t0.Add(10*24*time.Hour)
				for _, seg := range []int{0, 3, 5} {
					if got, want := days(st, seg), tally(t, st, from, to, seg); got != want {
						t.Errorf("segment %d: days %+v, quarter hours %+v", seg, got, want)
					}
				}
				before := days(st, 3)
				if n, err := st.RebuildRollups(ctx); err != nil || n != 200 {
					t.Fatalf("rebuild: %d %v", n, err)
				}
				if got := days(st, 3); got != before {
					t.Errorf("rebuilt %+v, kept %+v", got, before)
				}
				// Another zone at the next start is built from the responses.
				ny, _ := time.LoadLocation("America/New_York")
				st2 := openStore(t, url, c, "America/New_York")
				bs, err := st2.ScoreDays(ctx, ny, feedback.DayNumber(from, ny), feedback.DayNumber(to, ny), 0)
				if err != nil {
					t.Fatal(err)
				}
				var tl feedback.Tally
				for _, b := range bs {
					b.Tally(&tl)
				}
				if tl != tally(t, st2, from, to, 0) {
					t.Errorf("new zone %+v", tl)
				}
			})

			t.Run("replicas configured apart keep the day rollup whole", func(t *testing.T) {
				c := testkit.NewClock(t0)
				url := b.URL(t)
				ctx := context.Background()
				berlin, _ := time.LoadLocation("Europe/Berlin")
				old := openStore(t, url, c, "UTC")
				_ = openStore(t, url, c, "UTC", "Europe/Berlin") // restarted first: rebuilds for both zones
				// The replica not restarted yet stores a response: it is
				// counted in Berlin's days too.
				intake(t, old, nil, survey("r1", "cus", feedback.NPS, 10, t0))
				restarted := openStore(t, url, c, "UTC", "Europe/Berlin")
				day := feedback.DayNumber(t0, berlin)
				bs, err := restarted.ScoreDays(ctx, berlin, day, day+1, 0)
				if err != nil {
					t.Fatal(err)
				}
				var tl feedback.Tally
				for _, b := range bs {
					b.Tally(&tl)
				}
				if tl.NPS != 1 || tl.Promoters != 1 {
					t.Errorf("Berlin's day: %+v, want the response stored by the replica still on UTC", tl)
				}
				if _, ok, err := old.ScoreZone(ctx, "Europe/Berlin"); err != nil || !ok {
					t.Errorf("the replica on UTC reads Berlin from the day rollup too: %v %v", ok, err)
				}
			})

			t.Run("reviews: negative ones open cases; the response queue puts negative and old first", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				res := intake(t, st, nil,
					review("amazon", "A1", "ann", 5, t0.Add(-72*time.Hour)),
					review("amazon", "A2", "bob", 2, t0.Add(-time.Hour)),
					review("shopify", "A2", "cat", 1, t0.Add(-2*time.Hour)), // same id, another platform
					review("shopify", "S9", "dan", 4, t0.Add(-96*time.Hour)),
				)
				if len(res.Cases) != 2 {
					t.Errorf("cases %+v, want the two negative reviews", res.Cases)
				}
				if _, err := st.app.RecordWith(context.Background(), []feedback.Input{{ReviewResponse: &feedback.ReviewResponse{ReviewID: "S9", Platform: "shopify", Text: "Thanks", RespondedAt: t0}}}, nil, nil); err != nil {
					t.Fatal(err)
				}
				rs, err := st.UnansweredReviews(context.Background(), 10)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range rs {
					got = append(got, r.Platform+"/"+r.ID)
				}
				want := []string{"shopify/A2", "amazon/A2", "amazon/A1"}
				if len(got) != len(want) {
					t.Fatalf("unanswered %v, want %v", got, want)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Errorf("unanswered %v, want %v", got, want)
						break
					}
				}
				if ok, _ := st.ReviewExists(context.Background(), "amazon", "A2"); !ok {
					t.Error("amazon/A2 not found")
				}
				// A response that arrives before its review is kept.
				intake(t, st, nil, feedback.Input{ReviewResponse: &feedback.ReviewResponse{ReviewID: "Z1", Platform: "ebay", Text: "Sorry", RespondedAt: t0}})
				intake(t, st, nil, review("ebay", "Z1", "eve", 3, t0))
				rs, _ = st.UnansweredReviews(context.Background(), 10)
				if len(rs) != 3 {
					t.Errorf("%d unanswered, want 3 (ebay/Z1 was answered first)", len(rs))
				}
			})

			t.Run("tickets: late first response and the sweep raise agony once", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				ctx := context.Background()
				intake(t, st, nil,
					ticket("e1", "T1", "ann", feedback.TicketOpened, t0),
					ticket("e2", "T2", "bob", feedback.TicketOpened, t0),
					ticket("e3", "T3", "cat", feedback.TicketOpened, t0),
				)
				c.Add(time.Hour)
				intake(t, st, nil, ticket("e4", "T1", "ann", feedback.TicketFirstResponse, t0.Add(time.Hour)))
				c.Add(4 * time.Hour)
				if cs, err := st.app.Sweep(ctx, 1); err != nil || len(cs) != 0 {
					t.Fatalf("sweep within the threshold: %v %v", cs, err)
				}
				c.Add(2 * time.Hour) // 7h after opening
				// T3's first response comes late: agony at intake.
				res := intake(t, st, nil, ticket("e5", "T3", "cat", feedback.TicketFirstResponse, t0.Add(7*time.Hour)))
				if len(res.Cases) != 1 || res.Cases[0].ID != "slow:T3" {
					t.Errorf("late response: cases %+v", res.Cases)
				}
				// T2 is still unanswered: the sweep finds it (a page of one).
				cs, err := st.app.Sweep(ctx, 1)
				if err != nil || len(cs) != 1 || cs[0].ID != "slow:T2" || cs[0].CustomerID != "bob" {
					t.Fatalf("sweep: %+v %v", cs, err)
				}
				c.Add(time.Hour)
				if cs, err := st.app.Sweep(ctx, 10); err != nil || len(cs) != 0 {
					t.Errorf("second sweep: %+v %v", cs, err)
				}
				res = intake(t, st, nil, ticket("e6", "T2", "bob", feedback.TicketFirstResponse, t0.Add(8*time.Hour)),
					ticket("e6", "T2", "bob", feedback.TicketFirstResponse, t0.Add(8*time.Hour)))
				if len(res.Cases) != 0 || res.Outcomes[1] != feedback.Duplicate {
					t.Errorf("answering a raised ticket: %+v", res)
				}
				intake(t, st, nil, ticket("e7", "T1", "ann", feedback.TicketResolved, t0.Add(3*time.Hour)),
					ticket("e8", "T2", "bob", feedback.TicketResolved, t0.Add(9*time.Hour)))
				n, first, resolution, err := st.TicketStats(ctx, t0, t0.Add(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				if n != 3 || len(first) != 3 || len(resolution) != 2 {
					t.Fatalf("stats %d tickets, %v, %v", n, first, resolution)
				}
				p := feedback.Percentiles(first, 50)
				if p[0] != 7*time.Hour {
					t.Errorf("median first response %v, want 7h", p[0])
				}
				subj := outboxSubjects(t, st)
				if len(subj) != 2 {
					t.Errorf("outbox %v, want two agony events", subj)
				}
			})

			t.Run("the last of a customer's cases resolved at once with another ends the agony", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				ctx := context.Background()
				for i := range 20 {
					cus := fmt.Sprintf("cus%d", i)
					res := intake(t, st, nil, survey(cus+"-a", cus, feedback.NPS, 0, t0), survey(cus+"-b", cus, feedback.NPS, 1, t0))
					if len(res.Cases) != 2 {
						t.Fatalf("cases %+v", res.Cases)
					}
					errs := make(chan error, 2)
					for _, cs := range res.Cases {
						go func() {
							_, err := st.app.ResolveCase(ctx, cs.ID, "ann", feedback.Recovered, "")
							errs <- err
						}()
					}
					for range 2 {
						if err := <-errs; err != nil {
							t.Fatal(err)
						}
					}
				}
				rows, err := st.DB().R.QueryContext(ctx, "SELECT payload FROM outbox WHERE subject LIKE '%recovery_resolved%' ORDER BY seq")
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				still := map[string]int{}
				n := 0
				for rows.Next() {
					var data []byte
					if err := rows.Scan(&data); err != nil {
						t.Fatal(err)
					}
					ev := &feedbackv1.FeedbackEvent{}
					if err := proto.Unmarshal(data, ev); err != nil {
						t.Fatal(err)
					}
					n++
					if ev.GetRecoveryResolved().GetStillInAgony() {
						still[ev.GetCustomerId()]++
					}
				}
				if n != 40 {
					t.Fatalf("%d resolutions, want 40", n)
				}
				for cus, k := range still {
					if k != 1 {
						t.Errorf("%s: %d of its 2 resolutions still in agony, want 1", cus, k)
					}
				}
				if len(still) != 20 {
					t.Errorf("%d customers with one resolution still in agony, want 20", len(still))
				}
			})

			t.Run("two transactions creating one ticket at once both count", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				ctx := context.Background()
				both := func(a, b func() error) {
					t.Helper()
					errs := make(chan error, 2)
					go func() { errs <- a() }()
					go func() { errs <- b() }()
					for range 2 {
						if err := <-errs; err != nil {
							t.Fatal(err)
						}
					}
				}
				for i := range 30 {
					id := fmt.Sprintf("T%d", i)
					cus := fmt.Sprintf("cus%d", i)
					both(func() error {
						_, err := st.app.RecordWith(ctx, []feedback.Input{ticket(id+"-o", id, cus, feedback.TicketOpened, t0)}, nil, nil)
						return err
					}, func() error {
						_, err := st.app.RecordWith(ctx, []feedback.Input{ticket(id+"-r", id, cus, feedback.TicketFirstResponse, t0.Add(time.Hour))}, nil, nil)
						return err
					})
				}
				var lost int
				if err := st.DB().R.QueryRowContext(ctx, `SELECT COUNT(*) FROM tickets
					WHERE opened_at <> $1 OR first_response_at <> $2`, t0.UnixMilli(), t0.Add(time.Hour).UnixMilli()).Scan(&lost); err != nil {
					t.Fatal(err)
				}
				if lost != 0 {
					t.Errorf("%d of 30 tickets lost an event", lost)
				}
			})

			t.Run("a customer stored as known while a pending response of it commits keeps the response to be filled in", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				ctx := context.Background()
				// The first transaction (an intake while segmentation could not
				// be asked) has written the customer as pending and its
				// response, and not committed yet.
				tx, err := st.DB().W.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				if _, err := tx.ExecContext(ctx, `INSERT INTO customers (customer_id, segment, clv, currency, known, refreshed_at, pending_since)
					VALUES ('ann', 0, 0, '', 0, $1, $1)`, t0.UnixMilli()); err != nil {
					t.Fatal(err)
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO responses (response_id, customer_id, kind, score, channel, comment, order_id,
					ticket_id, responded_at, segment, segment_pending, recorded_at) VALUES ('r1', 'ann', 1, 9, '', '', '', '', $1, 0, 1, $1)`,
					t0.UnixMilli()); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() {
					// A review with the customer's profile, at once.
					_, err := st.app.RecordWith(ctx, []feedback.Input{review("shop", "R1", "ann", 5, t0)},
						map[string]feedback.Profile{"ann": {Segment: 3, CLV: 1, Currency: "EUR"}}, nil)
					done <- err
				}()
				if b.Name == "postgres" {
					time.Sleep(300 * time.Millisecond) // the review's transaction has read no customer
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				var pending int
				if err := st.DB().R.QueryRowContext(ctx, `SELECT COUNT(*) FROM responses r JOIN customers c ON c.customer_id = r.customer_id
					WHERE r.segment_pending <> 0 AND c.pending_since = 0`).Scan(&pending); err != nil {
					t.Fatal(err)
				}
				if pending != 0 {
					t.Error("the response stays unsegmented for good: its customer is known, and not pending")
				}
			})

			t.Run("scores count only [from, to) when the edges are not on a quarter hour", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				// Scores 1..5 at 09:00, 09:05, 09:20, 09:40, 09:55 (CSAT, the sum tells which).
				for i, m := range []int{0, 5, 20, 40, 55} {
					intake(t, st, nil, survey(fmt.Sprintf("q%d", i), "ann", feedback.CSAT, i+1, t0.Add(time.Duration(m)*time.Minute)))
				}
				for _, tt := range []struct {
					name     string
					from, to int // minutes after 09:00
					n, sum   int64
				}{
					{"whole quarters", 0, 60, 5, 15},
					{"both edges inside quarters", 3, 50, 3, 2 + 3 + 4},
					{"within one quarter", 1, 10, 1, 2},
					{"from on a quarter, to inside", 15, 41, 2, 3 + 4},
					{"from inside, to on a quarter", 10, 45, 2, 3 + 4},
					{"nothing", 6, 14, 0, 0},
				} {
					got := tally(t, st, t0.Add(time.Duration(tt.from)*time.Minute), t0.Add(time.Duration(tt.to)*time.Minute), 0)
					if got.CSAT != tt.n || got.CSATSum != tt.sum {
						t.Errorf("%s: %d responses, sum %d; want %d, %d", tt.name, got.CSAT, got.CSATSum, tt.n, tt.sum)
					}
				}
			})

			t.Run("tickets: a reopened ticket stays answered", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				ctx := context.Background()
				intake(t, st, nil, ticket("e1", "T1", "ann", feedback.TicketOpened, t0))
				c.Add(10 * time.Minute)
				intake(t, st, nil, ticket("e2", "T1", "ann", feedback.TicketResolved, t0.Add(10*time.Minute)))
				c.Add(time.Hour)
				intake(t, st, nil, ticket("e3", "T1", "ann", feedback.TicketReopened, t0.Add(70*time.Minute)))
				c.Add(7 * time.Hour)
				if cs, err := st.app.Sweep(ctx, 10); err != nil || len(cs) != 0 {
					t.Errorf("sweep: %+v %v, want no case for a ticket answered in 10 minutes", cs, err)
				}
				res := intake(t, st, nil, ticket("e4", "T1", "ann", feedback.TicketFirstResponse, t0.Add(8*time.Hour)))
				if len(res.Cases) != 0 {
					t.Errorf("a response after the reopening: cases %+v", res.Cases)
				}
				_, first, resolution, err := st.TicketStats(ctx, t0, t0.Add(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				if len(first) != 1 || first[0] != 10*time.Minute || len(resolution) != 0 {
					t.Errorf("first responses %v, resolutions %v; want [10m] and none (reopened)", first, resolution)
				}
			})

			t.Run("pending customers: the least recently asked first", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				ctx := context.Background()
				intake(t, st, nil, survey("r1", "p1", feedback.CSAT, 5, t0))
				c.Add(time.Minute)
				intake(t, st, nil, survey("r2", "p2", feedback.CSAT, 5, t0))
				c.Add(time.Minute)
				intake(t, st, nil, survey("r3", "p3", feedback.CSAT, 5, t0))
				pending := func() []string {
					ps, err := st.PendingCustomers(ctx, 2)
					if err != nil {
						t.Fatal(err)
					}
					var ids []string
					for _, p := range ps {
						ids = append(ids, p.ID)
					}
					return ids
				}
				if got := pending(); !slices.Equal(got, []string{"p1", "p2"}) {
					t.Fatalf("pending %v, want p1, p2", got)
				}
				// Segmentation did not know p1 and p2: p3 is asked next.
				c.Add(time.Minute)
				if err := st.MarkAsked(ctx, []string{"p1", "p2"}); err != nil {
					t.Fatal(err)
				}
				if got := pending(); !slices.Equal(got, []string{"p3", "p1"}) {
					t.Errorf("pending after asking p1 and p2: %v, want p3, p1", got)
				}
				ps, _ := st.PendingCustomers(ctx, 3)
				if len(ps) != 3 || !ps[1].Since.Equal(t0) {
					t.Errorf("pending %+v: want p1 pending since %v still", ps, t0)
				}
			})

			t.Run("tickets: events out of order", func(t *testing.T) {
				c := testkit.NewClock(t0.Add(12 * time.Hour))
				st := openStore(t, b.URL(t), c)
				ctx := context.Background()
				intake(t, st, nil, ticket("e1", "T1", "ann", feedback.TicketOpened, t0))
				intake(t, st, nil, ticket("e3", "T1", "ann", feedback.TicketReopened, t0.Add(2*time.Hour)))
				intake(t, st, nil, ticket("e2", "T1", "ann", feedback.TicketResolved, t0.Add(time.Hour)))
				_, first, resolution, err := st.TicketStats(ctx, t0, t0.Add(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				if len(first) != 1 || first[0] != time.Hour || len(resolution) != 0 {
					t.Errorf("first responses %v, resolutions %v; want [1h] and none (reopened after the resolution)", first, resolution)
				}
			})

			t.Run("values of customers with open cases go stale", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				ctx := context.Background()
				intake(t, st, map[string]feedback.Profile{"low": {Segment: 4, CLV: 10_00, Currency: "EUR"}},
					survey("r1", "low", feedback.NPS, 1, t0), survey("r2", "calm", feedback.NPS, 9, t0))
				intake(t, st, nil, survey("r3", "pend", feedback.NPS, 0, t0))
				if q, _ := st.Queue(ctx, 10); len(q) != 2 || q[0].CustomerID != "low" || !q[0].CLVAsOf.Equal(t0) || !q[1].CLVAsOf.IsZero() {
					t.Fatalf("queue %+v: want low valued at %v, then pend never valued", q, t0)
				}
				c.Add(2 * time.Hour)
				stale, err := st.StaleValues(ctx, c.Now().Add(-time.Hour), 10)
				if err != nil || !slices.Equal(stale, []string{"low"}) {
					t.Fatalf("stale values %v %v, want [low] (calm has no open case, pend waits for a first answer)", stale, err)
				}
				if err := st.app.RecordProfiles(ctx, map[string]feedback.Profile{"low": {Segment: 2, CLV: 5000_00, Currency: "EUR"}}); err != nil {
					t.Fatal(err)
				}
				q, _ := st.Queue(ctx, 10)
				if q[0].CustomerID != "low" || q[0].CLV != 5000_00 || !q[0].CLVAsOf.Equal(c.Now()) {
					t.Errorf("queue after the refresh: %+v", q[0])
				}
				if stale, _ := st.StaleValues(ctx, c.Now().Add(-time.Hour), 10); len(stale) != 0 {
					t.Errorf("stale values right after the refresh: %v", stale)
				}
				if _, err := st.app.ResolveCase(ctx, q[0].ID, "ann", feedback.Recovered, ""); err != nil {
					t.Fatal(err)
				}
				c.Add(2 * time.Hour)
				if stale, _ := st.StaleValues(ctx, c.Now().Add(-time.Hour), 10); len(stale) != 0 {
					t.Errorf("stale values with no open case: %v", stale)
				}
			})

			t.Run("recovery queue by value; claim and resolve", func(t *testing.T) {
				c := testkit.NewClock(t0)
				st := openStore(t, b.URL(t), c)
				ctx := context.Background()
				profiles := map[string]feedback.Profile{
					"low": {Segment: 4, CLV: 10_00, Currency: "EUR"}, "high": {Segment: 1, CLV: 900_00, Currency: "EUR"},
				}
				intake(t, st, profiles, survey("r1", "low", feedback.NPS, 1, t0))
				c.Add(time.Minute)
				intake(t, st, profiles, survey("r2", "high", feedback.NPS, 2, t0), review("amazon", "X", "unknown", 1, t0))
				q, err := st.Queue(ctx, 10)
				if err != nil {
					t.Fatal(err)
				}
				if len(q) != 3 || q[0].CustomerID != "high" || q[1].CustomerID != "low" || q[2].CustomerID != "unknown" {
					t.Fatalf("queue %+v, want high, low, unknown", q)
				}
				if q[0].CLV != 900_00 || q[0].Currency != "EUR" || !q[0].OpenedAt.Equal(t0.Add(time.Minute)) {
					t.Errorf("case %+v", q[0])
				}
				if _, err := st.app.ClaimCase(ctx, "nope", "ann"); !errors.Is(err, feedback.ErrNotFound) {
					t.Errorf("claim unknown: %v", err)
				}
				cs, err := st.app.ClaimCase(ctx, q[0].ID, "agent-1")
				if err != nil || cs.ClaimedBy != "agent-1" {
					t.Fatalf("claim: %+v %v", cs, err)
				}
				if _, err := st.app.ClaimCase(ctx, q[0].ID, "agent-2"); !errors.Is(err, feedback.ErrClaimed) {
					t.Errorf("claim by another: %v", err)
				}
				if _, err := st.app.ResolveCase(ctx, q[0].ID, "agent-2", feedback.Lost, "not mine"); !errors.Is(err, feedback.ErrClaimed) {
					t.Errorf("resolve another agent's case: %v", err)
				}
				if got, _ := st.Case(ctx, q[0].ID); !got.ResolvedAt.IsZero() || got.Note != "" {
					t.Fatalf("a refused resolution changed the case: %+v", got)
				}
				cs, err = st.app.ResolveCase(ctx, q[0].ID, "agent-1", feedback.Recovered, "voucher sent")
				if err != nil || cs.Outcome != feedback.Recovered || cs.ResolvedAt.IsZero() || cs.ClaimedBy != "agent-1" {
					t.Fatalf("resolve: %+v %v", cs, err)
				}
				if again, err := st.app.ResolveCase(ctx, q[0].ID, "agent-1", feedback.Recovered, "voucher sent"); err != nil || !again.ResolvedAt.Equal(cs.ResolvedAt) {
					t.Errorf("a retry of the resolution: %+v %v, want the case as resolved", again, err)
				}
				if _, err := st.app.ResolveCase(ctx, q[0].ID, "agent-1", feedback.Lost, ""); !errors.Is(err, feedback.ErrResolved) {
					t.Errorf("resolve twice: %v", err)
				}
				if got, _ := st.Case(ctx, q[0].ID); got.Note != "voucher sent" || got.Outcome != feedback.Recovered {
					t.Errorf("resolution not recorded: %+v", got)
				}
				q, _ = st.Queue(ctx, 10)
				if len(q) != 2 || q[0].CustomerID != "low" {
					t.Errorf("queue after resolving %+v", q)
				}
				subj := outboxSubjects(t, st)
				if len(subj) != 4 || subj[3] != "boomerang.feedback.v1.recovery_resolved.high" {
					t.Errorf("outbox %v", subj)
				}
			})
		})
	}
}
