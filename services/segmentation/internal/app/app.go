// Package app holds segmentation's use cases, one file each: applying
// order-event batches and agony marks (rescoring the customers they change
// with the current boundaries and model), setting agony by hand, the
// periodic (and on demand) scoring of the whole base — RFM boundaries, the
// BG/NBD and Gamma-Gamma fit, predictions, flags, segment-changed events —
// the rebuild of the hot store from SQL, and the reads the gRPC port
// answers from the hot store.
package app

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
	// base grew (see ApplyOrders), so that a stream of new customers does not
	// keep the app refitting.
	MinInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// App runs the use cases. It owns the writes of segmentation: batches of
// order events, agony marks and scoring runs take turns, so that a run never overwrites a
// newer score with one computed from older features, and the hot store
// sees one writer.
type App struct {
	st   *store.Store
	hot  hot.Store
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	state store.State
	model *clv.Model
	// withheld is why customers have no prediction while model is nil.
	withheld segment.Withheld
	// hotStale is set when a hot-store write failed after SQL committed:
	// the next run rebuilds it from SQL.
	hotStale bool
	// newSinceRun counts customers first seen since the last run; kick
	// asks Run for an early run when they are many.
	newSinceRun int
	kick        chan struct{}
}

// New loads the last scoring state and model.
func New(ctx context.Context, st *store.Store, h hot.Store, o Options, log *slog.Logger) (*App, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HorizonDays <= 0 {
		o.HorizonDays = 365
	}
	s := &App{st: st, hot: h, opts: o, log: log, kick: make(chan struct{}, 1), withheld: segment.WithheldNoModel}
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
		// A model fitted before fits asked for enough history would keep
		// extrapolating from a handful of customers until a fit succeeds:
		// leave it out, and the next run withholds the predictions.
		if m.RepeatCustomers < clv.MinRepeatCustomers {
			log.WarnContext(ctx, "stored model fitted on too little history; not used",
				"repeat_customers", m.RepeatCustomers, "need", clv.MinRepeatCustomers)
			s.withheld = segment.WithheldNotEnoughHistory
			break
		}
		s.model = m
	}
	return s, nil
}

// update is one customer a transaction changed.
type update struct {
	features *segment.Features
	old      *segment.Score
	new      segment.Score
}

func (s *App) putHot(ctx context.Context, ups []update) {
	if len(ups) == 0 {
		return
	}
	ps := make([]segment.Profile, len(ups))
	for i := range ups {
		ps[i] = ups[i].new.Profile(ups[i].features)
	}
	if err := s.hot.Put(ctx, ps); err != nil {
		// SQL has the change; the hot store is rebuilt from it by the next
		// run rather than failing a batch that is already committed.
		s.hotStale = true
		s.log.WarnContext(ctx, "hot store write failed; it will be rebuilt", "error", err)
	}
}

// rescore scores customers (ids, of cs) with the current boundaries and
// model, gives each their new score, and returns the changes with the
// segment-changed events they call for. The predictions (a few
// hypergeometric series per customer, the bulk of the work) are spread
// over the cores.
func (s *App) rescore(ctx context.Context, cs map[string]*segment.Customer, ids []string, now time.Time) ([]update, []outbox.Message, error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	today := segment.DayNumber(now)
	preds := make([]*segment.Prediction, len(ids))
	if s.model != nil {
		parallel(len(ids), func(i int) {
			preds[i], _ = s.predict(s.model, cs[ids[i]].Features, today)
		})
	}
	ups := make([]update, len(ids))
	var msgs []outbox.Message
	var encErr error
	for i, id := range ids {
		c := cs[id]
		vipValue := c.Features.TotalValue
		if s.state.VIPByCLV {
			vipValue = 0
			if preds[i] != nil {
				vipValue = preds[i].CLV
			}
		}
		ups[i] = update{features: c.Features, old: c.Score, new: s.score(c.Features, c.Agony, preds[i], withheldOf(s.model, s.withheld, c.Features, preds[i]), vipValue, s.state, now)}
		c.Score = &ups[i].new
		msgs = append(msgs, s.changed(ctx, ups[i].old, ups[i].new, &encErr)...)
	}
	if encErr != nil {
		return nil, nil, encErr
	}
	return ups, msgs, nil
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

func (s *App) score(f *segment.Features, agony bool, pred *segment.Prediction, withheld segment.Withheld, vipValue int64, st store.State, now time.Time) segment.Score {
	rfm := st.Boundaries.Score(f)
	sc := segment.Score{CustomerID: f.CustomerID, RFM: rfm, Segment: segment.Of(rfm), Prediction: pred, Withheld: withheld, ScoredAt: now}
	sc.Flags = s.opts.Rules.Flags(segment.FlagInput{
		Features: f, Prediction: pred, VIPValue: vipValue, VIPThreshold: st.VIPThreshold, Agony: agony,
		Today: segment.DayNumber(now),
	})
	return sc
}

func (s *App) changed(ctx context.Context, old *segment.Score, sc segment.Score, encErr *error) []outbox.Message {
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
func (s *App) predict(m *clv.Model, f *segment.Features, today int32) (*segment.Prediction, error) {
	sum, ok := f.Summarize(today)
	if !ok || f.Orders <= 0 {
		return nil, nil
	}
	unit := m.Unit.Days()
	c := clv.Customer{ID: f.CustomerID, X: sum.X, TX: sum.TX / unit, T: sum.T / unit, Monetary: sum.Monetary}
	horizon := float64(s.opts.HorizonDays) / unit
	p, err := m.Predict(c, clv.CLVOptions{Horizon: horizon, AnnualDiscountRate: s.opts.AnnualDiscountRate})
	if err != nil {
		return nil, err
	}
	if !finite(p.CLV, p.OrderValue, p.Purchases) {
		return nil, errors.New("prediction is not finite")
	}
	pred := &segment.Prediction{
		ExpectedPurchases: p.Purchases, HorizonDays: s.opts.HorizonDays, PAlive: p.PAlive,
		ExpectedOrderValue: int64(math.Round(p.OrderValue)), CLV: int64(math.Round(p.CLV)),
	}
	if p.Interval && finite(p.PurchasesLow, p.PurchasesHigh, p.CLVLow, p.CLVHigh) && p.CLVHigh < math.MaxInt64/2 {
		pred.Interval = true
		pred.PurchasesLow, pred.PurchasesHigh = p.PurchasesLow, p.PurchasesHigh
		pred.CLVLow, pred.CLVHigh = int64(math.Round(p.CLVLow)), int64(math.Round(p.CLVHigh))
	}
	return pred, nil
}

func finite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// withheldOf says why a customer scored with model has no prediction
// pred; noModel is the reason when model is nil.
func withheldOf(model *clv.Model, noModel segment.Withheld, f *segment.Features, pred *segment.Prediction) segment.Withheld {
	switch {
	case pred != nil:
		return segment.NotWithheld
	case f.Orders <= 0 || len(f.Days) == 0:
		return segment.WithheldNoOrders
	case model == nil:
		return noModel
	}
	return segment.WithheldUnvalued
}

func (s *App) summary() hot.Summary {
	return hot.Summary{ScoredAt: s.state.ScoredAt, Customers: s.state.Boundaries.Customers, Model: s.model, CLV: s.state.CLV}
}
