package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// Redeem spends a customer's points for a reward or a number of points
// (ledger.Batch.Redeem): a retry with the same key returns the first
// redemption, a different request under a used key is
// ledger.ErrIdempotencyReuse, a reward out of stock ledger.ErrOutOfStock.
// Nothing changes on error.
func (a *App) Redeem(ctx context.Context, p *ledger.Programme, customerID string, r ledger.Redemption) (*ledger.Entry, error) {
	now := a.now()
	n := ledger.AccountNeeds(p, now, customerID)
	n.Entries = []string{ledger.RedemptionID(customerID, r.Key)}
	if r.RewardID != "" {
		n.Rewards = []string{r.RewardID}
	}
	var out *ledger.Entry
	err := a.store.UpdateAccounts(ctx, p, now, n, func(b *ledger.Batch) error {
		e, err := b.Redeem(ctx, customerID, r)
		out = e
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
