package app

import (
	"context"
	"time"
)

// TicketStats returns the tickets opened in [from, to), with the time each
// answered one waited for its first answer and each resolved one took to
// its resolution.
func (a *App) TicketStats(ctx context.Context, from, to time.Time) (tickets int64, firstResponse, resolution []time.Duration, err error) {
	return a.store.TicketStats(ctx, from, to)
}
