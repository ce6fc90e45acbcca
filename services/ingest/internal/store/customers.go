package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
)

// CustomerByKey returns the customer an identity key (a keyed hash) is
// linked to, or ingest.ErrCustomerNotFound.
func (s *Store) CustomerByKey(ctx context.Context, key string) (string, error) {
	var id string
	err := s.db.R.QueryRowContext(ctx, "SELECT customer_id FROM identity_keys WHERE key_hash = $1", key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ingest.ErrCustomerNotFound
	}
	if err != nil {
		return "", fmt.Errorf("find customer by key: %w", err)
	}
	return id, nil
}

// customerOrders reads a customer's orders with the shop's times of the
// placed and paid events, the most recently placed first (an order seen
// only as paid by its payment time, one with neither by when it was first
// seen). The correlated look-ups walk order_events' primary key.
const customerOrders = `SELECT ` + orderColumns + `, placed_at, paid_at FROM (
	SELECT o.*,
		COALESCE((SELECT MIN(e.occurred_at) FROM order_events e WHERE e.source = o.source AND e.order_id = o.order_id AND e.kind = 1), 0) AS placed_at,
		COALESCE((SELECT MIN(e.occurred_at) FROM order_events e WHERE e.source = o.source AND e.order_id = o.order_id AND e.kind = 2), 0) AS paid_at
	FROM orders o WHERE o.customer_id = $1) t
	ORDER BY CASE WHEN placed_at <> 0 THEN placed_at WHEN paid_at <> 0 THEN paid_at ELSE first_seen_at END DESC, source, order_id
	LIMIT $2`

// Customer returns the identity keys of a customer, oldest first, their
// ordersLimit most recent orders and their number of orders, or
// ingest.ErrCustomerNotFound when no key is linked to the id (every
// customer is made by the first key seen of them).
func (s *Store) Customer(ctx context.Context, id string, ordersLimit int) (ingest.Customer, error) {
	c := ingest.Customer{ID: id}
	rows, err := s.db.R.QueryContext(ctx, "SELECT key_hash, created_at FROM identity_keys WHERE customer_id = $1 ORDER BY created_at, key_hash", id)
	if err != nil {
		return c, fmt.Errorf("customer keys: %w", err)
	}
	for rows.Next() {
		var k ingest.CustomerKey
		var at int64
		if err := rows.Scan(&k.Hash, &at); err != nil {
			rows.Close()
			return c, fmt.Errorf("customer keys: %w", err)
		}
		k.Kind, k.FirstSeenAt = ingest.KindOf(k.Hash), time.UnixMicro(at).UTC()
		c.Keys = append(c.Keys, k)
	}
	if err := sqldb.CloseRows(rows); err != nil {
		return c, fmt.Errorf("customer keys: %w", err)
	}
	if len(c.Keys) == 0 {
		return c, ingest.ErrCustomerNotFound
	}
	if err := s.db.R.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders WHERE customer_id = $1", id).Scan(&c.OrderCount); err != nil {
		return c, fmt.Errorf("count customer orders: %w", err)
	}
	rows, err = s.db.R.QueryContext(ctx, customerOrders, id, ordersLimit)
	if err != nil {
		return c, fmt.Errorf("customer orders: %w", err)
	}
	for rows.Next() {
		o := ingest.CustomerOrder{}
		var status, paid int
		var first, updated, placedAt, paidAt int64
		if err := rows.Scan(&o.Source, &o.OrderID, &o.CustomerID, &status, &o.Currency, &o.BaseCurrency,
			&o.Total, &o.BaseTotal, &o.Refunded, &o.BaseRefunded, &o.Events, &first, &updated, &paid, &placedAt, &paidAt); err != nil {
			rows.Close()
			return c, fmt.Errorf("customer orders: %w", err)
		}
		o.Status, o.Paid = ingestv1.OrderStatus(status), paid != 0
		o.FirstSeenAt, o.UpdatedAt = time.UnixMicro(first).UTC(), time.UnixMicro(updated).UTC()
		o.PlacedAt, o.PaidAt = microTime(placedAt), microTime(paidAt)
		c.Orders = append(c.Orders, o)
	}
	if err := sqldb.CloseRows(rows); err != nil {
		return c, fmt.Errorf("customer orders: %w", err)
	}
	return c, nil
}

// microTime reads Unix microseconds, 0 being no time.
func microTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}
