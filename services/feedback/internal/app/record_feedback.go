package app

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/store"
)

// Record looks the batch's customers up and stores the batch, with the
// dead letters of the messages that could not be read, in one transaction.
func (a *App) Record(ctx context.Context, in []store.Input, dead []outbox.Message) (store.Result, error) {
	var ids []string
	seen := map[string]bool{}
	for _, x := range in {
		var id string
		switch {
		case x.Response != nil:
			id = x.Response.CustomerID
		case x.Review != nil:
			id = x.Review.CustomerID
		case x.Ticket != nil:
			id = x.Ticket.CustomerID
		}
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	found, _ := a.lookupIntake(ctx, ids)
	return a.store.Intake(ctx, in, found, dead)
}
