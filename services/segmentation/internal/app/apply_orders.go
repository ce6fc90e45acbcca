package app

import (
	"context"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// ApplyOrders applies a batch of order events, with the dead letters of
// the batch, in one transaction and updates the hot store: events already
// applied are skipped, the others update their customer's features in
// order (see segment.OrderBatch.Apply), every changed customer is
// rescored, and features, orders, scores and outbox messages are written
// together. It returns the number of events applied (redeliveries are
// not) and the indexes of the events put off because an earlier event of
// their order has not been applied yet; force applies those instead
// (their predecessor is taken to be gone). A zero now is the app's clock.
func (s *App) ApplyOrders(ctx context.Context, evs []segment.Event, dead []outbox.Message, now time.Time, force bool) (int, []int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.IsZero() {
		now = s.opts.Now().UTC()
	}
	var (
		ups     []update
		applied int
		later   []int
	)
	err := s.st.UpdateOrders(ctx, evs, now, func(b *segment.OrderBatch) ([]outbox.Message, error) {
		applied, later = b.Apply(evs, force)
		var msgs []outbox.Message
		var err error
		if ups, msgs, err = s.rescore(ctx, b.Customers, b.ChangedCustomers, now); err != nil {
			return nil, err
		}
		return append(msgs, dead...), nil
	})
	if err != nil {
		return 0, nil, err
	}
	s.putHot(ctx, ups)
	for _, u := range ups {
		if u.old == nil {
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
