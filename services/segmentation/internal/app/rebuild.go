package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// Rebuild restores the hot store from SQL: every profile, leaderboard,
// segment and counter, and the summary of the last run.
func (s *App) Rebuild(ctx context.Context) (int, error) {
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
func (s *App) EnsureHot(ctx context.Context) error {
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
