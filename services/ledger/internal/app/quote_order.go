package app

import (
	"context"
	"errors"

	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// QuoteOrder tells what an order of facts f would earn now: at the tier of
// customerID's account, with the first-order bonus while the account has
// no paid order ("" or no account: a new customer).
func (a *App) QuoteOrder(ctx context.Context, p *ledger.Programme, customerID string, f ledger.OrderFacts) ([]ledger.Award, error) {
	tier, first := 0, true
	if customerID != "" {
		v, err := a.Account(ctx, p, customerID, 0)
		switch {
		case err == nil:
			tier, first = p.TierIndex(v.Account.Tier), v.Account.PaidOrders == 0
		case !errors.Is(err, ledger.ErrNotFound):
			return nil, err
		}
	}
	return p.Earn(f, tier, first), nil
}
