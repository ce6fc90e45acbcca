package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/hot"
)

// Top returns up to n customers with the highest value by the ranking,
// from the hot store.
func (s *App) Top(ctx context.Context, by hot.Ranking, n int) ([]hot.Ranked, error) {
	return s.hot.Top(ctx, by, n)
}
