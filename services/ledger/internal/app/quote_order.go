package app

import (
	"context"
	"errors"

	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// QuoteOrder tells what an order of facts f would earn if order-ingest
// accepted it now (ledger.Account.Quote): a live order at the tier of
// customerID's account, with the first-order bonus while the account has
// no paid order ("" or no account: a new customer); an order that occurred
// longer ago than the programme's historic_after_days as the historic
// order it would be.
func (a *App) QuoteOrder(ctx context.Context, p *ledger.Programme, customerID string, f ledger.OrderFacts) ([]ledger.Award, error) {
	now := a.now()
	if f.IngestedAt.IsZero() {
		f.IngestedAt = now
	}
	acc := ledger.NewAccount(p, customerID, now)
	if customerID != "" {
		// The spend of the window ending at the order's time, for a
		// historic order's tier.
		from := now
		if f.At.Before(from) {
			from = f.At
		}
		got, err := a.store.Account(ctx, customerID, from.Add(-p.TierWindow()))
		switch {
		case err == nil:
			acc = got
		case !errors.Is(err, ledger.ErrNotFound):
			return nil, err
		}
	}
	return acc.Quote(p, f), nil
}
