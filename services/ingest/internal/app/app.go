// Package app holds order-ingest's use cases, one file each, shared by its
// gRPC port and its bus consumer: IngestOrders (prepare a batch of orders,
// apply it in one transaction with the outbox messages it produces, wake
// the relay) and GetOrder.
package app

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/metric"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
)

// Store is what the use cases need of the database.
type Store interface {
	// UpdateOrders loads the batch state of the orders and identity keys
	// named, calls fn, and writes what fn changed and the outbox messages
	// it returns, in one transaction; fn may be called more than once.
	UpdateOrders(ctx context.Context, orders []ingest.OrderKey, identities []string,
		fn func(*ingest.Batch) ([]outbox.Message, error)) error
	// GetOrder returns an order and its canonical events, or
	// ingest.ErrOrderNotFound.
	GetOrder(ctx context.Context, source, orderID string) (*ingest.Order, []*ordersv1.OrderEvent, error)
}

// Notifier is told when new outbox messages are committed.
type Notifier interface{ Notify() }

// App runs the use cases.
type App struct {
	prep   *ingest.Preparer
	store  Store
	relay  Notifier
	now    func() time.Time
	counts metric.Int64Counter
}

// New returns the use cases over a store; relay is told of each commit,
// and now is the clock (time.Now in production).
func New(prep *ingest.Preparer, st Store, relay Notifier, now func() time.Time, meter metric.Meter) (*App, error) {
	counts, err := meter.Int64Counter("boomerang.ingest.orders",
		metric.WithDescription("Orders ingested, by outcome and reason"))
	if err != nil {
		return nil, err
	}
	return &App{prep: prep, store: st, relay: relay, now: now, counts: counts}, nil
}
