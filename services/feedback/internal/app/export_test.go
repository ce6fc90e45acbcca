package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// The use cases with what they would look up or page by given, for the
// tests.

func (a *App) RecordWith(ctx context.Context, in []feedback.Input, profiles map[string]feedback.Profile, dead []outbox.Message) (Result, error) {
	return a.record(ctx, in, profiles, dead)
}

func (a *App) RecordProfiles(ctx context.Context, profiles map[string]feedback.Profile) error {
	return a.recordProfiles(ctx, profiles)
}

func (a *App) Sweep(ctx context.Context, limit int) ([]feedback.Case, error) {
	return a.sweep(ctx, limit)
}
