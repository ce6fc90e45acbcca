// Package store keeps order-ingest's facts in SQL (PostgreSQL or SQLite):
// identity keys, orders and their canonical events, and the outbox that
// carries those events to JetStream. It loads what a batch needs, lets the
// caller's function apply the batch (the rules are ingest's), and writes
// the outcome in one transaction.
package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
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

// Store is order-ingest's database.
type Store struct {
	db  *sqldb.DB
	ids *identityCache
	w   *stmts
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
	return &Store{db: db, ids: newIdentityCache(identityCacheSize), w: newStmts(db.W, db.Dialect != sqldb.Postgres)}, nil
}

// DB returns the underlying database.
func (s *Store) DB() *sqldb.DB { return s.db }

// UpdateOrders runs one transaction over the orders named and the
// identity keys given: it loads into an ingest.Batch the events already
// ingested for those orders, the orders (locked on PostgreSQL until the
// transaction ends) and the keys' links, calls fn, which applies the
// batch's events and returns the outbox messages to write, and writes
// what fn changed and those messages. An error from fn, or from the
// database, means nothing was written. fn is called again when the
// transaction is retried (a concurrent one linked a key first), on a
// freshly loaded batch.
//
// The work is done in a fixed number of statements per batch, not per
// order: what the batch needs is read first (identity keys remembered
// are not read again), and the writes go out as multi-row statements.
func (s *Store) UpdateOrders(ctx context.Context, orders []ingest.OrderKey, identities []string,
	fn func(*ingest.Batch) ([]outbox.Message, error)) error {
	var learned map[string]string
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		b, err := s.load(ctx, tx, orders, identities)
		if err != nil {
			return err
		}
		msgs, err := fn(b)
		if err != nil {
			return err
		}
		if err := s.write(ctx, tx, b); err != nil {
			return err
		}
		learned = b.Links()
		return s.addOutbox(ctx, tx, msgs)
	})
	s.w.flush(ctx)
	if err != nil {
		return err
	}
	s.ids.addAll(learned)
	return nil
}

// addOutbox writes the batch's outbox messages as outbox.Add does, with
// the store's prepared statements.
func (s *Store) addOutbox(ctx context.Context, tx *sql.Tx, msgs []outbox.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	args := outbox.AppendRows(make([]any, 0, len(msgs)*outbox.Width), time.Now(), msgs...)
	err := s.w.rows("outbox", args, outbox.Width,
		tuplesText(s.db.Dialect, "INSERT INTO outbox ("+outbox.Columns+") VALUES ", " ON CONFLICT "+outbox.Conflict, outbox.Width),
		func(q string, args []any) error { return s.w.exec(ctx, tx, q, args...) })
	if err != nil {
		return fmt.Errorf("outbox add: %w", err)
	}
	return nil
}

// load reads what a batch needs in a few statements. On PostgreSQL the
// orders are locked until the transaction ends.
func (s *Store) load(ctx context.Context, tx *sql.Tx, keys []ingest.OrderKey, identities []string) (*ingest.Batch, error) {
	b := ingest.NewBatch()
	var idKeys []any
	for _, ik := range identities {
		if c, ok := s.ids.get(ik); ok {
			b.Linked(ik, c)
		} else {
			idKeys = append(idKeys, ik)
		}
	}
	// One query per source: "source = ? AND order_id IN (…)" walks the
	// primary key, where a row-value IN list may not.
	bySource := map[string][]any{}
	var sources []string
	for _, k := range keys {
		if _, ok := bySource[k.Source]; !ok {
			sources = append(sources, k.Source)
		}
		bySource[k.Source] = append(bySource[k.Source], k.OrderID)
	}
	d := s.db.Dialect
	for _, src := range sources {
		err := s.w.in("load events", bySource[src], func(n int) string {
			return "SELECT event_id, customer_id FROM order_events WHERE source = " + d.Placeholders(1, 1) +
				" AND order_id IN (" + d.Placeholders(2, n) + ")"
		}, func(q string, ids []any) error {
			// Every event the batch's orders have had.
			rows, err := s.w.read(ctx, tx, q, append([]any{src}, ids...)...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id, c string
				if err := rows.Scan(&id, &c); err != nil {
					return err
				}
				b.Ingested(id, c)
			}
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("find ingested events: %w", err)
		}
		err = s.w.in("load orders", bySource[src], func(n int) string {
			return "SELECT " + orderColumns + " FROM orders WHERE source = " + d.Placeholders(1, 1) + " AND order_id IN (" +
				d.Placeholders(2, n) + ")" + d.ForUpdate()
		}, func(q string, ids []any) error {
			rows, err := s.w.read(ctx, tx, q, append([]any{src}, ids...)...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				o, err := scanOrder(rows)
				if err != nil {
					return err
				}
				b.Found(o)
			}
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("load orders: %w", err)
		}
	}
	err := s.w.in("load identities", idKeys, func(n int) string {
		return "SELECT key_hash, customer_id FROM identity_keys WHERE key_hash IN (" + d.Placeholders(1, n) + ")"
	}, func(q string, args []any) error {
		rows, err := s.w.read(ctx, tx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k, c string
			if err := rows.Scan(&k, &c); err != nil {
				return err
			}
			b.Linked(k, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("find identities: %w", err)
	}
	return b, nil
}

// write sends what the batch changed as multi-row statements.
func (s *Store) write(ctx context.Context, tx *sql.Tx, b *ingest.Batch) error {
	d := s.db.Dialect
	now := time.Now().UnixMicro()
	newLinks := b.Links()
	links := make([]any, 0, 3*len(newLinks))
	for k, c := range newLinks {
		links = append(links, k, c, now)
	}
	err := s.w.rows("link", links, 3, tuplesText(d, "INSERT INTO identity_keys (key_hash, customer_id, created_at) VALUES ",
		" ON CONFLICT (key_hash) DO NOTHING RETURNING key_hash", 3), func(q string, args []any) error {
		rows, err := s.w.query(ctx, tx, q, args...)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		rows.Close()
		if n != len(args)/3 {
			// A concurrent transaction linked one of these keys first:
			// start over and find its customer.
			return sqldb.ErrConflict
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("link identities: %w", err)
	}
	added := b.Added()
	evs := make([]any, 0, 10*len(added))
	for _, e := range added {
		p := e.Prepared
		evs = append(evs, p.EventID, p.Key.Source, p.Key.OrderID, e.Seq, int(p.Key.Kind), p.Key.RefundID,
			e.CustomerID, e.OccurredAt, p.IngestedAt.UnixMicro(), e.Payload)
	}
	err = s.w.rows("events", evs, 10, tuplesText(d, `INSERT INTO order_events (event_id, source, order_id, seq, kind, refund_id, customer_id,
			occurred_at, ingested_at, payload) VALUES `, "", 10), func(q string, args []any) error {
		return s.w.exec(ctx, tx, q, args...)
	})
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	var fresh, known []any
	b.Changed(func(o *ingest.Order, stored bool) {
		row := []any{o.Source, o.OrderID, o.CustomerID, int(o.Status), o.Currency, o.BaseCurrency, o.Total, o.BaseTotal,
			o.Refunded, o.BaseRefunded, o.Events, o.FirstSeenAt.UnixMicro(), o.UpdatedAt.UnixMicro(), boolInt(o.Paid)}
		if stored {
			known = append(known, row...)
		} else {
			fresh = append(fresh, row...)
		}
	})
	const cols = `INSERT INTO orders (source, order_id, customer_id, status, currency, base_currency, total, base_total,
		refunded, base_refunded, events, first_seen_at, updated_at, paid) VALUES `
	// New orders are plain inserts: should a concurrent transaction have
	// created one meanwhile, the key conflict runs this one again. Orders
	// read (and, on PostgreSQL, locked) above are overwritten.
	if err := s.w.rows("insert orders", fresh, orderWidth, tuplesText(d, cols, "", orderWidth), func(q string, args []any) error {
		return s.w.exec(ctx, tx, q, args...)
	}); err != nil {
		return fmt.Errorf("insert orders: %w", err)
	}
	if err := s.w.rows("update orders", known, orderWidth, tuplesText(d, cols, ` ON CONFLICT (source, order_id) DO UPDATE SET
			status = excluded.status, currency = excluded.currency, total = excluded.total, base_total = excluded.base_total,
			refunded = excluded.refunded, base_refunded = excluded.base_refunded, events = excluded.events,
			updated_at = excluded.updated_at, paid = excluded.paid`, orderWidth), func(q string, args []any) error {
		return s.w.exec(ctx, tx, q, args...)
	}); err != nil {
		return fmt.Errorf("update orders: %w", err)
	}
	return nil
}

func scanOrder(rows *sql.Rows) (*ingest.Order, error) {
	o := &ingest.Order{}
	var status, paid int
	var first, updated int64
	if err := rows.Scan(&o.Source, &o.OrderID, &o.CustomerID, &status, &o.Currency, &o.BaseCurrency,
		&o.Total, &o.BaseTotal, &o.Refunded, &o.BaseRefunded, &o.Events, &first, &updated, &paid); err != nil {
		return nil, err
	}
	o.Status, o.Paid = ingestv1.OrderStatus(status), paid != 0
	o.FirstSeenAt, o.UpdatedAt = time.UnixMicro(first).UTC(), time.UnixMicro(updated).UTC()
	return o, nil
}

// orderColumns are the columns scanOrder reads, in its order, and the
// columns of a row written; orderWidth counts them.
const (
	orderColumns = `source, order_id, customer_id, status, currency, base_currency, total, base_total,
	refunded, base_refunded, events, first_seen_at, updated_at, paid`
	orderWidth = 14
)

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Store) loadOrder(ctx context.Context, source, orderID string) (*ingest.Order, error) {
	rows, err := s.db.R.QueryContext(ctx, "SELECT "+orderColumns+" FROM orders WHERE source = $1 AND order_id = $2", source, orderID)
	if err != nil {
		return nil, fmt.Errorf("load order: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("load order: %w", err)
		}
		return nil, ingest.ErrOrderNotFound
	}
	o, err := scanOrder(rows)
	if err != nil {
		return nil, fmt.Errorf("load order: %w", err)
	}
	return o, nil
}

// GetOrder returns an order and its canonical events in the order of its
// shop's history (event time, then kind: placed, paid, refunded,
// cancelled), which does not depend on the order they arrived in; each
// event's order_sequence says in which order Boomerang accepted them.
func (s *Store) GetOrder(ctx context.Context, source, orderID string) (*ingest.Order, []*ordersv1.OrderEvent, error) {
	o, err := s.loadOrder(ctx, source, orderID)
	if err != nil {
		return nil, nil, err
	}
	rows, err := s.db.R.QueryContext(ctx,
		"SELECT payload FROM order_events WHERE source = $1 AND order_id = $2 ORDER BY occurred_at, kind, refund_id, seq", source, orderID)
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
