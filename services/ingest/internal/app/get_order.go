package app

import (
	"context"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
)

// GetOrder returns an order and its history, or ingest.ErrOrderNotFound.
func (a *App) GetOrder(ctx context.Context, source, orderID string) (*ingest.Order, []*ordersv1.OrderEvent, error) {
	return a.store.GetOrder(ctx, source, orderID)
}
