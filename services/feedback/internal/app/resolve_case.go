package app

import (
	"context"
	"errors"

	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// ResolveCase closes a recovery case with its outcome, as agent (see
// feedback.Case.Resolve), and publishes the resolution. The same
// resolution again (a retry whose answer was lost) changes nothing and
// returns the case as it was closed.
func (a *App) ResolveCase(ctx context.Context, id, agent string, o feedback.Outcome, note string) (feedback.Case, error) {
	var c feedback.Case
	err := a.store.UpdateCase(ctx, id, func(u *feedback.CaseUpdate) error {
		err := u.Resolve(agent, o, note, a.opts.Now().UTC(), a.opts.ClaimTTL)
		c = u.Case
		return err
	})
	if errors.Is(err, feedback.ErrAlreadyDone) {
		return c, nil
	}
	return c, err
}
