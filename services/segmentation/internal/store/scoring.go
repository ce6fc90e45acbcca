package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// Customers reads every customer with their score, in customer id order.
// The scoring job works on the whole base at once (quintiles and the model
// fit need it), so it is read in one pass.
func (s *Store) Customers(ctx context.Context) ([]segment.Customer, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+customerColumns+" FROM seg_features ORDER BY customer_id")
	if err != nil {
		return nil, fmt.Errorf("read customers: %w", err)
	}
	defer rows.Close()
	var out []segment.Customer
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return nil, fmt.Errorf("read customers: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read customers: %w", err)
	}
	return out, nil
}

// State is what one scoring run leaves for the next and for the scoring
// of single customers in between.
type State struct {
	ScoredAt     time.Time          `json:"scored_at"`
	Boundaries   segment.Boundaries `json:"boundaries"`
	VIPThreshold int64              `json:"vip_threshold"`
	// VIPByCLV is true when VIPs were ranked by predicted CLV, false when
	// by spend (no model).
	VIPByCLV bool               `json:"vip_by_clv"`
	CLV      []segment.Quantile `json:"clv_distribution,omitempty"`
}

// ModelRecord is one model fit: the time of the fit, the customers it saw
// and the fitted model as JSON (the clv package's encoding).
type ModelRecord struct {
	FittedAt  time.Time
	Customers int64
	Model     json.RawMessage
}

// Run is the outcome of a scoring run, written in one transaction.
type Run struct {
	State State
	// Model is nil when the run fitted none.
	Model *ModelRecord
	// Scores are the customers' new scores; Messages the segment-changed
	// events they call for.
	Scores   []segment.Score
	Messages []outbox.Message
	Now      time.Time
}

// SaveRun writes a scoring run.
func (s *Store) SaveRun(ctx context.Context, r Run) error {
	state, err := json.Marshal(r.State)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if r.Model != nil {
			if _, err := tx.ExecContext(ctx, "INSERT INTO seg_models (fitted_at, customers, model) VALUES ($1, $2, $3)",
				r.Model.FittedAt.UnixMicro(), r.Model.Customers, string(r.Model.Model)); err != nil {
				return fmt.Errorf("save model: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO seg_scoring (id, scored_at, state) VALUES (1, $1, $2)
			ON CONFLICT (id) DO UPDATE SET scored_at = excluded.scored_at, state = excluded.state`,
			r.State.ScoredAt.UnixMicro(), string(state)); err != nil {
			return fmt.Errorf("save scoring state: %w", err)
		}
		if err := writeScores(ctx, tx, s.db.Dialect, r.Scores); err != nil {
			return err
		}
		if len(r.Messages) > 0 {
			return outbox.Add(ctx, tx, s.db.Dialect, r.Now, r.Messages...)
		}
		return nil
	})
}

// LoadState returns the last scoring run's state, or ErrNotFound before
// the first run.
func (s *Store) LoadState(ctx context.Context) (State, error) {
	var st State
	var raw string
	err := s.db.R.QueryRowContext(ctx, "SELECT state FROM seg_scoring WHERE id = 1").Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return st, ErrNotFound
	}
	if err != nil {
		return st, fmt.Errorf("load scoring state: %w", err)
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return st, fmt.Errorf("load scoring state: %w", err)
	}
	return st, nil
}

// LatestModel returns the most recent fit, or ErrNotFound.
func (s *Store) LatestModel(ctx context.Context) (ModelRecord, error) {
	var m ModelRecord
	var at int64
	var raw string
	err := s.db.R.QueryRowContext(ctx, "SELECT fitted_at, customers, model FROM seg_models ORDER BY seq DESC LIMIT 1").Scan(&at, &m.Customers, &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return m, ErrNotFound
	}
	if err != nil {
		return m, fmt.Errorf("load model: %w", err)
	}
	m.FittedAt, m.Model = time.UnixMicro(at).UTC(), json.RawMessage(raw)
	return m, nil
}
