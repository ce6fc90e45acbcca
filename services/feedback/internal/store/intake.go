package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// Input is one piece of intake; exactly one of the pointers is set.
type Input struct {
	// Ctx is the trace of the call or message the input came with.
	Ctx            context.Context
	Response       *feedback.Response
	Review         *feedback.Review
	ReviewResponse *feedback.ReviewResponse
	Ticket         *feedback.TicketEvent
}

// Outcome is what became of one input.
type Outcome int

const (
	Applied Outcome = iota + 1
	// Duplicate: the source's id was seen before; nothing changed.
	Duplicate
)

// Result is what a batch did: an outcome per input, and the recovery cases
// it opened.
type Result struct {
	Outcomes []Outcome
	Cases    []feedback.Case
}

// ReviewKey is a review's key across platforms.
func ReviewKey(platform, reviewID string) string { return platform + "/" + reviewID }

type customer struct {
	feedback.Profile
	known        bool
	pendingSince int64
	dirty        bool
	// filled: its pending responses take its segment in this transaction.
	filled bool
}

type bucketKey struct {
	// zone is "" for the quarter-hour rollup, else the reporting zone of
	// a local-day row.
	zone          string
	bucket        int64
	segment, kind int
}

type bucketVal struct{ n, high, low, sum int64 }

// rollup is a transaction's changes to the rollups: every response counts
// in its quarter hour and in its local day in each reporting zone.
type rollup struct {
	zones []*time.Location
	rows  map[bucketKey]*bucketVal
}

// newRollup returns a rollup that counts by quarter hour and by local day
// in the reporting zones the transaction tx reads from score_zones (see
// dayZones).
func (s *Store) newRollup(ctx context.Context, tx *sql.Tx) (*rollup, error) {
	zones, err := s.dayZones(ctx, tx, true)
	if err != nil {
		return nil, err
	}
	return &rollup{zones: zones, rows: map[bucketKey]*bucketVal{}}, nil
}

// DayNumber is the local date of t in loc as days since 1970-01-01.
func DayNumber(t time.Time, loc *time.Location) int64 {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

func (r *rollup) add(at int64, segment int, k feedback.Kind, score int, n int64) {
	r.addTo(bucketKey{"", at / BucketMS, segment, int(k)}, k, score, n)
	for _, loc := range r.zones {
		r.addTo(bucketKey{loc.String(), DayNumber(time.UnixMilli(at), loc), segment, int(k)}, k, score, n)
	}
}

func (r *rollup) addTo(key bucketKey, k feedback.Kind, score int, n int64) {
	v := r.rows[key]
	if v == nil {
		v = &bucketVal{}
		r.rows[key] = v
	}
	v.n += n
	v.sum += int64(score) * n
	switch {
	case k == feedback.NPS && score >= feedback.PromoterMin, k == feedback.CSAT && score >= feedback.SatisfiedMin:
		v.high += n
	case k == feedback.NPS && score <= feedback.DetractorMax:
		v.low += n
	}
}

func (r *rollup) save(ctx context.Context, s *Store, tx *sql.Tx) error {
	keys := make([]bucketKey, 0, len(r.rows))
	for k := range r.rows {
		keys = append(keys, k)
	}
	// Sorted so that concurrent transactions take the rows' locks in one
	// order on PostgreSQL.
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.zone != b.zone {
			return a.zone < b.zone
		}
		if a.bucket != b.bucket {
			return a.bucket < b.bucket
		}
		if a.segment != b.segment {
			return a.segment < b.segment
		}
		return a.kind < b.kind
	})
	var quarters, days [][]any
	for _, k := range keys {
		v := r.rows[k]
		if k.zone == "" {
			quarters = append(quarters, []any{k.bucket, k.segment, k.kind, v.n, v.high, v.low, v.sum})
		} else {
			days = append(days, []any{k.zone, k.bucket, k.segment, k.kind, v.n, v.high, v.low, v.sum})
		}
	}
	const add = "responses = %[1]s.responses + excluded.responses, high = %[1]s.high + excluded.high, low = %[1]s.low + excluded.low, score_sum = %[1]s.score_sum + excluded.score_sum"
	if err := sqldb.InsertRows(ctx, tx, s.db.Dialect, "score_buckets", "bucket, segment, kind, responses, high, low, score_sum",
		"(bucket, segment, kind) DO UPDATE SET "+fmt.Sprintf(add, "score_buckets"), quarters); err != nil {
		return err
	}
	return sqldb.InsertRows(ctx, tx, s.db.Dialect, "score_days", "zone, day, segment, kind, responses, high, low, score_sum",
		"(zone, day, segment, kind) DO UPDATE SET "+fmt.Sprintf(add, "score_days"), days)
}

type pendingEvent struct {
	ctx context.Context
	ev  feedback.Event
}

// Intake stores a batch of responses, reviews, review responses and ticket
// events in one transaction, with dead-lettered messages (dead) in the
// outbox. Inputs whose source id was seen before are duplicates and change
// nothing. profiles are segmentation's answers for the batch's customers
// (those it could not give are filled in later); new agony opens recovery
// cases and writes their events to the outbox.
func (s *Store) Intake(ctx context.Context, in []Input, profiles map[string]feedback.Profile, dead []outbox.Message) (Result, error) {
	var res Result
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = s.intake(ctx, tx, in, profiles, dead)
		return err
	})
	return res, err
}

func (s *Store) intake(ctx context.Context, tx *sql.Tx, in []Input, profiles map[string]feedback.Profile, dead []outbox.Message) (Result, error) {
	d := s.db.Dialect
	now := s.now().UTC()
	nowMS := ms(now)
	res := Result{Outcomes: make([]Outcome, len(in))}
	var respIDs, reviewKeys, rrKeys, evIDs, ticketIDs, custIDs []any
	for _, x := range in {
		switch {
		case x.Response != nil:
			respIDs = append(respIDs, x.Response.ID)
			custIDs = append(custIDs, x.Response.CustomerID)
		case x.Review != nil:
			reviewKeys = append(reviewKeys, ReviewKey(x.Review.Platform, x.Review.ID))
			custIDs = append(custIDs, x.Review.CustomerID)
		case x.ReviewResponse != nil:
			rrKeys = append(rrKeys, ReviewKey(x.ReviewResponse.Platform, x.ReviewResponse.ReviewID))
		case x.Ticket != nil:
			evIDs = append(evIDs, x.Ticket.ID)
			ticketIDs = append(ticketIDs, x.Ticket.TicketID)
			custIDs = append(custIDs, x.Ticket.CustomerID)
		}
	}
	seenResp, err := existing(ctx, tx, d, "responses", "response_id", respIDs)
	if err != nil {
		return res, err
	}
	seenRev, err := existing(ctx, tx, d, "reviews", "review_key", reviewKeys)
	if err != nil {
		return res, err
	}
	seenRR, err := existing(ctx, tx, d, "review_responses", "review_key", rrKeys)
	if err != nil {
		return res, err
	}
	seenEv, err := existing(ctx, tx, d, "ticket_events", "event_id", evIDs)
	if err != nil {
		return res, err
	}
	for id := range profiles {
		custIDs = append(custIDs, id)
	}
	custs, err := s.loadCustomers(ctx, tx, custIDs)
	if err != nil {
		return res, err
	}
	storedCust := stored(custs)
	for id, p := range profiles {
		c := custs[id]
		if c == nil {
			c = &customer{}
			custs[id] = c
		}
		c.filled = c.pendingSince > 0
		c.Profile, c.known, c.pendingSince, c.dirty = p, true, 0, true
	}
	tickets, err := s.loadTickets(ctx, tx, ticketIDs)
	if err != nil {
		return res, err
	}
	storedTicket := stored(tickets)
	segmentOf := func(id string) (int, bool) {
		c := custs[id]
		if c == nil {
			c = &customer{}
			custs[id] = c
		}
		if c.known {
			return c.Profile.Segment, false
		}
		if c.pendingSince == 0 {
			c.pendingSince, c.dirty = nowMS, true
		}
		return 0, true
	}

	roll, err := s.newRollup(ctx, tx)
	if err != nil {
		return res, err
	}
	var respRows, reviewRows, rrRows, evRows [][]any
	var cases []feedback.Case
	var out []pendingEvent
	dirtyTickets := map[string]bool{}
	ticketCtx := map[string]context.Context{}
	for i, x := range in {
		xctx := x.Ctx
		if xctx == nil {
			xctx = ctx
		}
		switch {
		case x.Response != nil:
			r := x.Response
			if seenResp[r.ID] {
				res.Outcomes[i] = Duplicate
				continue
			}
			seenResp[r.ID] = true
			seg, pending := segmentOf(r.CustomerID)
			at := ms(r.At)
			respRows = append(respRows, []any{r.ID, r.CustomerID, int(r.Kind), r.Score, r.Channel, r.Comment, r.OrderID, r.TicketID,
				at, seg, boolInt(pending), nowMS})
			roll.add(at, seg, r.Kind, r.Score, 1)
			if feedback.Detractor(*r) {
				c := feedback.Case{ID: feedback.CaseID(feedback.NPSDetractor, r.ID), CustomerID: r.CustomerID,
					Reason: feedback.NPSDetractor, SourceRef: r.ID, OpenedAt: now}
				cases = append(cases, c)
				out = append(out, pendingEvent{xctx, feedback.AgonyEvent(c)})
			}
		case x.Review != nil:
			r := x.Review
			key := ReviewKey(r.Platform, r.ID)
			if seenRev[key] {
				res.Outcomes[i] = Duplicate
				continue
			}
			seenRev[key] = true
			segmentOf(r.CustomerID)
			reviewRows = append(reviewRows, []any{key, r.Platform, r.ID, r.CustomerID, r.Rating, r.Text, r.Product, ms(r.CreatedAt), nowMS})
			if feedback.Negative(r.Rating) {
				c := feedback.Case{ID: feedback.CaseID(feedback.NegativeReview, key), CustomerID: r.CustomerID,
					Reason: feedback.NegativeReview, SourceRef: key, OpenedAt: now}
				cases = append(cases, c)
				out = append(out, pendingEvent{xctx, feedback.AgonyEvent(c)})
			}
		case x.ReviewResponse != nil:
			r := x.ReviewResponse
			key := ReviewKey(r.Platform, r.ReviewID)
			if seenRR[key] {
				res.Outcomes[i] = Duplicate
				continue
			}
			seenRR[key] = true
			rrRows = append(rrRows, []any{key, r.Text, ms(r.RespondedAt), nowMS})
		case x.Ticket != nil:
			ev := x.Ticket
			if seenEv[ev.ID] {
				res.Outcomes[i] = Duplicate
				continue
			}
			seenEv[ev.ID] = true
			segmentOf(ev.CustomerID)
			t := tickets[ev.TicketID]
			if t == nil {
				t = &feedback.Ticket{}
				tickets[ev.TicketID] = t
			}
			t.Apply(*ev)
			dirtyTickets[ev.TicketID] = true
			ticketCtx[ev.TicketID] = xctx
			evRows = append(evRows, []any{ev.ID, ev.TicketID, int(ev.Kind), ev.Channel, ms(ev.At), nowMS})
		}
		res.Outcomes[i] = Applied
	}
	var ticketRows [][]any
	for id := range dirtyTickets {
		t := tickets[id]
		if t.SlowFirstResponse(now, s.threshold) {
			c := t.OpenCase(now)
			cases = append(cases, c)
			out = append(out, pendingEvent{ticketCtx[id], feedback.AgonyEvent(c)})
		}
		ticketRows = append(ticketRows, ticketRow(t))
	}
	sort.Slice(ticketRows, func(i, j int) bool { return ticketRows[i][0].(string) < ticketRows[j][0].(string) })

	var custRows [][]any
	var filled []string
	for id, c := range custs {
		if c.dirty {
			custRows = append(custRows, []any{id, c.Segment, c.CLV, c.Currency, boolInt(c.known), nowMS, c.pendingSince})
		}
		if c.filled {
			filled = append(filled, id)
		}
	}
	sort.Slice(custRows, func(i, j int) bool { return custRows[i][0].(string) < custRows[j][0].(string) })
	// Rows this transaction did not find locked are inserted, never
	// upserted: on PostgreSQL another transaction may be creating the
	// same row, and an upsert would overwrite what it wrote unseen. The
	// loser gets a unique violation and InTx runs it again on the fresh
	// row.
	newTickets, oldTickets := split(ticketRows, storedTicket)
	newCusts, oldCusts := split(custRows, storedCust)
	steps := []struct {
		table, cols, conflict string
		rows                  [][]any
	}{
		{"responses", "response_id, customer_id, kind, score, channel, comment, order_id, ticket_id, responded_at, segment, segment_pending, recorded_at", "", respRows},
		{"reviews", "review_key, platform, review_id, customer_id, rating, body, product, created_at, recorded_at", "", reviewRows},
		{"review_responses", "review_key, body, responded_at, recorded_at", "", rrRows},
		{"ticket_events", "event_id, ticket_id, kind, channel, occurred_at, recorded_at", "", evRows},
		{"tickets", ticketCols, "", newTickets},
		{"tickets", ticketCols, ticketUpsert, oldTickets},
		{"customers", customerCols, "", newCusts},
		{"customers", customerCols,
			"(customer_id) DO UPDATE SET segment = excluded.segment, clv = excluded.clv, currency = excluded.currency, known = excluded.known, refreshed_at = excluded.refreshed_at, pending_since = excluded.pending_since", oldCusts},
		{"cases", caseCols, "(case_id) DO NOTHING", caseRows(cases)},
	}
	if err := s.lockCaseCustomers(ctx, tx, cases); err != nil {
		return res, err
	}
	for _, st := range steps {
		if err := sqldb.InsertRows(ctx, tx, d, st.table, st.cols, st.conflict, st.rows); err != nil {
			return res, err
		}
	}
	if err := s.fill(ctx, tx, roll, custs, filled); err != nil {
		return res, err
	}
	if err := roll.save(ctx, s, tx); err != nil {
		return res, err
	}
	if err := s.addEvents(ctx, tx, now, out, dead); err != nil {
		return res, err
	}
	res.Cases = cases
	return res, nil
}

func (s *Store) addEvents(ctx context.Context, tx *sql.Tx, now time.Time, out []pendingEvent, dead []outbox.Message) error {
	msgs := make([]outbox.Message, 0, len(out)+len(dead))
	for _, p := range out {
		m, err := s.encode(p.ctx, p.ev)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", p.ev.ID, err)
		}
		msgs = append(msgs, m)
	}
	msgs = append(msgs, dead...)
	if len(msgs) == 0 {
		return nil
	}
	return outbox.Add(ctx, tx, s.db.Dialect, now, msgs...)
}

const customerCols = "customer_id, segment, clv, currency, known, refreshed_at, pending_since"

// stored is the set of ids a transaction loaded (and locked).
func stored[T any](loaded map[string]T) map[string]bool {
	out := make(map[string]bool, len(loaded))
	for id := range loaded {
		out[id] = true
	}
	return out
}

// split parts rows keyed by their first column into those not stored yet
// and those stored.
func split(rows [][]any, stored map[string]bool) (fresh, old [][]any) {
	for _, r := range rows {
		if stored[r[0].(string)] {
			old = append(old, r)
		} else {
			fresh = append(fresh, r)
		}
	}
	return fresh, old
}

const ticketCols = "ticket_id, customer_id, channel, opened_at, first_response_at, resolved_at, answered_at, reopens, agony, reopened_at"

const ticketUpsert = "(ticket_id) DO UPDATE SET customer_id = excluded.customer_id, channel = excluded.channel, opened_at = excluded.opened_at, first_response_at = excluded.first_response_at, resolved_at = excluded.resolved_at, answered_at = excluded.answered_at, reopens = excluded.reopens, agony = excluded.agony, reopened_at = excluded.reopened_at"

func ticketRow(t *feedback.Ticket) []any {
	return []any{t.ID, t.CustomerID, t.Channel, ms(t.OpenedAt), ms(t.FirstResponseAt), ms(t.ResolvedAt), ms(t.Answered()), t.Reopens, boolInt(t.Agony), ms(t.ReopenedAt)}
}

const caseCols = "case_id, customer_id, reason, source_ref, opened_at, claimed_by, claimed_at, resolved_at, outcome, note"

func caseRows(cs []feedback.Case) [][]any {
	rows := make([][]any, 0, len(cs))
	for _, c := range cs {
		rows = append(rows, []any{c.ID, c.CustomerID, int(c.Reason), c.SourceRef, ms(c.OpenedAt), c.ClaimedBy, ms(c.ClaimedAt),
			ms(c.ResolvedAt), int(c.Outcome), c.Note})
	}
	return rows
}

// lock is the row-locking suffix of a read inside a writing transaction.
func (s *Store) lock() string { return s.db.Dialect.ForUpdate() }

func (s *Store) loadCustomers(ctx context.Context, q queryer, ids []any) (map[string]*customer, error) {
	out := map[string]*customer{}
	ids = uniq(ids)
	err := sqldb.InChunks(ids, func(chunk []any) error {
		rows, err := q.QueryContext(ctx, `SELECT customer_id, segment, clv, currency, known, pending_since FROM customers
			WHERE customer_id IN (`+s.db.Dialect.Placeholders(1, len(chunk))+`) ORDER BY customer_id`+s.lock(), chunk...)
		if err != nil {
			return fmt.Errorf("load customers: %w", err)
		}
		for rows.Next() {
			var id string
			var known int
			c := &customer{}
			if err := rows.Scan(&id, &c.Segment, &c.CLV, &c.Currency, &known, &c.pendingSince); err != nil {
				rows.Close()
				return err
			}
			c.known = known != 0
			out[id] = c
		}
		return sqldb.CloseRows(rows)
	})
	return out, err
}

func (s *Store) loadTickets(ctx context.Context, q queryer, ids []any) (map[string]*feedback.Ticket, error) {
	out := map[string]*feedback.Ticket{}
	ids = uniq(ids)
	err := sqldb.InChunks(ids, func(chunk []any) error {
		rows, err := q.QueryContext(ctx, `SELECT `+ticketCols+` FROM tickets WHERE ticket_id IN (`+
			s.db.Dialect.Placeholders(1, len(chunk))+`) ORDER BY ticket_id`+s.lock(), chunk...)
		if err != nil {
			return fmt.Errorf("load tickets: %w", err)
		}
		for rows.Next() {
			t, err := scanTicket(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out[t.ID] = t
		}
		return sqldb.CloseRows(rows)
	})
	return out, err
}

func scanTicket(rows *sql.Rows) (*feedback.Ticket, error) {
	t := &feedback.Ticket{}
	var opened, first, resolved, answered, reopened int64
	var agony int
	if err := rows.Scan(&t.ID, &t.CustomerID, &t.Channel, &opened, &first, &resolved, &answered, &t.Reopens, &agony, &reopened); err != nil {
		return nil, err
	}
	t.OpenedAt, t.FirstResponseAt, t.ResolvedAt, t.Agony = fromMS(opened), fromMS(first), fromMS(resolved), agony != 0
	t.ReopenedAt = fromMS(reopened)
	t.FirstAnsweredAt = fromMS(answered)
	for _, at := range []time.Time{t.FirstResponseAt, t.ResolvedAt} {
		// Rows written before answered_at outlived a reopening.
		if !at.IsZero() && (t.FirstAnsweredAt.IsZero() || at.Before(t.FirstAnsweredAt)) {
			t.FirstAnsweredAt = at
		}
	}
	return t, nil
}

// uniq drops repeated ids and sorts them, so locks are taken in key order.
func uniq(ids []any) []any {
	seen := map[string]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id.(string)] {
			seen[id.(string)] = true
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].(string) < out[j].(string) })
	return out
}

// fill gives the pending responses of the customers ids (now known) their
// customer's segment, moving their counts in roll, which the caller saves.
func (s *Store) fill(ctx context.Context, tx *sql.Tx, roll *rollup, custs map[string]*customer, ids []string) error {
	sort.Strings(ids)
	for _, id := range ids {
		seg := custs[id].Segment
		rows, err := tx.QueryContext(ctx, `SELECT responded_at, kind, score FROM responses
			WHERE customer_id = $1 AND segment_pending = 1`, id)
		if err != nil {
			return fmt.Errorf("pending responses: %w", err)
		}
		for rows.Next() {
			var at int64
			var kind, score int
			if err := rows.Scan(&at, &kind, &score); err != nil {
				rows.Close()
				return err
			}
			roll.add(at, 0, feedback.Kind(kind), score, -1)
			roll.add(at, seg, feedback.Kind(kind), score, 1)
		}
		if err := sqldb.CloseRows(rows); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE responses SET segment = $1, segment_pending = 0
			WHERE customer_id = $2 AND segment_pending = 1`, seg, id); err != nil {
			return fmt.Errorf("fill segments: %w", err)
		}
	}
	return nil
}
