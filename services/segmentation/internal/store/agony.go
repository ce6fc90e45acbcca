package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// UpdateAgony runs one transaction over the agony of customers: it loads
// their agony states and those of them who have features (locking both
// rows), calls fn, which applies marks and rescores, then writes the
// states the batch lists as Marked, the agony of the Flipped customers'
// features with their new scores, and the outbox messages fn returns. A
// customer without features yet keeps the state for their first order
// (see load). An error from fn or SQL writes nothing; fn runs again, on a
// fresh batch, when the transaction is retried.
func (s *Store) UpdateAgony(ctx context.Context, customerIDs []string, now time.Time, fn func(b *segment.AgonyBatch) ([]outbox.Message, error)) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var customers []any
		seen := map[string]bool{}
		for _, id := range customerIDs {
			if !seen[id] {
				seen[id] = true
				customers = append(customers, id)
			}
		}
		states, err := s.loadAgony(ctx, tx, customers, true)
		if err != nil {
			return err
		}
		cs, err := s.loadCustomers(ctx, tx, customers)
		if err != nil {
			return err
		}
		b := &segment.AgonyBatch{States: states, Customers: make(map[string]*segment.Customer, len(cs))}
		for i := range cs {
			b.Customers[cs[i].Features.CustomerID] = &cs[i]
		}
		known := make(map[string]bool, len(states))
		for id := range states {
			known[id] = true
		}
		msgs, err := fn(b)
		if err != nil {
			return err
		}
		var fresh, rows [][]any
		for _, id := range b.Marked {
			st := b.States[id]
			row := []any{id, boolInt(st.On), st.AsOf.UnixMicro(), b.EventOf[id], now.UnixMicro()}
			if known[id] {
				rows = append(rows, row)
			} else {
				fresh = append(fresh, row)
			}
		}
		if err := s.writeAgony(ctx, tx, fresh, rows); err != nil {
			return err
		}
		if err := s.writeFlipped(ctx, tx, b, now); err != nil {
			return err
		}
		if len(msgs) > 0 {
			return outbox.Add(ctx, tx, s.db.Dialect, now, msgs...)
		}
		return nil
	})
}

// writeFlipped writes the agony and the new score of the customers whose
// agony flipped.
func (s *Store) writeFlipped(ctx context.Context, tx *sql.Tx, b *segment.AgonyBatch, now time.Time) error {
	if len(b.Flipped) == 0 {
		return nil
	}
	d := s.db.Dialect
	var on, off []any
	scores := make([]segment.Score, 0, len(b.Flipped))
	for _, id := range b.Flipped {
		c := b.Customers[id]
		if c.Score == nil {
			// Not named: errors reach the logs, and ids are customers'.
			return errors.New("a customer whose agony flipped was not rescored")
		}
		if c.Agony {
			on = append(on, id)
		} else {
			off = append(off, id)
		}
		scores = append(scores, *c.Score)
	}
	for a, group := range [][]any{off, on} {
		err := keysIn(d, 3, group, func(cond string, args []any) error {
			_, err := tx.ExecContext(ctx, "UPDATE seg_features SET agony = "+d.Placeholders(1, 1)+", updated_at = "+d.Placeholders(2, 1)+
				" WHERE customer_id "+cond, append([]any{a, now.UnixMicro()}, args...)...)
			return err
		})
		if err != nil {
			return fmt.Errorf("set agony: %w", err)
		}
	}
	return writeScores(ctx, tx, d, scores)
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
