package app

import (
	"context"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// MarkAgony applies a batch of the feedback service's agony marks, with
// the dead letters of the batch, in one transaction and updates the hot
// store: each customer's agony moves only forward in time (see
// segment.AgonyBatch.Apply), and a customer with features whose agony
// flipped is rescored. It returns the number of marks that took effect
// (redelivered and older ones do not). A zero now is the app's clock.
func (s *App) MarkAgony(ctx context.Context, marks []segment.AgonyMark, dead []outbox.Message, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.IsZero() {
		now = s.opts.Now().UTC()
	}
	ids := make([]string, len(marks))
	for i, m := range marks {
		ids[i] = m.CustomerID
	}
	var (
		ups     []update
		applied int
	)
	err := s.st.UpdateAgony(ctx, ids, now, func(b *segment.AgonyBatch) ([]outbox.Message, error) {
		applied = b.Apply(marks)
		var msgs []outbox.Message
		var err error
		if ups, msgs, err = s.rescore(ctx, b.Customers, b.Flipped, now); err != nil {
			return nil, err
		}
		return append(msgs, dead...), nil
	})
	if err != nil {
		return 0, err
	}
	s.putHot(ctx, ups)
	return applied, nil
}
