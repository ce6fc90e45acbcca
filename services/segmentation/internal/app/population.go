package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/hot"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// Population returns the segment sizes and values and the order-count
// histogram, from the hot store.
func (s *App) Population(ctx context.Context) (*segment.Population, error) {
	return s.hot.Population(ctx)
}

// Summary returns the last scoring run's summary (time, customers, model,
// CLV distribution), from the hot store.
func (s *App) Summary(ctx context.Context) (hot.Summary, error) {
	return s.hot.Summary(ctx)
}
