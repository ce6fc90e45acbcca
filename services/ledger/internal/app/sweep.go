package app

import (
	"context"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// Sweep does the periodic work (expiry, expiry warnings, birthday bonuses,
// tier reviews) on every account that has some due at now, in
// transactions of at most batch accounts. It is idempotent; it returns how
// many accounts it looked at.
func (a *App) Sweep(ctx context.Context, p *ledger.Programme, now time.Time, batch int) (int, error) {
	ids, err := a.store.Due(ctx, ledger.DueAt(p, now))
	if err != nil {
		return 0, err
	}
	for start := 0; start < len(ids); start += batch {
		chunk := ids[start:min(start+batch, len(ids))]
		err := a.store.UpdateAccounts(ctx, p, now, ledger.AccountNeeds(p, now, chunk...), func(b *ledger.Batch) error {
			b.Sweep(ctx, chunk)
			return nil
		})
		if err != nil {
			return start, err
		}
	}
	return len(ids), nil
}
