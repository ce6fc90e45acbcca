package app

import (
	"context"
	"errors"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// FillSegments asks segmentation again about the customers it could not
// tell, and about the customers with open recovery cases whose value is
// older than Options.ValueMaxAge; it returns how many answers it recorded.
func (a *App) FillSegments(ctx context.Context) (int, error) {
	n, err := a.fillPending(ctx)
	m, err2 := a.refreshValues(ctx)
	return n + m, errors.Join(err, err2)
}

// refreshValues brings the values of customers with open cases up to
// date. A customer segmentation no longer knows has no value now.
func (a *App) refreshValues(ctx context.Context) (int, error) {
	ids, err := a.store.StaleValues(ctx, a.opts.Now().Add(-a.opts.ValueMaxAge), 500)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	found, unknown := a.lookupNow(ctx, ids)
	for _, id := range unknown {
		found[id] = feedback.Profile{}
	}
	return len(found), a.recordProfiles(ctx, found)
}

func (a *App) fillPending(ctx context.Context) (int, error) {
	pending, err := a.store.PendingCustomers(ctx, 500)
	if err != nil || len(pending) == 0 {
		return 0, err
	}
	ids := make([]string, 0, len(pending))
	since := map[string]time.Time{}
	for _, p := range pending {
		ids = append(ids, p.ID)
		since[p.ID] = p.Since
	}
	found, unknown := a.lookupNow(ctx, ids)
	now := a.opts.Now()
	var waiting []string
	for _, id := range unknown {
		// Still unknown after FillGiveUp: its responses stay unsegmented.
		if now.Sub(since[id]) >= a.opts.FillGiveUp {
			found[id] = feedback.Profile{}
		} else {
			waiting = append(waiting, id)
		}
	}
	return len(found), errors.Join(a.recordProfiles(ctx, found), a.store.MarkAsked(ctx, waiting))
}
