package app

import (
	"context"
	"time"
)

// Run scores the base every interval (and at once when the last run is
// older than that), and checks the hot store every minute, until ctx is
// cancelled.
func (s *App) Run(ctx context.Context, every time.Duration) error {
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

func (s *App) runOnce(ctx context.Context, every time.Duration) {
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
func (s *App) retryLater(ctx context.Context, every time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(min(every, time.Minute)):
	}
}
