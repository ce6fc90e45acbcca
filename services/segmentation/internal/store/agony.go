package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// AgonyBatch is the work of one transaction of agony marks.
type AgonyBatch struct {
	// Marks in the order they were delivered.
	Marks []segment.AgonyMark
	// Extra outbox messages (dead letters), written in the same
	// transaction.
	Extra []outbox.Message
	Now   time.Time
}

// MarkAgony applies agony marks in one transaction: each customer's state
// in seg_agony moves only forward in time (see segment.AgonyState.Apply),
// a customer whose agony changed and who has features gets it copied
// there and is rescored, and states, scores and outbox messages are
// written together. A customer without features yet keeps the state for
// their first order (see load). It returns the changed customers and the
// number of marks that took effect; a redelivered or older mark does not.
func (s *Store) MarkAgony(ctx context.Context, b AgonyBatch, rescore Rescorer) ([]Update, int, error) {
	var (
		updates []Update
		applied int
	)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		updates, applied = nil, 0
		var customers []any
		seen := map[string]bool{}
		for _, m := range b.Marks {
			if !seen[m.CustomerID] {
				seen[m.CustomerID] = true
				customers = append(customers, m.CustomerID)
			}
		}
		before, err := s.loadAgony(ctx, tx, customers, true)
		if err != nil {
			return err
		}
		after := make(map[string]segment.AgonyState, len(before))
		for c, st := range before {
			after[c] = st
		}
		eventOf := map[string]string{}
		for _, m := range b.Marks {
			// The stored time has microseconds: a redelivery must compare
			// equal to it.
			m.At = m.At.Truncate(time.Microsecond)
			st, ok := after[m.CustomerID].Apply(m)
			if !ok {
				continue
			}
			applied++
			after[m.CustomerID], eventOf[m.CustomerID] = st, m.EventID
		}
		var fresh, rows [][]any
		var flipped []any
		for _, c := range customers {
			id := c.(string)
			old, known := before[id]
			st := after[id]
			if known && old.On == st.On && old.AsOf.Equal(st.AsOf) {
				continue
			}
			row := []any{id, boolInt(st.On), st.AsOf.UnixMicro(), eventOf[id], b.Now.UnixMicro()}
			if known {
				rows = append(rows, row)
			} else {
				fresh = append(fresh, row)
			}
			if old.On != st.On {
				flipped = append(flipped, id)
			}
		}
		if err := s.writeAgony(ctx, tx, fresh, rows); err != nil {
			return err
		}
		var msgs []outbox.Message
		if len(flipped) > 0 {
			if updates, msgs, err = s.rescoreAgony(ctx, tx, flipped, after, b.Now, rescore); err != nil {
				return err
			}
		}
		msgs = append(msgs, b.Extra...)
		if len(msgs) > 0 {
			return outbox.Add(ctx, tx, s.db.Dialect, b.Now, msgs...)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return updates, applied, nil
}

// rescoreAgony copies the new agony of customers into their features and
// rescores them; customers without features are left for their first
// order.
func (s *Store) rescoreAgony(ctx context.Context, tx *sql.Tx, customers []any, agony map[string]segment.AgonyState, now time.Time, rescore Rescorer) ([]Update, []outbox.Message, error) {
	d := s.db.Dialect
	cs, err := s.loadCustomers(ctx, tx, customers)
	if err != nil {
		return nil, nil, err
	}
	if len(cs) == 0 {
		return nil, nil, nil
	}
	items := make([]Rescore, len(cs))
	var on, off []any
	for i, c := range cs {
		items[i] = Rescore{Features: c.Features, Agony: agony[c.Features.CustomerID].On, Old: c.Score}
		if items[i].Agony {
			on = append(on, c.Features.CustomerID)
		} else {
			off = append(off, c.Features.CustomerID)
		}
	}
	for a, group := range [][]any{off, on} {
		err := keysIn(d, 3, group, func(cond string, args []any) error {
			_, err := tx.ExecContext(ctx, "UPDATE seg_features SET agony = "+d.Placeholders(1, 1)+", updated_at = "+d.Placeholders(2, 1)+
				" WHERE customer_id "+cond, append([]any{a, now.UnixMicro()}, args...)...)
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("set agony: %w", err)
		}
	}
	scores, msgs := rescore(items)
	if len(scores) != len(items) {
		return nil, nil, fmt.Errorf("rescore: %d scores for %d customers", len(scores), len(items))
	}
	if err := writeScores(ctx, tx, d, scores); err != nil {
		return nil, nil, err
	}
	updates := make([]Update, len(items))
	for i, it := range items {
		updates[i] = Update{Features: it.Features, Old: it.Old, New: scores[i]}
	}
	return updates, msgs, nil
}

// loadAgony reads the agony states of customers; lock takes their rows
// for the transaction.
func (s *Store) loadAgony(ctx context.Context, tx *sql.Tx, customers []any, lock bool) (map[string]segment.AgonyState, error) {
	d := s.db.Dialect
	suffix := ""
	if lock {
		suffix = d.ForUpdate()
	}
	out := map[string]segment.AgonyState{}
	err := keysIn(d, 1, customers, func(cond string, args []any) error {
		return query(ctx, tx, "SELECT customer_id, agony, as_of FROM seg_agony WHERE customer_id "+cond+suffix, args,
			func(rows *sql.Rows) error {
				var (
					id   string
					on   int
					asOf int64
				)
				if err := rows.Scan(&id, &on, &asOf); err != nil {
					return err
				}
				out[id] = segment.AgonyState{On: on != 0, AsOf: time.UnixMicro(asOf).UTC()}
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("load agony: %w", err)
	}
	return out, nil
}

// writeAgony inserts new states and updates known ones; a state another
// transaction inserted meanwhile is a key conflict that runs the batch
// again from a fresh read.
func (s *Store) writeAgony(ctx context.Context, tx *sql.Tx, fresh, rows [][]any) error {
	if err := insertRows(ctx, tx, s.db.Dialect, "seg_agony", agonyColumns, "", fresh); err != nil {
		return fmt.Errorf("insert agony: %w", err)
	}
	err := insertRows(ctx, tx, s.db.Dialect, "seg_agony", agonyColumns, `(customer_id) DO UPDATE SET agony = excluded.agony,
		as_of = excluded.as_of, event_id = excluded.event_id, updated_at = excluded.updated_at`, rows)
	if err != nil {
		return fmt.Errorf("write agony: %w", err)
	}
	return nil
}

var agonyColumns = columns{{"customer_id", text}, {"agony", bigint}, {"as_of", bigint}, {"event_id", text}, {"updated_at", bigint}}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
