package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// RewardStock is a reward of the catalogue with how many are left (nil:
// no limit).
type RewardStock struct {
	ledger.Reward
	Left *int64
}

// ListRewards lists the programme's rewards with the stock left.
func (a *App) ListRewards(ctx context.Context, p *ledger.Programme) ([]RewardStock, error) {
	redeemed, err := a.store.Redeemed(ctx)
	if err != nil {
		return nil, err
	}
	var out []RewardStock
	for _, r := range p.Rewards() {
		rs := RewardStock{Reward: r}
		if r.Stock != nil {
			left := max(*r.Stock-redeemed[r.ID], 0)
			rs.Left = &left
		}
		out = append(out, rs)
	}
	return out, nil
}
