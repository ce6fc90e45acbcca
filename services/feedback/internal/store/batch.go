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

// newRollup returns a rollup that counts by quarter hour and by local day
// in the reporting zones the transaction tx reads from score_zones (see
// dayZones).
func (s *Store) newRollup(ctx context.Context, tx *sql.Tx) (*feedback.Rollup, error) {
	zones, err := s.dayZones(ctx, tx, true)
	if err != nil {
		return nil, err
	}
	return feedback.NewRollup(zones), nil
}

func (s *Store) saveRollup(ctx context.Context, tx *sql.Tx, r *feedback.Rollup) error {
	keys := make([]feedback.RollupKey, 0, len(r.Rows))
	for k := range r.Rows {
		keys = append(keys, k)
	}
	// Sorted so that concurrent transactions take the rows' locks in one
	// order on PostgreSQL.
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Zone != b.Zone {
			return a.Zone < b.Zone
		}
		if a.Bucket != b.Bucket {
			return a.Bucket < b.Bucket
		}
		if a.Segment != b.Segment {
			return a.Segment < b.Segment
		}
		return a.Kind < b.Kind
	})
	var quarters, days [][]any
	for _, k := range keys {
		v := r.Rows[k]
		if k.Zone == "" {
			quarters = append(quarters, []any{k.Bucket, k.Segment, k.Kind, v.N, v.High, v.Low, v.Sum})
		} else {
			days = append(days, []any{k.Zone, k.Bucket, k.Segment, k.Kind, v.N, v.High, v.Low, v.Sum})
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

// UpdateIntake runs fn over a batch of intake in one transaction: it reads
// (locked on PostgreSQL) what keys name — which source ids are stored,
// the customers, the waiting responses of the profiled customers, the
// tickets — and the reporting zones, calls fn, which decides, and writes
// what fn changed, with fn's events and the dead letters dead in the
// outbox. fn may run more than once (a transaction that lost a race is
// run again).
func (s *Store) UpdateIntake(ctx context.Context, keys feedback.Keys, dead []outbox.Message, fn func(b *feedback.Batch) error) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		b := feedback.NewBatch()
		d := s.db.Dialect
		for _, seen := range []struct {
			table, col string
			keys       []string
			into       map[string]bool
		}{
			{"responses", "response_id", keys.Responses, b.SeenResponses},
			{"reviews", "review_key", keys.Reviews, b.SeenReviews},
			{"review_responses", "review_key", keys.ReviewResponses, b.SeenReviewResponses},
			{"ticket_events", "event_id", keys.TicketEvents, b.SeenTicketEvents},
		} {
			if err := existing(ctx, tx, d, seen.table, seen.col, anys(seen.keys), seen.into); err != nil {
				return err
			}
		}
		var err error
		if b.Customers, err = s.loadCustomers(ctx, tx, anys(keys.Customers)); err != nil {
			return err
		}
		storedCust := stored(b.Customers)
		for _, id := range keys.Profiled {
			if c := b.Customers[id]; c != nil && !c.PendingSince.IsZero() {
				if b.Pending[id], err = s.pendingResponses(ctx, tx, id); err != nil {
					return err
				}
			}
		}
		if b.Tickets, err = s.loadTickets(ctx, tx, anys(keys.Tickets)); err != nil {
			return err
		}
		storedTicket := stored(b.Tickets)
		if b.Rollup, err = s.newRollup(ctx, tx); err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
		return s.save(ctx, tx, b, storedCust, storedTicket, dead)
	})
}

// UpdateUnansweredTickets runs fn, in one transaction, over a batch of up
// to limit tickets (locked) still unanswered, without a case, and opened
// before openedBefore, the oldest first; it writes what fn changed and
// returns how many tickets it read.
func (s *Store) UpdateUnansweredTickets(ctx context.Context, openedBefore time.Time, limit int, fn func(b *feedback.Batch) error) (int, error) {
	var found int
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+ticketCols+` FROM tickets
			WHERE agony = 0 AND answered_at = 0 AND opened_at > 0 AND opened_at < $1
			ORDER BY opened_at, ticket_id LIMIT $2`+s.lock(), ms(openedBefore), limit)
		if err != nil {
			return fmt.Errorf("unanswered tickets: %w", err)
		}
		b := feedback.NewBatch()
		for rows.Next() {
			t, err := scanTicket(rows)
			if err != nil {
				rows.Close()
				return err
			}
			b.Tickets[t.ID] = t
		}
		if err := sqldb.CloseRows(rows); err != nil {
			return err
		}
		found = len(b.Tickets)
		if err := fn(b); err != nil {
			return err
		}
		return s.save(ctx, tx, b, nil, stored(b.Tickets), nil)
	})
	return found, err
}

// save writes what a batch changed. Rows this transaction did not find
// locked are inserted, never upserted: on PostgreSQL another transaction
// may be creating the same row, and an upsert would overwrite what it
// wrote unseen. The loser gets a unique violation and InTx runs it again
// on the fresh row.
func (s *Store) save(ctx context.Context, tx *sql.Tx, b *feedback.Batch, storedCust, storedTicket map[string]bool, dead []outbox.Message) error {
	nowMS := ms(b.Now)
	respRows := make([][]any, 0, len(b.Responses))
	for _, r := range b.Responses {
		respRows = append(respRows, []any{r.ID, r.CustomerID, int(r.Kind), r.Score, r.Channel, r.Comment, r.OrderID, r.TicketID,
			ms(r.At), r.Segment, boolInt(r.Pending), nowMS})
	}
	reviewRows := make([][]any, 0, len(b.Reviews))
	for _, r := range b.Reviews {
		reviewRows = append(reviewRows, []any{feedback.ReviewKey(r.Platform, r.ID), r.Platform, r.ID, r.CustomerID, r.Rating, r.Text, r.Product,
			ms(r.CreatedAt), nowMS})
	}
	rrRows := make([][]any, 0, len(b.ReviewResponses))
	for _, r := range b.ReviewResponses {
		rrRows = append(rrRows, []any{feedback.ReviewKey(r.Platform, r.ReviewID), r.Text, ms(r.RespondedAt), nowMS})
	}
	evRows := make([][]any, 0, len(b.TicketEvents))
	for _, ev := range b.TicketEvents {
		evRows = append(evRows, []any{ev.ID, ev.TicketID, int(ev.Kind), ev.Channel, ms(ev.At), nowMS})
	}
	ticketRows := make([][]any, 0, len(b.ChangedTickets))
	for _, id := range b.ChangedTickets {
		ticketRows = append(ticketRows, ticketRow(b.Tickets[id]))
	}
	var custRows [][]any
	for id, c := range b.Customers {
		if c.Changed {
			custRows = append(custRows, []any{id, c.Segment, c.CLV, c.Currency, boolInt(c.Known), nowMS, ms(c.PendingSince)})
		}
	}
	sort.Slice(custRows, func(i, j int) bool { return custRows[i][0].(string) < custRows[j][0].(string) })
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
		{"cases", caseCols, "(case_id) DO NOTHING", caseRows(b.Cases)},
	}
	if err := s.lockCaseCustomers(ctx, tx, b.Cases); err != nil {
		return err
	}
	for _, st := range steps {
		if err := sqldb.InsertRows(ctx, tx, s.db.Dialect, st.table, st.cols, st.conflict, st.rows); err != nil {
			return err
		}
	}
	for _, id := range b.Filled {
		if _, err := tx.ExecContext(ctx, `UPDATE responses SET segment = $1, segment_pending = 0
			WHERE customer_id = $2 AND segment_pending = 1`, b.Customers[id].Segment, id); err != nil {
			return fmt.Errorf("fill segments: %w", err)
		}
	}
	if b.Rollup != nil {
		if err := s.saveRollup(ctx, tx, b.Rollup); err != nil {
			return err
		}
	}
	return s.addEvents(ctx, tx, b.Now, b.Events, dead)
}

// addEvents encodes events (with the trace of ctx when they carry none)
// and adds them to the outbox with dead.
func (s *Store) addEvents(ctx context.Context, tx *sql.Tx, now time.Time, events []feedback.Raised, dead []outbox.Message) error {
	msgs := make([]outbox.Message, 0, len(events)+len(dead))
	for _, r := range events {
		ectx := r.Ctx
		if ectx == nil {
			ectx = ctx
		}
		m, err := s.encode(ectx, r.Event)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", r.Event.ID, err)
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

func (s *Store) loadCustomers(ctx context.Context, q queryer, ids []any) (map[string]*feedback.Customer, error) {
	out := map[string]*feedback.Customer{}
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
			var since int64
			c := &feedback.Customer{}
			if err := rows.Scan(&id, &c.Segment, &c.CLV, &c.Currency, &known, &since); err != nil {
				rows.Close()
				return err
			}
			c.Known, c.PendingSince = known != 0, fromMS(since)
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

// pendingResponses reads the responses of a customer still waiting for
// their segment.
func (s *Store) pendingResponses(ctx context.Context, q queryer, id string) ([]feedback.Scored, error) {
	rows, err := q.QueryContext(ctx, `SELECT responded_at, kind, score FROM responses
		WHERE customer_id = $1 AND segment_pending = 1`, id)
	if err != nil {
		return nil, fmt.Errorf("pending responses: %w", err)
	}
	var out []feedback.Scored
	for rows.Next() {
		var r feedback.Scored
		var kind int
		if err := rows.Scan(&r.AtMS, &kind, &r.Score); err != nil {
			rows.Close()
			return nil, err
		}
		r.Kind = feedback.Kind(kind)
		out = append(out, r)
	}
	return out, sqldb.CloseRows(rows)
}
