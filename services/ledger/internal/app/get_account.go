package app

import (
	"context"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// View is an account as GetAccount shows it.
type View struct {
	Account  *ledger.Account
	Spend    int64 // qualifying spend in the window ending now
	Expiring int64
	NextExp  time.Time
}

// Account reads an account as of now, with the points expiring within
// the given time; points past their expiry are shown as expired even
// before the sweep writes them off. ledger.ErrNotFound when the customer
// has no account.
func (a *App) Account(ctx context.Context, p *ledger.Programme, customerID string, within time.Duration) (*View, error) {
	now := a.now()
	acc, err := a.store.Account(ctx, customerID, now.Add(-p.TierWindow()))
	if err != nil {
		return nil, err
	}
	acc.ExpireDue(now)
	v := &View{Account: acc, Spend: acc.SpendIn(p, now)}
	v.Expiring, v.NextExp = acc.Expiring(now.Add(within))
	return v, nil
}
