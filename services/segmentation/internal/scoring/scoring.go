// Package scoring turns features into scores: it applies order-event
// batches through the store and rescores the customers they change with
// the current boundaries and model, and it runs the periodic (and on
// demand) scoring of the whole base — RFM boundaries, the BG/NBD and
// Gamma-Gamma fit, predictions, flags, segment-changed events — and keeps
// the hot store in step with SQL.
package scoring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/hot"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// Options configure scoring.
type Options struct {
	Rules segment.FlagRules
	// HorizonDays is how far predictions look ahead.
	HorizonDays int
	// AnnualDiscountRate discounts future purchases in the CLV.
	AnnualDiscountRate float64
	// MinInterval is the least time between two runs started because the
	// base grew (see Apply), so that a stream of new customers does not
	// keep the scorer refitting.
	MinInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Scorer owns the writes of segmentation: batches of order events, agony
// marks and scoring runs take turns, so that a run never overwrites a
// newer score with one computed from older features, and the hot store
// sees one writer.
type Scorer struct {
	st   *store.Store
	hot  hot.Store
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	state store.State
	model *clv.Model
	// hotStale is set when a hot-store write failed after SQL committed:
	// the next run rebuilds it from SQL.
	hotStale bool
	// newSinceRun counts customers first seen since the last run; kick
	// asks Run for an early run when they are many.
	newSinceRun int
	kick        chan struct{}
}

// New loads the last scoring state and model.
func New(ctx context.Context, st *store.Store, h hot.Store, o Options, log *slog.Logger) (*Scorer, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HorizonDays <= 0 {
		o.HorizonDays = 365
	}
	s := &Scorer{st: st, hot: h, opts: o, log: log, kick: make(chan struct{}, 1)}
	state, err := st.LoadState(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		state = store.State{VIPThreshold: math.MaxInt64}
	case err != nil:
		return nil, err
	}
	s.state = state
	rec, err := st.LatestModel(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		m := &clv.Model{}
		if err := json.Unmarshal(rec.Model, m); err != nil {
			return nil, fmt.Errorf("stored model: %w", err)
		}
		s.model = m
	}
	return s, nil
}

// ApplyOrders applies a batch of order events, with the dead letters of
// the batch, in one transaction and updates the hot store. It returns the
// number of events applied (redeliveries are not) and the indexes of the
// events put off because an earlier event of their order has not been
// applied yet; force applies those instead (their predecessor is taken to
// be gone). A zero now is the scorer's clock.
func (s *Scorer) ApplyOrders(ctx context.Context, evs []segment.Event, dead []outbox.Message, now time.Time, force bool) (int, []int, error) {
	var later []int
	b := store.Batch{Events: evs, Extra: dead, Now: now, Force: force, Later: func(i int) { later = append(later, i) }}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Now.IsZero() {
		b.Now = s.opts.Now().UTC()
	}
	var encErr error
	ups, applied, err := s.st.Apply(ctx, b, s.rescorer(ctx, b.Now, &encErr))
	if err == nil {
		err = encErr
	}
	if err != nil {
		return 0, nil, err
	}
	s.putHot(ctx, ups)
	for _, u := range ups {
		if u.Old == nil {
			s.newSinceRun++
		}
	}
	// Quintiles of a base that grew by a tenth (or of no base at all) no
	// longer describe it: new customers would score against the wrong
	// boundaries until the next scheduled run.
	if s.newSinceRun > 0 && s.newSinceRun*10 >= s.state.Boundaries.Customers {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return applied, later, nil
}

// SetAgony marks or clears a customer's agony now, by hand; the feedback
// service's events go through MarkAgony.
func (s *Scorer) SetAgony(ctx context.Context, customerID string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now().UTC()
	var encErr error
	u, err := s.st.SetAgony(ctx, customerID, on, now, s.rescorer(ctx, now, &encErr))
	if err == nil {
		err = encErr
	}
	if err != nil {
		return err
	}
	s.putHot(ctx, []store.Update{*u})
	return nil
}

// MarkAgony applies a batch of the feedback service's agony marks, with
// the dead letters of the batch, and updates the hot store. It returns the
// number of marks that took effect (redelivered and older ones do not). A
// zero now is the scorer's clock.
func (s *Scorer) MarkAgony(ctx context.Context, marks []segment.AgonyMark, dead []outbox.Message, now time.Time) (int, error) {
	b := store.AgonyBatch{Marks: marks, Extra: dead, Now: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Now.IsZero() {
		b.Now = s.opts.Now().UTC()
	}
	var encErr error
	ups, applied, err := s.st.MarkAgony(ctx, b, s.rescorer(ctx, b.Now, &encErr))
	if err == nil {
		err = encErr
	}
	if err != nil {
		return 0, err
	}
	s.putHot(ctx, ups)
	return applied, nil
}

func (s *Scorer) putHot(ctx context.Context, ups []store.Update) {
	if len(ups) == 0 {
		return
	}
	ps := make([]segment.Profile, len(ups))
	for i := range ups {
		ps[i] = ups[i].Profile()
	}
	if err := s.hot.Put(ctx, ps); err != nil {
		// SQL has the change; the hot store is rebuilt from it by the next
		// run rather than failing a batch that is already committed.
		s.hotStale = true
		s.log.WarnContext(ctx, "hot store write failed; it will be rebuilt", "error", err)
	}
}

// rescorer scores customers with the current boundaries and model. The
// predictions (a few hypergeometric series per customer, the bulk of the
// work) are spread over the cores.
func (s *Scorer) rescorer(ctx context.Context, now time.Time, encErr *error) store.Rescorer {
	return func(items []store.Rescore) ([]segment.Score, []outbox.Message) {
		today := segment.DayNumber(now)
		preds := make([]*segment.Prediction, len(items))
		if s.model != nil {
			parallel(len(items), func(i int) {
				preds[i], _ = s.predict(s.model, items[i].Features, today)
			})
		}
		scores := make([]segment.Score, len(items))
		var msgs []outbox.Message
		for i, it := range items {
			vipValue := it.Features.TotalValue
			if s.state.VIPByCLV {
				vipValue = 0
				if preds[i] != nil {
					vipValue = preds[i].CLV
				}
			}
			scores[i] = s.score(it.Features, it.Agony, preds[i], vipValue, s.state, now)
			msgs = append(msgs, s.changed(ctx, it.Old, scores[i], encErr)...)
		}
		return scores, msgs
	}
}

// parallel calls fn(0..n-1) on every core; small n stays on this one.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/8)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				fn(i)
			}
		}(w)
	}
	wg.Wait()
}

func (s *Scorer) score(f *segment.Features, agony bool, pred *segment.Prediction, vipValue int64, st store.State, now time.Time) segment.Score {
	rfm := st.Boundaries.Score(f)
	sc := segment.Score{CustomerID: f.CustomerID, RFM: rfm, Segment: segment.Of(rfm), Prediction: pred, ScoredAt: now}
	sc.Flags = s.opts.Rules.Flags(segment.FlagInput{
		Features: f, Prediction: pred, VIPValue: vipValue, VIPThreshold: st.VIPThreshold, Agony: agony,
		Today: segment.DayNumber(now),
	})
	return sc
}

func (s *Scorer) changed(ctx context.Context, old *segment.Score, sc segment.Score, encErr *error) []outbox.Message {
	if !sc.Changed(old) {
		return nil
	}
	m, err := bus.SegmentChanged(ctx, old, sc)
	if err != nil {
		*encErr = err
		return nil
	}
	return []outbox.Message{m}
}

// predict values one customer with a fitted model; customers without an
// order, or whom the model cannot value, get no prediction.
func (s *Scorer) predict(m *clv.Model, f *segment.Features, today int32) (*segment.Prediction, error) {
	sum, ok := f.Summarize(today)
	if !ok || f.Orders <= 0 {
		return nil, nil
	}
	unit := m.Unit.Days()
	c := clv.Customer{ID: f.CustomerID, X: sum.X, TX: sum.TX / unit, T: sum.T / unit, Monetary: sum.Monetary}
	horizon := float64(s.opts.HorizonDays) / unit
	purchases, err := m.BGNBD.ExpectedPurchases(c, horizon)
	if err != nil {
		return nil, err
	}
	spend, err := m.GammaGamma.ExpectedSpend(c)
	if err != nil {
		return nil, err
	}
	value, err := m.CLV(c, clv.CLVOptions{Horizon: horizon, AnnualDiscountRate: s.opts.AnnualDiscountRate})
	if err != nil {
		return nil, err
	}
	if math.IsNaN(value) || math.IsInf(value, 0) || math.IsNaN(spend) || math.IsInf(spend, 0) {
		return nil, errors.New("prediction is not finite")
	}
	return &segment.Prediction{
		ExpectedPurchases: purchases, HorizonDays: s.opts.HorizonDays, PAlive: m.BGNBD.ProbAlive(c),
		ExpectedOrderValue: int64(math.Round(spend)), CLV: int64(math.Round(value)),
	}, nil
}

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
func (s *Scorer) predictAll(m *clv.Model, cs []store.Customer, today int32) (map[string]predicted, int) {
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
func (s *Scorer) Refit(ctx context.Context) (Result, error) {
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
		s.log.InfoContext(ctx, "model not fitted; keeping the previous one", "error", fitErr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if model == nil {
		model = s.model
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
		sc := s.score(c.Features, c.Agony, predOf[i], vip, state, now)
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
	s.state, s.model, s.newSinceRun = state, model, 0
	res.Customers, res.Model = len(cs), model
	if err := s.hot.Replace(ctx, profiles, s.summary()); err != nil {
		s.hotStale = true
		return res, fmt.Errorf("scores saved; hot store not rebuilt: %w", err)
	}
	s.hotStale = false
	return res, nil
}

func (s *Scorer) summary() hot.Summary {
	return hot.Summary{ScoredAt: s.state.ScoredAt, Customers: s.state.Boundaries.Customers, Model: s.model, CLV: s.state.CLV}
}

// fit fits both models on the customers with an order.
func fit(ctx context.Context, cs []store.Customer, today int32, now time.Time) (*clv.Model, error) {
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

// Rebuild restores the hot store from SQL: every profile, leaderboard,
// segment and counter, and the summary of the last run.
func (s *Scorer) Rebuild(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, err := s.st.Customers(ctx)
	if err != nil {
		return 0, err
	}
	profiles := make([]segment.Profile, 0, len(cs))
	for _, c := range cs {
		sc := c.Score
		if sc == nil {
			// Features without a score cannot happen (they are written
			// together); score it as the consumer would have.
			sc = &segment.Score{CustomerID: c.Features.CustomerID}
		}
		profiles = append(profiles, sc.Profile(c.Features))
	}
	if err := s.hot.Replace(ctx, profiles, s.summary()); err != nil {
		return 0, err
	}
	s.hotStale = false
	return len(profiles), nil
}

// EnsureHot rebuilds the hot store when it was flushed, never built, or a
// write to it failed.
func (s *Scorer) EnsureHot(ctx context.Context) error {
	built, err := s.hot.Built(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	stale := s.hotStale
	s.mu.Unlock()
	if built && !stale {
		return nil
	}
	n, err := s.Rebuild(ctx)
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "hot store rebuilt from SQL", "customers", n)
	return nil
}

// Model returns the model in use and the last run's state.
func (s *Scorer) Model() (*clv.Model, store.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.model, s.state
}

// Run scores the base every interval (and at once when the last run is
// older than that), and checks the hot store every minute, until ctx is
// cancelled.
func (s *Scorer) Run(ctx context.Context, every time.Duration) error {
	check := time.NewTicker(time.Minute)
	defer check.Stop()
	for {
		_, st := s.Model()
		wait := time.Until(st.ScoredAt.Add(every))
		if st.ScoredAt.IsZero() || wait < 0 {
			wait = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-check.C:
			timer.Stop()
			if err := s.EnsureHot(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "hot store check failed", "error", err)
			}
		case <-s.kick:
			timer.Stop()
			// The spacing protects a scored base from back-to-back runs; a
			// base nobody has been scored in yet is scored at once.
			if gap := time.Until(st.ScoredAt.Add(s.opts.MinInterval)); gap > 0 && st.Boundaries.Customers > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(gap):
				}
			}
			s.runOnce(ctx, every)
		case <-timer.C:
			s.runOnce(ctx, every)
		}
	}
}

func (s *Scorer) runOnce(ctx context.Context, every time.Duration) {
	res, err := s.Refit(ctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "scoring run failed", "error", err)
		s.retryLater(ctx, every)
		return
	}
	s.log.InfoContext(ctx, "scoring run done", "customers", res.Customers, "changed", res.Changed,
		"model", res.Model != nil, "unvalued", res.Unvalued, "duration", time.Since(res.ScoredAt))
}

// retryLater waits a little before the next attempt of a failed run.
func (s *Scorer) retryLater(ctx context.Context, every time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(min(every, time.Minute)):
	}
}
