package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// fingerprint tells whether a customer's features changed between the
// snapshot a fit was computed on and the one scored.
type fingerprint struct {
	orders, value int64
	days          int
	last          int32
}

func fingerprintOf(f *segment.Features) fingerprint {
	return fingerprint{orders: f.Orders, value: f.TotalValue, days: len(f.Days), last: f.LastOrderDay()}
}

type predicted struct {
	fp   fingerprint
	pred *segment.Prediction
}

// predictAll values every customer on all cores.
func (s *App) predictAll(m *clv.Model, cs []segment.Customer, today int32) (map[string]predicted, int) {
	out := make([]predicted, len(cs))
	failed := make([]bool, len(cs))
	parallel(len(cs), func(i int) {
		p, err := s.predict(m, cs[i].Features, today)
		failed[i] = err != nil
		out[i] = predicted{fp: fingerprintOf(cs[i].Features), pred: p}
	})
	byID := make(map[string]predicted, len(cs))
	n := 0
	for i, c := range cs {
		byID[c.Features.CustomerID] = out[i]
		if failed[i] {
			n++
		}
	}
	return byID, n
}

// Result says what a scoring run did.
type Result struct {
	ScoredAt  time.Time
	Customers int
	Changed   int
	// Model is the model in use after the run (nil when none could be
	// fitted yet); FitErr why this run's fit failed, if it did.
	Model  *clv.Model
	FitErr error
	// Unvalued counts customers the model could not value.
	Unvalued int
}

// Refit scores the whole base: it fits the models on a snapshot (without
// holding up the consumer), then, taking its turn, recomputes boundaries,
// predictions, segments and flags from the current features, writes them
// with the segment-changed events and the fit in one transaction, and
// rebuilds the hot store from the result.
func (s *App) Refit(ctx context.Context) (Result, error) {
	now := s.opts.Now().UTC()
	today := segment.DayNumber(now)
	snapshot, err := s.st.Customers(ctx)
	if err != nil {
		return Result{}, err
	}
	res := Result{ScoredAt: now}
	model, fitErr := fit(ctx, snapshot, today, now)
	if fitErr != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		res.FitErr = fitErr
		s.log.WarnContext(ctx, "model not fitted; keeping the previous one", "error", fitErr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	withheld := s.withheld
	if model == nil {
		model = s.model
		if model == nil {
			withheld = segment.WithheldNoModel
			if errors.Is(fitErr, clv.ErrNotEnoughHistory) {
				withheld = segment.WithheldNotEnoughHistory
			}
		}
	}
	var preds map[string]predicted
	if model != nil {
		preds, res.Unvalued = s.predictAll(model, snapshot, today)
	}
	snapshot = nil
	cs, err := s.st.Customers(ctx)
	if err != nil {
		return Result{}, err
	}
	fs := make([]*segment.Features, len(cs))
	for i, c := range cs {
		fs[i] = c.Features
	}
	state := store.State{ScoredAt: now, Boundaries: segment.ComputeBoundaries(fs), VIPByCLV: model != nil}
	predOf := make([]*segment.Prediction, len(cs))
	var vipValues, clvs []int64
	for i, c := range cs {
		if model != nil {
			p, ok := preds[c.Features.CustomerID]
			if !ok || p.fp != fingerprintOf(c.Features) {
				// Changed since the snapshot: value it now.
				p.pred, err = s.predict(model, c.Features, today)
				if err != nil {
					res.Unvalued++
				}
			}
			predOf[i] = p.pred
		}
		if c.Features.Orders <= 0 {
			continue
		}
		switch {
		case model == nil:
			vipValues = append(vipValues, c.Features.TotalValue)
		case predOf[i] != nil:
			vipValues = append(vipValues, predOf[i].CLV)
			clvs = append(clvs, predOf[i].CLV)
		default:
			vipValues = append(vipValues, 0)
		}
	}
	state.VIPThreshold = segment.VIPThreshold(vipValues, s.opts.Rules.VIPShare)
	state.CLV = segment.CLVDistribution(clvs)
	run := store.Run{State: state, Now: now, Scores: make([]segment.Score, len(cs))}
	profiles := make([]segment.Profile, len(cs))
	var encErr error
	for i, c := range cs {
		vip := c.Features.TotalValue
		if model != nil {
			vip = 0
			if predOf[i] != nil {
				vip = predOf[i].CLV
			}
		}
		sc := s.score(c.Features, c.Agony, predOf[i], withheldOf(model, withheld, c.Features, predOf[i]), vip, state, now)
		run.Scores[i] = sc
		if msgs := s.changed(ctx, c.Score, sc, &encErr); len(msgs) > 0 {
			run.Messages = append(run.Messages, msgs...)
			res.Changed++
		}
		profiles[i] = sc.Profile(c.Features)
	}
	if encErr != nil {
		return Result{}, encErr
	}
	if fitErr == nil && model != nil {
		raw, err := json.Marshal(model)
		if err != nil {
			return Result{}, err
		}
		run.Model = &store.ModelRecord{FittedAt: model.FittedAt, Customers: int64(model.Customers), Model: raw}
	}
	if err := s.st.SaveRun(ctx, run); err != nil {
		return Result{}, err
	}
	s.state, s.model, s.withheld, s.newSinceRun = state, model, withheld, 0
	res.Customers, res.Model = len(cs), model
	if err := s.hot.Replace(ctx, profiles, s.summary()); err != nil {
		s.hotStale = true
		return res, fmt.Errorf("scores saved; hot store not rebuilt: %w", err)
	}
	s.hotStale = false
	return res, nil
}

// fit fits both models on the customers with an order.
func fit(ctx context.Context, cs []segment.Customer, today int32, now time.Time) (*clv.Model, error) {
	sums := make([]clv.Customer, 0, len(cs))
	for _, c := range cs {
		if c.Features.Orders <= 0 {
			continue
		}
		sum, ok := c.Features.Summarize(today)
		if !ok {
			continue
		}
		sums = append(sums, clv.Customer{ID: c.Features.CustomerID, X: sum.X, TX: sum.TX, T: sum.T, Monetary: sum.Monetary})
	}
	return clv.Fit(ctx, sums, clv.Day, now)
}
