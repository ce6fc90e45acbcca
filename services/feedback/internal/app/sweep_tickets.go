package app

import (
	"context"
	"errors"

	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// SweepTickets opens the cases of tickets unanswered past the
// first-response threshold, brings their customers' values up to date for
// the recovery queue, and returns how many cases it opened.
func (a *App) SweepTickets(ctx context.Context) (int, error) {
	cases, err := a.sweep(ctx, 200)
	if len(cases) > 0 {
		ids := make([]string, 0, len(cases))
		for _, c := range cases {
			ids = append(ids, c.CustomerID)
		}
		found, _ := a.lookupNow(ctx, ids)
		err = errors.Join(err, a.recordProfiles(ctx, found))
	}
	return len(cases), err
}

// sweep opens the cases of the unanswered tickets, up to limit tickets a
// transaction, and returns them.
func (a *App) sweep(ctx context.Context, limit int) ([]feedback.Case, error) {
	var all []feedback.Case
	for {
		now := a.opts.Now().UTC()
		var cases []feedback.Case
		found, err := a.store.UpdateUnansweredTickets(ctx, now.Add(-a.opts.FirstResponseThreshold), limit, func(b *feedback.Batch) error {
			b.Sweep(now, a.opts.FirstResponseThreshold)
			cases = b.Cases
			return nil
		})
		if err != nil {
			return all, err
		}
		all = append(all, cases...)
		if found < limit {
			return all, nil
		}
	}
}
