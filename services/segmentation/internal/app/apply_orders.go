package app

import (
	"context"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// ApplyOrders applies a batch of order events, with the dead letters of
// the batch, in one transaction and updates the hot store. It returns the
// number of events applied (redeliveries are not) and the indexes of the
// events put off because an earlier event of their order has not been
// applied yet; force applies those instead (their predecessor is taken to
// be gone). A zero now is the scorer's clock.
func (s *App) ApplyOrders(ctx context.Context, evs []segment.Event, dead []outbox.Message, now time.Time, force bool) (int, []int, error) {
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
