package app

import (
	"context"
	"fmt"

	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// RespondToReview records the seller's response to a stored review; a
// review not stored is feedback.ErrNotFound. (On the bus a response may
// come before its review, and is recorded as intake.)
func (a *App) RespondToReview(ctx context.Context, r *feedback.ReviewResponse) error {
	ok, err := a.store.ReviewExists(ctx, r.Platform, r.ReviewID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("review %w", feedback.ErrNotFound)
	}
	_, err = a.Record(ctx, []feedback.Input{{Ctx: ctx, ReviewResponse: r}}, nil)
	return err
}
