package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// SetAgony marks or clears a customer's agony now, by hand, and rescores
// them in the same transaction; the feedback service's events go through
// MarkAgony. The mark is now: a feedback event older than it changes
// nothing. A customer segmentation has not seen yet is store.ErrNotFound.
func (s *App) SetAgony(ctx context.Context, customerID string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now().UTC()
	var ups []update
	err := s.st.UpdateAgony(ctx, []string{customerID}, now, func(b *segment.AgonyBatch) ([]outbox.Message, error) {
		if !b.Set(customerID, on, now) {
			return nil, store.ErrNotFound
		}
		var msgs []outbox.Message
		var err error
		ups, msgs, err = s.rescore(ctx, b.Customers, b.Flipped, now)
		return msgs, err
	})
	if err != nil {
		return err
	}
	s.putHot(ctx, ups)
	return nil
}
