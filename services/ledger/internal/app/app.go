// Package app holds points-ledger's use cases, one file each: the
// commands (apply order events, redeem, adjust, sweep) and the queries
// (account, entries, rewards, statistics, quote). A command runs in one
// transaction through a store method that loads what it needs and hands
// it to the command's function over a ledger.Batch, where the domain's
// rules decide; the store writes what changed with the ledger events.
package app

import (
	"context"
	"time"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// Store is what the use cases need of the database.
type Store interface {
	// UpdateOrders loads what applying evs needs (ledger.OrderNeeds), runs
	// fn over it and writes what fn changed, with dead, in one
	// transaction.
	UpdateOrders(ctx context.Context, p *ledger.Programme, now time.Time, evs []*ordersv1.OrderEvent,
		dead []outbox.Message, fn func(*ledger.Batch) error) error
	// UpdateAccounts loads what n names, runs fn over it and writes what fn
	// changed, in one transaction.
	UpdateAccounts(ctx context.Context, p *ledger.Programme, now time.Time, n ledger.Needs, fn func(*ledger.Batch) error) error
	// Due lists the accounts due for the sweep, sorted.
	Due(ctx context.Context, due ledger.Due) ([]string, error)
	// Account reads an account with its open lots and the spend after
	// spendFrom, without locks; ledger.ErrNotFound when there is none.
	Account(ctx context.Context, customerID string, spendFrom time.Time) (*ledger.Account, error)
	Entries(ctx context.Context, customerID string, before int64, n int) ([]*ledger.Entry, int64, error)
	Stats(ctx context.Context, from, to time.Time) ([]ledger.DayStats, int64, error)
	Redeemed(ctx context.Context) (map[string]int64, error)
}

// App runs the use cases over a store, at its clock.
type App struct {
	store Store
	now   func() time.Time
}

// New returns the use cases over st; now is the clock (nil: time.Now).
func New(st Store, now func() time.Time) *App {
	if now == nil {
		now = time.Now
	}
	return &App{store: st, now: now}
}
