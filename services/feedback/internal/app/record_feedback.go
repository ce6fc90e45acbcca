package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// Result is what recording a batch did: an outcome per input, and the
// recovery cases it opened.
type Result struct {
	Outcomes []feedback.InputOutcome
	Cases    []feedback.Case
}

// Record looks the batch's customers up and records the batch, with the
// dead letters of the messages that could not be read, in one
// transaction.
func (a *App) Record(ctx context.Context, in []feedback.Input, dead []outbox.Message) (Result, error) {
	found, _ := a.lookupIntake(ctx, feedback.Customers(in))
	return a.record(ctx, in, found, dead)
}

// record records intake with the profiles segmentation gave (see
// feedback.Batch.Record).
func (a *App) record(ctx context.Context, in []feedback.Input, profiles map[string]feedback.Profile, dead []outbox.Message) (Result, error) {
	var res Result
	err := a.store.UpdateIntake(ctx, feedback.IntakeKeys(in, profiles), dead, func(b *feedback.Batch) error {
		b.Record(in, profiles, a.opts.Now().UTC(), a.opts.FirstResponseThreshold)
		res = Result{Outcomes: b.Outcomes, Cases: b.Cases}
		return nil
	})
	return res, err
}

// recordProfiles records segmentation's answers: the customers' pending
// responses take their segment.
func (a *App) recordProfiles(ctx context.Context, profiles map[string]feedback.Profile) error {
	if len(profiles) == 0 {
		return nil
	}
	_, err := a.record(ctx, nil, profiles, nil)
	return err
}
