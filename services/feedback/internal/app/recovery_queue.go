package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// RecoveryQueue lists up to limit open recovery cases, the most valuable
// customers first and, among equals, the oldest case first.
func (a *App) RecoveryQueue(ctx context.Context, limit int) ([]feedback.Case, error) {
	return a.store.Queue(ctx, limit)
}

// CustomerCases lists up to limit of one customer's open recovery cases,
// the oldest first.
func (a *App) CustomerCases(ctx context.Context, customerID string, limit int) ([]feedback.Case, error) {
	return a.store.CustomerCases(ctx, customerID, limit)
}
