package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// Adjust adds or removes points by hand on an existing account
// (ledger.Batch.Adjust); a retry with the same key returns the first
// adjustment, a different request under a used key is
// ledger.ErrIdempotencyReuse.
func (a *App) Adjust(ctx context.Context, p *ledger.Programme, customerID, key string, points int64, actor, reason string) (*ledger.Entry, error) {
	now := a.now()
	n := ledger.AccountNeeds(p, now, customerID)
	n.Entries = []string{ledger.AdjustmentID(customerID, key)}
	var out *ledger.Entry
	err := a.store.UpdateAccounts(ctx, p, now, n, func(b *ledger.Batch) error {
		e, err := b.Adjust(ctx, customerID, key, points, actor, reason)
		out = e
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
