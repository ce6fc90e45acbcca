package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// Members returns up to n customers of a segment with ids after the given
// one, in id order, from the hot store.
func (s *App) Members(ctx context.Context, seg segment.Segment, after string, n int) ([]string, error) {
	return s.hot.Members(ctx, seg, after, n)
}
