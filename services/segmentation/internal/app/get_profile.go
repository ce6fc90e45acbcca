package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// Profile returns one customer's profile from the hot store, or
// hot.ErrNotFound.
func (s *App) Profile(ctx context.Context, customerID string) (segment.Profile, error) {
	return s.hot.Profile(ctx, customerID)
}
