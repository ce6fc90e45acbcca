package app

import (
	"context"
	"errors"
)

// SweepTickets opens the cases of tickets unanswered past the
// first-response threshold, brings their customers' values up to date for
// the recovery queue, and returns how many cases it opened.
func (a *App) SweepTickets(ctx context.Context) (int, error) {
	cases, err := a.store.Sweep(ctx, 200)
	if len(cases) > 0 {
		ids := make([]string, 0, len(cases))
		for _, c := range cases {
			ids = append(ids, c.CustomerID)
		}
		found, _ := a.lookupNow(ctx, ids)
		err = errors.Join(err, a.store.ApplyProfiles(ctx, found))
	}
	return len(cases), err
}
