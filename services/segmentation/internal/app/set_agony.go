package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// SetAgony marks or clears a customer's agony now, by hand; the feedback
// service's events go through MarkAgony.
func (s *App) SetAgony(ctx context.Context, customerID string, on bool) error {
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
