package app

import (
	"context"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// MarkAgony applies a batch of the feedback service's agony marks, with
// the dead letters of the batch, and updates the hot store. It returns the
// number of marks that took effect (redelivered and older ones do not). A
// zero now is the scorer's clock.
func (s *App) MarkAgony(ctx context.Context, marks []segment.AgonyMark, dead []outbox.Message, now time.Time) (int, error) {
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
