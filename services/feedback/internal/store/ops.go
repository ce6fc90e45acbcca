package store

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

const caseSelect = `SELECT c.case_id, c.customer_id, c.reason, c.source_ref, c.opened_at, c.claimed_by, c.claimed_at,
	c.resolved_at, c.outcome, c.note, COALESCE(cu.clv, 0), COALESCE(cu.currency, ''),
	CASE WHEN cu.known = 1 THEN cu.refreshed_at ELSE 0 END
	FROM cases c LEFT JOIN customers cu ON cu.customer_id = c.customer_id`

func scanCases(rows *sql.Rows) ([]feedback.Case, error) {
	var out []feedback.Case
	for rows.Next() {
		var c feedback.Case
		var reason, outcome int
		var opened, claimed, resolved, valued int64
		if err := rows.Scan(&c.ID, &c.CustomerID, &reason, &c.SourceRef, &opened, &c.ClaimedBy, &claimed, &resolved,
			&outcome, &c.Note, &c.CLV, &c.Currency, &valued); err != nil {
			rows.Close()
			return nil, err
		}
		c.Reason, c.Outcome = feedback.Reason(reason), feedback.Outcome(outcome)
		c.OpenedAt, c.ClaimedAt, c.ResolvedAt, c.CLVAsOf = fromMS(opened), fromMS(claimed), fromMS(resolved), fromMS(valued)
		out = append(out, c)
	}
	return out, sqldb.CloseRows(rows)
}

// Queue lists the open recovery cases, the most valuable customers first
// and, among equals, the oldest case first.
func (s *Store) Queue(ctx context.Context, limit int) ([]feedback.Case, error) {
	rows, err := s.db.R.QueryContext(ctx, caseSelect+` WHERE c.resolved_at = 0
		ORDER BY COALESCE(cu.clv, 0) DESC, c.opened_at, c.case_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("recovery queue: %w", err)
	}
	return scanCases(rows)
}

// CustomerCases lists one customer's open recovery cases, the oldest
// first (the index on open cases by customer finds them).
func (s *Store) CustomerCases(ctx context.Context, customerID string, limit int) ([]feedback.Case, error) {
	rows, err := s.db.R.QueryContext(ctx, caseSelect+` WHERE c.resolved_at = 0 AND c.customer_id = $1
		ORDER BY c.opened_at, c.case_id LIMIT $2`, customerID, limit)
	if err != nil {
		return nil, fmt.Errorf("customer cases: %w", err)
	}
	return scanCases(rows)
}

// Case returns one recovery case.
func (s *Store) Case(ctx context.Context, id string) (feedback.Case, error) {
	return s.readCase(ctx, s.db.R, id, "")
}

func (s *Store) readCase(ctx context.Context, q queryer, id, lock string) (feedback.Case, error) {
	rows, err := q.QueryContext(ctx, caseSelect+` WHERE c.case_id = $1`+lock, id)
	if err != nil {
		return feedback.Case{}, fmt.Errorf("read case: %w", err)
	}
	cs, err := scanCases(rows)
	if err != nil {
		return feedback.Case{}, err
	}
	if len(cs) == 0 {
		return feedback.Case{}, fmt.Errorf("case %s: %w", id, feedback.ErrNotFound)
	}
	return cs[0], nil
}

// UpdateCase runs fn over a recovery case in one transaction: it loads
// the case and, once no other transaction may open or resolve a case of
// its customer, how many other cases of the customer are open; then it
// writes the case as fn left it, with fn's events in the outbox. When fn
// fails nothing is written.
func (s *Store) UpdateCase(ctx context.Context, id string, fn func(u *feedback.CaseUpdate) error) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		// PostgreSQL cannot lock the nullable side of an outer join: lock
		// the case row alone first.
		if s.db.Dialect.ForUpdate() != "" {
			if _, err := tx.ExecContext(ctx, `SELECT 1 FROM cases WHERE case_id = $1 FOR UPDATE`, id); err != nil {
				return fmt.Errorf("lock case: %w", err)
			}
		}
		c, err := s.readCase(ctx, tx, id, "")
		if err != nil {
			return err
		}
		// Whether other cases stay open is only known once no other
		// transaction of this customer resolves or opens one.
		if err := s.lockCustomers(ctx, tx, []string{c.CustomerID}); err != nil {
			return err
		}
		u := &feedback.CaseUpdate{Case: c}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM cases WHERE customer_id = $1 AND resolved_at = 0 AND case_id <> $2`,
			c.CustomerID, c.ID).Scan(&u.OtherOpen); err != nil {
			return fmt.Errorf("open cases: %w", err)
		}
		if err := fn(u); err != nil {
			return err
		}
		c = u.Case
		if _, err := tx.ExecContext(ctx, `UPDATE cases SET claimed_by = $1, claimed_at = $2, resolved_at = $3, outcome = $4, note = $5
			WHERE case_id = $6`, c.ClaimedBy, ms(c.ClaimedAt), ms(c.ResolvedAt), int(c.Outcome), c.Note, c.ID); err != nil {
			return fmt.Errorf("update case: %w", err)
		}
		return s.addEvents(ctx, tx, u.Now, u.Events, nil)
	})
}

// UnansweredReviews lists reviews without a response: negative ones (2
// stars or fewer) first, oldest first within each.
func (s *Store) UnansweredReviews(ctx context.Context, limit int) ([]feedback.Review, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT r.platform, r.review_id, r.customer_id, r.rating, r.product, r.created_at
		FROM reviews r LEFT JOIN review_responses rr ON rr.review_key = r.review_key
		WHERE rr.review_key IS NULL
		ORDER BY CASE WHEN r.rating <= $1 THEN 0 ELSE 1 END, r.created_at, r.review_key LIMIT $2`, feedback.NegativeReviewAt, limit)
	if err != nil {
		return nil, fmt.Errorf("unanswered reviews: %w", err)
	}
	var out []feedback.Review
	for rows.Next() {
		var r feedback.Review
		var created int64
		if err := rows.Scan(&r.Platform, &r.ID, &r.CustomerID, &r.Rating, &r.Product, &created); err != nil {
			rows.Close()
			return nil, err
		}
		r.CreatedAt = fromMS(created)
		out = append(out, r)
	}
	return out, sqldb.CloseRows(rows)
}

// ReviewExists reports whether the review is stored.
func (s *Store) ReviewExists(ctx context.Context, platform, reviewID string) (bool, error) {
	var n int
	err := s.db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM reviews WHERE review_key = $1`, feedback.ReviewKey(platform, reviewID)).Scan(&n)
	return n > 0, err
}

// Scores returns the responses of [from, to) summed in stretches of
// width, a multiple of feedback.BucketMS, counted from origin (at or before from,
// on a quarter hour); segment 0 means every segment. Whole quarter hours
// are read from the rollup; a part of one at either edge (from or to not
// on a quarter hour) from the responses, so that nothing outside
// [from, to) is counted.
func (s *Store) Scores(ctx context.Context, from, to, origin time.Time, width time.Duration, segment int) ([]feedback.Bucket, error) {
	div := max(int64(width/time.Millisecond)/feedback.BucketMS, 1)
	base := ms(origin) / feedback.BucketMS
	fromMS, toMS := max(ms(from), base*feedback.BucketMS), ms(to)
	first, last := (fromMS+feedback.BucketMS-1)/feedback.BucketMS, toMS/feedback.BucketMS // whole quarter hours [first, last)
	q := `SELECT (bucket - $1) / $2 AS b, segment, kind, SUM(responses), SUM(high), SUM(low), SUM(score_sum) FROM score_buckets
		WHERE bucket >= $3 AND bucket < $4`
	args := []any{base, div, first, last}
	if segment != 0 {
		q += ` AND segment = $5`
		args = append(args, segment)
	}
	q += ` GROUP BY b, segment, kind HAVING SUM(responses) > 0 ORDER BY b, segment, kind`
	var out []feedback.Bucket
	if first < last {
		rows, err := s.db.R.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("scores: %w", err)
		}
		for rows.Next() {
			var b feedback.Bucket
			var start int64
			var kind int
			if err := rows.Scan(&start, &b.Segment, &kind, &b.N, &b.High, &b.Low, &b.Sum); err != nil {
				rows.Close()
				return nil, err
			}
			b.Start, b.Kind = time.UnixMilli((base+start*div)*feedback.BucketMS).UTC(), feedback.Kind(kind)
			out = append(out, b)
		}
		if err := sqldb.CloseRows(rows); err != nil {
			return nil, err
		}
	}
	// The edges, each less than a quarter hour.
	var edges [][2]int64
	if first >= last {
		edges = append(edges, [2]int64{fromMS, toMS})
	} else {
		if fromMS < first*feedback.BucketMS {
			edges = append(edges, [2]int64{fromMS, first * feedback.BucketMS})
		}
		if last*feedback.BucketMS < toMS {
			edges = append(edges, [2]int64{last * feedback.BucketMS, toMS})
		}
	}
	r := feedback.NewRollup(nil)
	for _, e := range edges {
		if e[0] >= e[1] {
			continue
		}
		q := `SELECT responded_at, segment, kind, score FROM responses WHERE responded_at >= $1 AND responded_at < $2`
		args := []any{e[0], e[1]}
		if segment != 0 {
			q += ` AND segment = $3`
			args = append(args, segment)
		}
		rows, err := s.db.R.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("scores at the edges: %w", err)
		}
		for rows.Next() {
			var at int64
			var seg, kind, score int
			if err := rows.Scan(&at, &seg, &kind, &score); err != nil {
				rows.Close()
				return nil, err
			}
			r.Add(at, seg, feedback.Kind(kind), score, 1)
		}
		if err := sqldb.CloseRows(rows); err != nil {
			return nil, err
		}
	}
	for k, v := range r.Rows {
		start := base + (k.Bucket-base)/div*div
		out = append(out, feedback.Bucket{Start: time.UnixMilli(start * feedback.BucketMS).UTC(), Segment: k.Segment, Kind: feedback.Kind(k.Kind),
			N: v.N, High: v.High, Low: v.Low, Sum: v.Sum})
	}
	return out, nil
}

// ScoreDays returns the local-day rollup of zone (a reporting zone) for the
// days from fromDay to toDay (exclusive), as feedback.DayNumber counts them; each
// bucket starts at its local midnight. segment 0 means every segment.
func (s *Store) ScoreDays(ctx context.Context, zone *time.Location, fromDay, toDay int64, segment int) ([]feedback.Bucket, error) {
	q := `SELECT day, segment, kind, responses, high, low, score_sum FROM score_days
		WHERE zone = $1 AND day >= $2 AND day < $3 AND responses <> 0`
	args := []any{zone.String(), fromDay, toDay}
	if segment != 0 {
		q += ` AND segment = $4`
		args = append(args, segment)
	}
	rows, err := s.db.R.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("score days: %w", err)
	}
	var out []feedback.Bucket
	for rows.Next() {
		var b feedback.Bucket
		var day int64
		var kind int
		if err := rows.Scan(&day, &b.Segment, &kind, &b.N, &b.High, &b.Low, &b.Sum); err != nil {
			rows.Close()
			return nil, err
		}
		y, m, d := time.Unix(day*86400, 0).UTC().Date()
		b.Start, b.Kind = time.Date(y, m, d, 0, 0, 0, 0, zone), feedback.Kind(kind)
		out = append(out, b)
	}
	return out, sqldb.CloseRows(rows)
}

// TicketStats returns the tickets opened in [from, to), with the time each
// answered one waited for its first answer and each resolved one took to
// its resolution.
func (s *Store) TicketStats(ctx context.Context, from, to time.Time) (tickets int64, firstResponse, resolution []time.Duration, err error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT opened_at, answered_at, CASE WHEN resolved_at > reopened_at THEN resolved_at ELSE 0 END FROM tickets
		WHERE opened_at >= $1 AND opened_at < $2`, ms(from), ms(to))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("ticket stats: %w", err)
	}
	for rows.Next() {
		var opened, answered, resolved int64
		if err := rows.Scan(&opened, &answered, &resolved); err != nil {
			rows.Close()
			return 0, nil, nil, err
		}
		tickets++
		if answered >= opened && answered > 0 {
			firstResponse = append(firstResponse, time.Duration(answered-opened)*time.Millisecond)
		}
		if resolved >= opened && resolved > 0 {
			resolution = append(resolution, time.Duration(resolved-opened)*time.Millisecond)
		}
	}
	return tickets, firstResponse, resolution, sqldb.CloseRows(rows)
}

// PendingCustomer is a customer whose segment segmentation has not told.
type PendingCustomer struct {
	ID    string
	Since time.Time
}

// PendingCustomers lists up to limit customers waiting for their segment,
// the least recently asked first (see MarkAsked).
func (s *Store) PendingCustomers(ctx context.Context, limit int) ([]PendingCustomer, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT customer_id, pending_since FROM customers WHERE pending_since > 0
		ORDER BY refreshed_at, customer_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("pending customers: %w", err)
	}
	var out []PendingCustomer
	for rows.Next() {
		var p PendingCustomer
		var since int64
		if err := rows.Scan(&p.ID, &since); err != nil {
			rows.Close()
			return nil, err
		}
		p.Since = fromMS(since)
		out = append(out, p)
	}
	return out, sqldb.CloseRows(rows)
}

// MarkAsked records that segmentation was asked about these pending
// customers now and did not know them, so that PendingCustomers turns to
// the others first.
func (s *Store) MarkAsked(ctx context.Context, ids []string) error {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	now := ms(s.now())
	return sqldb.InChunks(args, func(chunk []any) error {
		_, err := s.db.W.ExecContext(ctx, `UPDATE customers SET refreshed_at = $1 WHERE pending_since > 0 AND customer_id IN (`+
			s.db.Dialect.Placeholders(2, len(chunk))+`)`, append([]any{now}, chunk...)...)
		if err != nil {
			return fmt.Errorf("mark asked: %w", err)
		}
		return nil
	})
}

// StaleValues lists up to limit customers with an open recovery case
// whose value segmentation told before before, the stalest first, so that
// the recovery queue's order follows the customers' current value.
// Customers still waiting for their first answer are PendingCustomers'.
func (s *Store) StaleValues(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT cu.customer_id FROM customers cu
		WHERE cu.customer_id IN (SELECT customer_id FROM cases WHERE resolved_at = 0)
		AND cu.pending_since = 0 AND cu.refreshed_at < $1
		ORDER BY cu.refreshed_at, cu.customer_id LIMIT $2`, ms(before), limit)
	if err != nil {
		return nil, fmt.Errorf("stale values: %w", err)
	}
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, id)
	}
	return out, sqldb.CloseRows(rows)
}

// Counts returns the number of rows of the service's tables, for tests
// and the benchmark.
func (s *Store) Counts(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for _, t := range []string{"responses", "reviews", "review_responses", "ticket_events", "tickets", "customers", "cases", "outbox"} {
		var n int64
		if err := s.db.R.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// customerLockClass is the first key of the customers' advisory locks
// ("feed"); the second is a hash of the customer id.
const customerLockClass = 0x66656564

// lockCustomers serialises, until the transaction ends, the transactions
// that open or resolve cases of these customers: otherwise two cases
// resolved at once on PostgreSQL (read committed) each see the other still
// open, and the customer stays in agony. The locks are taken in one order.
// SQLite has one writer at a time already.
func (s *Store) lockCustomers(ctx context.Context, tx *sql.Tx, ids []string) error {
	if s.db.Dialect.ForUpdate() == "" {
		return nil
	}
	keys := make([]int32, 0, len(ids))
	seen := map[int32]bool{}
	for _, id := range ids {
		h := fnv.New32a()
		h.Write([]byte(id))
		k := int32(h.Sum32())
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1::int4, $2::int4)`, customerLockClass, k); err != nil {
			return fmt.Errorf("lock customer: %w", err)
		}
	}
	return nil
}

// lockCaseCustomers locks the customers of the cases about to be opened.
func (s *Store) lockCaseCustomers(ctx context.Context, tx *sql.Tx, cases []feedback.Case) error {
	ids := make([]string, 0, len(cases))
	for _, c := range cases {
		ids = append(ids, c.CustomerID)
	}
	return s.lockCustomers(ctx, tx, ids)
}
