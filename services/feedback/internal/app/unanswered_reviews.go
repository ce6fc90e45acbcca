package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// UnansweredReviews lists up to limit reviews without a response:
// negative ones first, oldest first within each.
func (a *App) UnansweredReviews(ctx context.Context, limit int) ([]feedback.Review, error) {
	return a.store.UnansweredReviews(ctx, limit)
}
