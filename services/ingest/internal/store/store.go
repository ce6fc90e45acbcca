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
	return &Store{db: db, ids: newIdentityCache(identityCacheSize)}, nil
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
	// Event is the canonical event, for accepted orders, and Payload its
	// protobuf encoding.
	Event   *ordersv1.OrderEvent
	Payload []byte
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
//
// The work is done in a fixed number of statements per batch, not per
// order: what the batch needs is read first (events already ingested, the
// orders it touches, identity keys not cached), the batch is worked out in
// memory, and the writes go out as multi-row statements.
func (s *Store) Apply(ctx context.Context, b Batch) ([]Result, error) {
	var (
		results []Result
		learned map[string]string
	)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		w, err := s.load(ctx, tx, b.Orders)
		if err != nil {
			return err
		}
		results = make([]Result, len(b.Orders))
		var msgs []outbox.Message
		for i, p := range b.Orders {
			r, err := w.apply(p, b.BaseCurrency)
			if err != nil {
				return fmt.Errorf("order %s/%s: %w", p.Key.Source, p.Key.OrderID, err)
			}
			results[i] = r
			if b.Messages != nil {
				msgs = append(msgs, b.Messages(i, r)...)
			}
		}
		if err := w.write(ctx, tx, s.db.Dialect); err != nil {
			return err
		}
		msgs = append(msgs, b.Extra...)
		learned = w.newLinks
		if len(msgs) > 0 {
			return outbox.Add(ctx, tx, s.db.Dialect, time.Now(), msgs...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.ids.addAll(learned)
	return results, nil
}

type orderKey struct{ source, orderID string }

// work is one batch being worked out in memory.
type work struct {
	events   map[string]string // event id → customer of events already ingested
	orders   map[orderKey]*ingest.Order
	existing map[orderKey]bool // orders that were in the database before the batch
	ids      map[string]string // identity key → customer
	newLinks map[string]string

	newEvents []eventRow
	dirty     []orderKey
	isDirty   map[orderKey]bool
}

type eventRow struct {
	p          *ingest.Prepared
	seq        int
	customerID string
	occurredAt int64
	payload    []byte
}

// load reads what the batch needs in a few statements. On PostgreSQL the
// orders it touches are locked until the transaction ends.
func (s *Store) load(ctx context.Context, tx *sql.Tx, orders []*ingest.Prepared) (*work, error) {
	w := &work{
		events: map[string]string{}, orders: map[orderKey]*ingest.Order{}, existing: map[orderKey]bool{},
		ids: map[string]string{}, newLinks: map[string]string{}, isDirty: map[orderKey]bool{},
	}
	var keys []orderKey
	seenKey := map[orderKey]bool{}
	var idKeys []any
	for _, p := range orders {
		k := orderKey{p.Key.Source, p.Key.OrderID}
		if !seenKey[k] {
			seenKey[k] = true
			keys = append(keys, k)
		}
		for _, ik := range p.IdentityKeys {
			if c, ok := s.ids.get(ik); ok {
				w.ids[ik] = c
			} else if _, ok := w.ids[ik]; !ok {
				w.ids[ik] = "" // to look up
				idKeys = append(idKeys, ik)
			}
		}
	}
	// One query per source: "source = ? AND order_id IN (…)" walks the
	// primary key, where a row-value IN list may not.
	bySource := map[string][]any{}
	var sources []string
	for _, k := range keys {
		if _, ok := bySource[k.source]; !ok {
			sources = append(sources, k.source)
		}
		bySource[k.source] = append(bySource[k.source], k.orderID)
	}
	for _, src := range sources {
		err := sqldb.RowChunks(bySource[src], 1, func(ids []any) error {
			// Every event the batch's orders have had: a batch event among
			// them is a duplicate.
			rows, err := tx.QueryContext(ctx, "SELECT event_id, customer_id FROM order_events WHERE source = "+
				s.db.Dialect.Placeholders(1, 1)+" AND order_id IN ("+s.db.Dialect.Placeholders(2, len(ids))+")",
				append([]any{src}, ids...)...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id, c string
				if err := rows.Scan(&id, &c); err != nil {
					return err
				}
				w.events[id] = c
			}
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("find ingested events: %w", err)
		}
		err = sqldb.RowChunks(bySource[src], 1, func(ids []any) error {
			rows, err := tx.QueryContext(ctx, "SELECT "+orderColumns+" FROM orders WHERE source = "+s.db.Dialect.Placeholders(1, 1)+" AND order_id IN ("+
				s.db.Dialect.Placeholders(2, len(ids))+")"+s.db.Dialect.ForUpdate(), append([]any{src}, ids...)...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				o, err := scanOrder(rows)
				if err != nil {
					return err
				}
				k := orderKey{o.Source, o.OrderID}
				w.orders[k], w.existing[k] = o, true
			}
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("load orders: %w", err)
		}
	}
	err := sqldb.RowChunks(idKeys, 1, func(args []any) error {
		rows, err := tx.QueryContext(ctx, "SELECT key_hash, customer_id FROM identity_keys WHERE key_hash IN ("+s.db.Dialect.Placeholders(1, len(args))+")", args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k, c string
			if err := rows.Scan(&k, &c); err != nil {
				return err
			}
			w.ids[k] = c
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("find identities: %w", err)
	}
	return w, nil
}

// apply works out one order against the batch's state.
func (w *work) apply(p *ingest.Prepared, base string) (Result, error) {
	if c, ok := w.events[p.EventID]; ok {
		return Result{Outcome: Duplicate, EventID: p.EventID, CustomerID: c}, nil
	}
	k := orderKey{p.Key.Source, p.Key.OrderID}
	cur := w.orders[k]
	customerID, newCustomer := "", false
	if cur == nil && len(p.IdentityKeys) > 0 {
		// The most specific key that is linked names the customer; with
		// none linked, the customer is new.
		for _, ik := range p.IdentityKeys {
			if c := w.ids[ik]; c != "" {
				customerID = c
				break
			}
		}
		if customerID == "" {
			customerID, newCustomer = p.NewCustomerID, true
		}
	}
	// Apply fills the event in place; work on a copy so that a rejection or
	// a retried transaction starts from the prepared event.
	prep := *p
	prep.Event = proto.Clone(p.Event).(*ordersv1.OrderEvent)
	next, err := ingest.Apply(cur, &prep, customerID, base)
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
	if newCustomer && prep.Event.Customer != nil {
		prep.Event.Customer.NewCustomer = true
	}
	payload, err := proto.Marshal(prep.Event)
	if err != nil {
		return Result{}, fmt.Errorf("marshal event: %w", err)
	}
	if cur == nil {
		for _, ik := range p.IdentityKeys {
			if w.ids[ik] == "" {
				w.ids[ik] = next.CustomerID
				w.newLinks[ik] = next.CustomerID
			}
		}
	}
	w.events[p.EventID] = next.CustomerID
	w.orders[k] = &next
	if !w.isDirty[k] {
		w.isDirty[k] = true
		w.dirty = append(w.dirty, k)
	}
	w.newEvents = append(w.newEvents, eventRow{
		p: p, seq: next.Events, customerID: next.CustomerID,
		occurredAt: prep.Event.GetOccurredAt().AsTime().UnixMicro(), payload: payload,
	})
	return Result{Outcome: Accepted, EventID: p.EventID, CustomerID: next.CustomerID, Event: prep.Event, Payload: payload}, nil
}

// write sends the batch's changes as multi-row statements.
func (w *work) write(ctx context.Context, tx *sql.Tx, d sqldb.Dialect) error {
	now := time.Now().UnixMicro()
	links := make([]any, 0, 3*len(w.newLinks))
	for k, c := range w.newLinks {
		links = append(links, k, c, now)
	}
	err := sqldb.RowChunks(links, 3, func(args []any) error {
		rows, err := tx.QueryContext(ctx, "INSERT INTO identity_keys (key_hash, customer_id, created_at) VALUES "+
			d.Tuples(len(args)/3, 3)+" ON CONFLICT (key_hash) DO NOTHING RETURNING key_hash", args...)
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
	evs := make([]any, 0, 10*len(w.newEvents))
	for _, e := range w.newEvents {
		evs = append(evs, e.p.EventID, e.p.Key.Source, e.p.Key.OrderID, e.seq, int(e.p.Key.Kind), e.p.Key.RefundID,
			e.customerID, e.occurredAt, e.p.IngestedAt.UnixMicro(), e.payload)
	}
	err = sqldb.RowChunks(evs, 10, func(args []any) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO order_events (event_id, source, order_id, seq, kind, refund_id, customer_id,
			occurred_at, ingested_at, payload) VALUES `+d.Tuples(len(args)/10, 10), args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	var fresh, known []any
	for _, k := range w.dirty {
		o := w.orders[k]
		row := []any{o.Source, o.OrderID, o.CustomerID, int(o.Status), o.Currency, o.BaseCurrency, o.Total, o.BaseTotal,
			o.Refunded, o.BaseRefunded, o.Events, o.FirstSeenAt.UnixMicro(), o.UpdatedAt.UnixMicro(), boolInt(o.Paid)}
		if w.existing[k] {
			known = append(known, row...)
		} else {
			fresh = append(fresh, row...)
		}
	}
	const cols = `INSERT INTO orders (source, order_id, customer_id, status, currency, base_currency, total, base_total,
		refunded, base_refunded, events, first_seen_at, updated_at, paid) VALUES `
	// New orders are plain inserts: should a concurrent transaction have
	// created one meanwhile, the key conflict runs this one again. Orders
	// read (and, on PostgreSQL, locked) above are overwritten.
	if err := sqldb.RowChunks(fresh, orderWidth, func(args []any) error {
		_, err := tx.ExecContext(ctx, cols+d.Tuples(len(args)/orderWidth, orderWidth), args...)
		return err
	}); err != nil {
		return fmt.Errorf("insert orders: %w", err)
	}
	if err := sqldb.RowChunks(known, orderWidth, func(args []any) error {
		_, err := tx.ExecContext(ctx, cols+d.Tuples(len(args)/orderWidth, orderWidth)+` ON CONFLICT (source, order_id) DO UPDATE SET
			status = excluded.status, currency = excluded.currency, total = excluded.total, base_total = excluded.base_total,
			refunded = excluded.refunded, base_refunded = excluded.base_refunded, events = excluded.events,
			updated_at = excluded.updated_at, paid = excluded.paid`, args...)
		return err
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
		return nil, ErrNotFound
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
