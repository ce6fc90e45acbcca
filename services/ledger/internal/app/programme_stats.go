package app

import (
	"context"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// Stats returns the movements per UTC day of the days [from, to) touches,
// and the balance outstanding before the first of them.
func (a *App) Stats(ctx context.Context, from, to time.Time) (days []ledger.DayStats, before int64, err error) {
	return a.store.Stats(ctx, from, to)
}
