package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// Entries pages through an account's entries, newest first: at most n
// entries older than seq `before` (0: from the newest). next is the seq to
// continue from, 0 at the end.
func (a *App) Entries(ctx context.Context, customerID string, before int64, n int) (es []*ledger.Entry, next int64, err error) {
	return a.store.Entries(ctx, customerID, before, n)
}
