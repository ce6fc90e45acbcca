// Package store keeps order-ingest's facts in SQL (PostgreSQL or SQLite):
// identity keys, orders and their canonical events, and the outbox that
// carries those events to JetStream. A batch is applied in one transaction.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	"google.golang.org/protobuf/proto"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrNotFound is returned for an order that was never ingested.
var ErrNotFound = errors.New("order not found")

// Store is order-ingest's database.
type Store struct {
	db  *sqldb.DB
	ids *identityCache
}

// Open migrates db and returns the store.
func Open(ctx context.Context, db *sqldb.DB, log *slog.Logger) (*Store, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := sqldb.Migrate(ctx, db, "ingest", sub, log); err != nil {
		return nil, err
	}
	if err := sqldb.Migrate(ctx, db, "outbox", outbox.Migrations(), log); err != nil {
		return nil, err
	}
	return &Store{db: db, ids: newIdentityCache(1 << 20)}, nil
}

// DB returns the underlying database.
func (s *Store) DB() *sqldb.DB { return s.db }

// Outcome of one order in a batch.
type Outcome int

const (
	Accepted Outcome = iota + 1
	Duplicate
	Rejected
)

// Result is what became of one order.
type Result struct {
	Outcome    Outcome
	EventID    string
	CustomerID string
	Rejection  *ingest.Rejection
	// Event is the canonical event, for accepted orders.
	Event *ordersv1.OrderEvent
}

// Batch is the work of one transaction.
type Batch struct {
	Orders []*ingest.Prepared
	// Messages returns the outbox messages for an order's result: its
	// canonical event when accepted, a dead letter when rejected (bus
	// input), nothing for a duplicate.
	Messages func(i int, r Result) []outbox.Message
	// Extra outbox messages written in the same transaction (dead letters
	// of input that never became an order).
	Extra []outbox.Message
	// BaseCurrency of the seller.
	BaseCurrency string
}

// Apply applies the batch in one transaction: for each order, in order, a
// duplicate is recognised, the order's history is checked, the customer is
// found or created, and the canonical event, the order and the outbox
// message are written. It returns one result per order; an error means
// nothing was written.
func (s *Store) Apply(ctx context.Context, b Batch) ([]Result, error) {
	var (
		results []Result
		learned map[string]string
	)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		results = make([]Result, len(b.Orders))
		learned = map[string]string{}
		var msgs []outbox.Message
		for i, p := range b.Orders {
			r, err := s.applyOne(ctx, tx, p, b.BaseCurrency, learned)
			if err != nil {
				return fmt.Errorf("order %s/%s: %w", p.Key.Source, p.Key.OrderID, err)
			}
			results[i] = r
			if b.Messages != nil {
				msgs = append(msgs, b.Messages(i, r)...)
			}
		}
		msgs = append(msgs, b.Extra...)
		if len(msgs) > 0 {
			return outbox.Add(ctx, tx, time.Now(), msgs...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.ids.addAll(learned)
	return results, nil
}

func (s *Store) applyOne(ctx context.Context, tx *sql.Tx, p *ingest.Prepared, base string, learned map[string]string) (Result, error) {
	var existingCustomer string
	err := tx.QueryRowContext(ctx, "SELECT customer_id FROM order_events WHERE event_id = $1", p.EventID).Scan(&existingCustomer)
	switch {
	case err == nil:
		return Result{Outcome: Duplicate, EventID: p.EventID, CustomerID: existingCustomer}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Result{}, fmt.Errorf("check duplicate: %w", err)
	}

	cur, err := s.loadOrder(ctx, tx, p.Key.Source, p.Key.OrderID, true)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Result{}, err
	}
	customerID, newKeys, newCustomer := "", []string(nil), false
	if cur == nil && len(p.IdentityKeys) > 0 {
		customerID, newKeys, newCustomer, err = s.resolve(ctx, tx, p.IdentityKeys, learned)
		if err != nil {
			return Result{}, err
		}
		if newCustomer {
			customerID = p.NewCustomerID
		}
	}
	// Apply fills the event in place; work on a copy so that a rejection or
	// a retried transaction starts from the prepared event.
	work := *p
	work.Event = proto.Clone(p.Event).(*ordersv1.OrderEvent)
	next, err := ingest.Apply(cur, &work, customerID, base)
	if err != nil {
		if rej, ok := ingest.AsRejection(err); ok {
			r := Result{Outcome: Rejected, EventID: p.EventID, Rejection: rej}
			if cur != nil {
				r.CustomerID = cur.CustomerID
			}
			return r, nil
		}
		return Result{}, err
	}
	if newCustomer && work.Event.Customer != nil {
		work.Event.Customer.NewCustomer = true
	}
	payload, err := proto.Marshal(work.Event)
	if err != nil {
		return Result{}, fmt.Errorf("marshal event: %w", err)
	}
	now := p.IngestedAt.UnixMicro()
	for _, k := range newKeys {
		res, err := tx.ExecContext(ctx,
			"INSERT INTO identity_keys (key_hash, customer_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (key_hash) DO NOTHING",
			k, next.CustomerID, now)
		if err != nil {
			return Result{}, fmt.Errorf("link identity: %w", err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			// A concurrent transaction linked this key first; start over
			// and find its customer.
			return Result{}, sqldb.ErrConflict
		}
		learned[k] = next.CustomerID
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO order_events (event_id, source, order_id, seq, kind, refund_id, customer_id, occurred_at, ingested_at, payload)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		p.EventID, p.Key.Source, p.Key.OrderID, next.Events, int(p.Key.Kind), p.Key.RefundID, next.CustomerID,
		work.Event.GetOccurredAt().AsTime().UnixMicro(), now, payload); err != nil {
		return Result{}, fmt.Errorf("insert event: %w", err)
	}
	if cur == nil {
		_, err = tx.ExecContext(ctx,
			`INSERT INTO orders (source, order_id, customer_id, status, currency, base_currency, total, base_total,
			 refunded, base_refunded, events, first_seen_at, updated_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			next.Source, next.OrderID, next.CustomerID, int(next.Status), next.Currency, next.BaseCurrency, next.Total, next.BaseTotal,
			next.Refunded, next.BaseRefunded, next.Events, next.FirstSeenAt.UnixMicro(), next.UpdatedAt.UnixMicro())
	} else {
		_, err = tx.ExecContext(ctx,
			`UPDATE orders SET status = $3, currency = $4, total = $5, base_total = $6, refunded = $7, base_refunded = $8,
			 events = $9, updated_at = $10 WHERE source = $1 AND order_id = $2`,
			next.Source, next.OrderID, int(next.Status), next.Currency, next.Total, next.BaseTotal, next.Refunded, next.BaseRefunded,
			next.Events, next.UpdatedAt.UnixMicro())
	}
	if err != nil {
		return Result{}, fmt.Errorf("write order: %w", err)
	}
	return Result{Outcome: Accepted, EventID: p.EventID, CustomerID: next.CustomerID, Event: work.Event}, nil
}

// resolve finds the customer of the identity keys or creates one. Keys
// already linked keep their customer (the most specific key wins when they
// disagree); keys not yet linked are returned to be linked to it.
func (s *Store) resolve(ctx context.Context, tx *sql.Tx, keys []string, learned map[string]string) (customer string, missing []string, created bool, err error) {
	found := make([]string, len(keys))
	var unknown []int
	for i, k := range keys {
		if c, ok := learned[k]; ok {
			found[i] = c
		} else if c, ok := s.ids.get(k); ok {
			found[i] = c
		} else {
			unknown = append(unknown, i)
		}
	}
	for _, i := range unknown {
		var c string
		err := tx.QueryRowContext(ctx, "SELECT customer_id FROM identity_keys WHERE key_hash = $1", keys[i]).Scan(&c)
		switch {
		case err == nil:
			found[i] = c
			learned[keys[i]] = c
		case !errors.Is(err, sql.ErrNoRows):
			return "", nil, false, fmt.Errorf("find identity: %w", err)
		}
	}
	for i, c := range found {
		if c == "" {
			missing = append(missing, keys[i])
		} else if customer == "" {
			customer = c
		}
	}
	if customer == "" {
		return "", missing, true, nil
	}
	return customer, missing, false, nil
}

func (s *Store) loadOrder(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, source, orderID string, lock bool) (*ingest.Order, error) {
	query := `SELECT customer_id, status, currency, base_currency, total, base_total, refunded, base_refunded,
		events, first_seen_at, updated_at FROM orders WHERE source = $1 AND order_id = $2`
	if lock {
		query += s.db.Dialect.ForUpdate()
	}
	o := &ingest.Order{Source: source, OrderID: orderID}
	var status int
	var first, updated int64
	err := q.QueryRowContext(ctx, query, source, orderID).Scan(&o.CustomerID, &status, &o.Currency, &o.BaseCurrency,
		&o.Total, &o.BaseTotal, &o.Refunded, &o.BaseRefunded, &o.Events, &first, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load order: %w", err)
	}
	o.Status = ingestv1.OrderStatus(status)
	o.FirstSeenAt, o.UpdatedAt = time.UnixMicro(first).UTC(), time.UnixMicro(updated).UTC()
	return o, nil
}

// GetOrder returns an order and its canonical events, oldest first.
func (s *Store) GetOrder(ctx context.Context, source, orderID string) (*ingest.Order, []*ordersv1.OrderEvent, error) {
	o, err := s.loadOrder(ctx, s.db.R, source, orderID, false)
	if err != nil {
		return nil, nil, err
	}
	rows, err := s.db.R.QueryContext(ctx,
		"SELECT payload FROM order_events WHERE source = $1 AND order_id = $2 ORDER BY seq", source, orderID)
	if err != nil {
		return nil, nil, fmt.Errorf("order history: %w", err)
	}
	defer rows.Close()
	var events []*ordersv1.OrderEvent
	for rows.Next() {
		var payload []byte
		if err := rows.Scan(&payload); err != nil {
			return nil, nil, fmt.Errorf("order history: %w", err)
		}
		ev := &ordersv1.OrderEvent{}
		if err := proto.Unmarshal(payload, ev); err != nil {
			return nil, nil, fmt.Errorf("order history: %w", err)
		}
		events = append(events, ev)
	}
	return o, events, rows.Err()
}

// identityCache remembers key → customer links. Links never change once
// made, so a cached link is always right; the cache only saves reads.
type identityCache struct {
	mu  sync.RWMutex
	max int
	m   map[string]string
}

func newIdentityCache(max int) *identityCache {
	return &identityCache{max: max, m: make(map[string]string)}
}

func (c *identityCache) get(k string) (string, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	return v, ok
}

func (c *identityCache) addAll(links map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(links) > c.max {
		c.m = make(map[string]string, len(links)) // start over rather than track age
	}
	for k, v := range links {
		c.m[k] = v
	}
}
