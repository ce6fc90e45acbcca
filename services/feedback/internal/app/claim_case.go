package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// ClaimCase gives an open recovery case to agent, or renews the agent's
// claim (see feedback.Case.Claim).
func (a *App) ClaimCase(ctx context.Context, id, agent string) (feedback.Case, error) {
	var c feedback.Case
	err := a.store.UpdateCase(ctx, id, func(u *feedback.CaseUpdate) error {
		err := u.Claim(agent, a.opts.Now().UTC(), a.opts.ClaimTTL)
		c = u.Case
		return err
	})
	return c, err
}
