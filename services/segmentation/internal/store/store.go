// Package store keeps segmentation's facts in SQL (PostgreSQL or SQLite):
// per-customer features and the orders behind them, the events already
// applied, the latest score of each customer, the model fits and the
// scoring state, and the outbox of segment-changed events. It holds no
// rules: UpdateOrders and UpdateAgony load what a batch needs, hand it to
// a function (the use case, applying the domain's rules) and write what
// that function changed, with its outbox messages, in one transaction.
package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrNotFound is returned for a customer segmentation has never seen, or
// for a model that was never fitted.
var ErrNotFound = errors.New("not found")

// Store is segmentation's database.
type Store struct {
	db *sqldb.DB
}

// Open migrates db and returns the store.
func Open(ctx context.Context, db *sqldb.DB, log *slog.Logger) (*Store, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := sqldb.Migrate(ctx, db, "segmentation", sub, log); err != nil {
		return nil, err
	}
	if err := sqldb.Migrate(ctx, db, "outbox", outbox.Migrations(), log); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// DB returns the underlying database.
func (s *Store) DB() *sqldb.DB { return s.db }

// UpdateOrders runs one transaction over the customers and orders that
// events name: it loads them (locking the customers' rows), records as
// applied the ids of the events recognised by id (segment.ByID) and marks
// those not applied before as Fresh, calls fn, which applies the events
// and rescores, then writes the orders and customers (features, agony and
// score) the batch lists as changed and the outbox messages fn returns.
// An error from fn or SQL writes nothing; fn runs again, on a fresh
// batch, when the transaction is retried.
func (s *Store) UpdateOrders(ctx context.Context, evs []segment.Event, now time.Time, fn func(b *segment.OrderBatch) ([]outbox.Message, error)) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		w, err := s.load(ctx, tx, evs)
		if err != nil {
			return err
		}
		var claims []segment.Event
		for _, ev := range evs {
			if segment.ByID(ev, w.batch.Orders[segment.OrderKey{Source: ev.Source, OrderID: ev.OrderID}]) {
				claims = append(claims, ev)
			}
		}
		if w.batch.Fresh, err = s.claim(ctx, tx, claims, now); err != nil {
			return err
		}
		msgs, err := fn(w.batch)
		if err != nil {
			return err
		}
		if err := s.writeOrders(ctx, tx, w); err != nil {
			return err
		}
		if err := s.writeCustomers(ctx, tx, w, now); err != nil {
			return err
		}
		if len(msgs) > 0 {
			return outbox.Add(ctx, tx, s.db.Dialect, now, msgs...)
		}
		return nil
	})
}

// claim records the batch's event ids as applied and returns those that
// were not already: one statement both checks and records them. A
// concurrent transaction (another replica) inserting the same id makes
// PostgreSQL wait for it; once it commits, the id is not returned here,
// and the event is skipped.
func (s *Store) claim(ctx context.Context, tx *sql.Tx, evs []segment.Event, now time.Time) (map[string]bool, error) {
	ids := make([]string, 0, len(evs))
	seen := make(map[string]bool, len(evs))
	for _, ev := range evs {
		if !seen[ev.ID] {
			seen[ev.ID] = true
			ids = append(ids, ev.ID)
		}
	}
	// In key order, so that two replicas claiming overlapping batches
	// take the keys in the same order instead of deadlocking.
	slices.Sort(ids)
	rows := make([][]any, len(ids))
	at := now.UnixMicro()
	for i, id := range ids {
		rows[i] = []any{id, at}
	}
	fresh := make(map[string]bool, len(ids))
	err := rowSource(s.db.Dialect, processedColumns, rows, func(src string, args []any) error {
		return query(ctx, tx, "INSERT INTO seg_processed ("+processedColumns.names()+") "+src+
			" ON CONFLICT (event_id) DO NOTHING RETURNING event_id", args,
			func(rows *sql.Rows) error {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				fresh[id] = true
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("record applied events: %w", err)
	}
	return fresh, nil
}

// work is one batch as loaded.
type work struct {
	batch *segment.OrderBatch
	// knownCustomers and knownOrders were in the database before the
	// batch: they are updated, the others inserted.
	knownCustomers map[string]bool
	knownOrders    map[segment.OrderKey]bool
}

// load reads the customers and orders of the events, locking the
// customers' rows, and the agony of customers without features.
func (s *Store) load(ctx context.Context, tx *sql.Tx, evs []segment.Event) (*work, error) {
	w := &work{
		batch:          &segment.OrderBatch{Customers: map[string]*segment.Customer{}, Orders: map[segment.OrderKey]*segment.Order{}},
		knownCustomers: map[string]bool{}, knownOrders: map[segment.OrderKey]bool{},
	}
	var customers []any
	var orders [][]any
	seenC := map[string]bool{}
	seenO := map[segment.OrderKey]bool{}
	for _, ev := range evs {
		if !seenC[ev.CustomerID] {
			seenC[ev.CustomerID] = true
			customers = append(customers, ev.CustomerID)
		}
		if k := (segment.OrderKey{Source: ev.Source, OrderID: ev.OrderID}); !seenO[k] {
			seenO[k] = true
			orders = append(orders, []any{ev.Source, ev.OrderID})
		}
	}
	cs, err := s.loadCustomers(ctx, tx, customers)
	if err != nil {
		return nil, err
	}
	for i := range cs {
		id := cs[i].Features.CustomerID
		w.batch.Customers[id] = &cs[i]
		w.knownCustomers[id] = true
	}
	var unknown []any
	for _, c := range customers {
		if !w.knownCustomers[c.(string)] {
			unknown = append(unknown, c)
		}
	}
	if len(unknown) > 0 {
		states, err := s.loadAgony(ctx, tx, unknown, false)
		if err != nil {
			return nil, err
		}
		for c, st := range states {
			w.batch.Customers[c] = &segment.Customer{Agony: st.On}
		}
	}
	err = rowSource(s.db.Dialect, orderKeyColumns, orders, func(src string, args []any) error {
		return query(ctx, tx, "SELECT "+orderColumns.names()+" FROM seg_orders WHERE (source, order_id) IN ("+src+")", args,
			func(rows *sql.Rows) error {
				o := &segment.Order{}
				var status, disc int
				var paidAt int64
				if err := rows.Scan(&o.Source, &o.OrderID, &o.CustomerID, &status, &paidAt, &o.Value, &o.Refunded, &disc, &o.Channel, &o.LastSeq); err != nil {
					return err
				}
				o.Status, o.Discounted = segment.OrderStatus(status), disc != 0
				if paidAt > 0 { // 0, or the zero time of older rows: never paid
					o.PaidAt = time.UnixMicro(paidAt).UTC()
				}
				k := segment.OrderKey{Source: o.Source, OrderID: o.OrderID}
				w.batch.Orders[k], w.knownOrders[k] = o, true
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("load orders: %w", err)
	}
	return w, nil
}

// loadCustomers reads customers with their scores and locks their rows
// for the transaction.
func (s *Store) loadCustomers(ctx context.Context, tx *sql.Tx, ids []any) ([]segment.Customer, error) {
	d := s.db.Dialect
	var out []segment.Customer
	err := keysIn(d, 1, ids, func(cond string, args []any) error {
		return query(ctx, tx, "SELECT "+customerColumns+" FROM seg_features WHERE customer_id "+cond+d.ForUpdate(), args,
			func(rows *sql.Rows) error {
				c, err := scanCustomer(rows)
				if err != nil {
					return err
				}
				out = append(out, c)
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("load customers: %w", err)
	}
	return out, nil
}

func query(ctx context.Context, tx *sql.Tx, q string, args []any, each func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// writeOrders inserts new orders and updates known ones. New rows are plain
// inserts: should a concurrent transaction (another replica) have created
// one meanwhile, the key conflict runs the batch again from a fresh read
// instead of overwriting its work.
func (s *Store) writeOrders(ctx context.Context, tx *sql.Tx, w *work) error {
	var rows, fresh [][]any
	for _, k := range w.batch.ChangedOrders {
		o := w.batch.Orders[k]
		var paidAt int64
		if !o.PaidAt.IsZero() {
			paidAt = o.PaidAt.UnixMicro()
		}
		row := []any{o.Source, o.OrderID, o.CustomerID, int(o.Status), paidAt, o.Value, o.Refunded, boolInt(o.Discounted), o.Channel, int64(o.LastSeq)}
		if w.knownOrders[k] {
			rows = append(rows, row)
		} else {
			fresh = append(fresh, row)
		}
	}
	if err := insertRows(ctx, tx, s.db.Dialect, "seg_orders", orderColumns, "", fresh); err != nil {
		return fmt.Errorf("insert orders: %w", err)
	}
	err := insertRows(ctx, tx, s.db.Dialect, "seg_orders", orderColumns, `(source, order_id) DO UPDATE SET status = excluded.status,
		paid_at = excluded.paid_at, value = excluded.value, refunded = excluded.refunded, discounted = excluded.discounted,
		channel = excluded.channel, last_seq = excluded.last_seq`, rows)
	if err != nil {
		return fmt.Errorf("write orders: %w", err)
	}
	return nil
}

var (
	processedColumns = columns{{"event_id", text}, {"processed_at", bigint}}
	orderKeyColumns  = columns{{"source", text}, {"order_id", text}}
	orderColumns     = columns{{"source", text}, {"order_id", text}, {"customer_id", text}, {"status", bigint}, {"paid_at", bigint},
		{"value", bigint}, {"refunded", bigint}, {"discounted", bigint}, {"channel", text}, {"last_seq", bigint}}
	// featureWrites are the columns writeCustomers writes: features, agony, the
	// time of the write, and the score.
	featureWrites = append(columns{{"customer_id", text}, {"currency", text}, {"orders", bigint}, {"total_value", bigint},
		{"discounted_orders", bigint}, {"refunds", bigint}, {"refunded_value", bigint}, {"channels", text}, {"days", bytea},
		{"agony", bigint}, {"updated_at", bigint}}, scoreWrites[1:]...)
	// scoreWrites are a customer id and their score (scoreColumns).
	scoreWrites = columns{{"customer_id", text}, {"r", bigint}, {"f", bigint}, {"m", bigint}, {"segment", bigint}, {"flags", bigint},
		{"predicted", bigint}, {"expected_purchases", float8}, {"horizon_days", bigint}, {"p_alive", float8}, {"order_value", bigint},
		{"clv", bigint}, {"has_interval", bigint}, {"purchases_low", float8}, {"purchases_high", float8}, {"clv_low", bigint},
		{"clv_high", bigint}, {"withheld", bigint}, {"scored_at", bigint}}
)

// A customer's row in seg_features: their features, agony mark and latest
// score (scored_at is NULL for a customer never scored).
const (
	featureColumns  = `customer_id, currency, orders, total_value, discounted_orders, refunds, refunded_value, channels, days, agony`
	scoreColumns    = `r, f, m, segment, flags, predicted, expected_purchases, horizon_days, p_alive, order_value, clv, has_interval, purchases_low, purchases_high, clv_low, clv_high, withheld, scored_at`
	customerColumns = featureColumns + ", " + scoreColumns
)

// scanCustomer reads customerColumns.
func scanCustomer(rows *sql.Rows) (segment.Customer, error) {
	f := &segment.Features{}
	sc := &segment.Score{}
	var (
		channels              string
		days                  []byte
		agony                 int
		seg, flags, predicted int
		interval, withheld    int
		p                     segment.Prediction
		at                    sql.NullInt64
	)
	if err := rows.Scan(&f.CustomerID, &f.Currency, &f.Orders, &f.TotalValue, &f.DiscountedOrders, &f.Refunds, &f.RefundedValue,
		&channels, &days, &agony, &sc.RFM.R, &sc.RFM.F, &sc.RFM.M, &seg, &flags, &predicted, &p.ExpectedPurchases,
		&p.HorizonDays, &p.PAlive, &p.ExpectedOrderValue, &p.CLV, &interval, &p.PurchasesLow, &p.PurchasesHigh, &p.CLVLow, &p.CLVHigh,
		&withheld, &at); err != nil {
		return segment.Customer{}, err
	}
	var err error
	if f.Channels, err = decodeChannels(channels); err != nil {
		return segment.Customer{}, fmt.Errorf("customer %s channels: %w", f.CustomerID, err)
	}
	if f.Days, err = decodeDays(days); err != nil {
		return segment.Customer{}, fmt.Errorf("customer %s days: %w", f.CustomerID, err)
	}
	c := segment.Customer{Features: f, Agony: agony != 0}
	if at.Valid {
		sc.CustomerID, sc.Segment, sc.Flags, sc.ScoredAt = f.CustomerID, segment.Segment(seg), segment.Flags(flags), time.UnixMicro(at.Int64).UTC()
		sc.Withheld = segment.Withheld(withheld)
		if predicted != 0 {
			p.Interval = interval != 0
			sc.Prediction = &p
		}
		c.Score = sc
	}
	return c, nil
}

// writeCustomers writes the features, agony and score of the customers
// the batch changed. New customers are inserted and known ones updated;
// like orders, a new customer another transaction created meanwhile is a
// key conflict that runs the batch again.
func (s *Store) writeCustomers(ctx context.Context, tx *sql.Tx, w *work, now time.Time) error {
	var rows, fresh [][]any
	for _, id := range w.batch.ChangedCustomers {
		c := w.batch.Customers[id]
		if c.Score == nil {
			// Not named: errors reach the logs, and ids are customers'.
			return errors.New("a changed customer was not rescored")
		}
		f := c.Features
		row := append(make([]any, 0, len(featureWrites)), f.CustomerID, f.Currency, f.Orders, f.TotalValue, f.DiscountedOrders, f.Refunds,
			f.RefundedValue, encodeChannels(f.Channels), encodeDays(f.Days), boolInt(c.Agony), now.UnixMicro())
		row = appendScore(row, c.Score)
		if w.knownCustomers[id] {
			rows = append(rows, row)
		} else {
			fresh = append(fresh, row)
		}
	}
	if err := insertRows(ctx, tx, s.db.Dialect, "seg_features", featureWrites, "", fresh); err != nil {
		return fmt.Errorf("insert customers: %w", err)
	}
	err := insertRows(ctx, tx, s.db.Dialect, "seg_features", featureWrites, `(customer_id) DO UPDATE SET currency = excluded.currency,
		orders = excluded.orders, total_value = excluded.total_value, discounted_orders = excluded.discounted_orders,
		refunds = excluded.refunds, refunded_value = excluded.refunded_value, channels = excluded.channels, days = excluded.days,
		agony = excluded.agony, updated_at = excluded.updated_at, `+scoreUpdates, rows)
	if err != nil {
		return fmt.Errorf("write customers: %w", err)
	}
	return nil
}

// scoreUpdates sets the score columns from the row proposed for insertion.
const scoreUpdates = `r = excluded.r, f = excluded.f, m = excluded.m, segment = excluded.segment, flags = excluded.flags,
	predicted = excluded.predicted, expected_purchases = excluded.expected_purchases, horizon_days = excluded.horizon_days,
	p_alive = excluded.p_alive, order_value = excluded.order_value, clv = excluded.clv, has_interval = excluded.has_interval,
	purchases_low = excluded.purchases_low, purchases_high = excluded.purchases_high, clv_low = excluded.clv_low,
	clv_high = excluded.clv_high, withheld = excluded.withheld, scored_at = excluded.scored_at`

// appendScore appends the values of scoreColumns.
func appendScore(row []any, sc *segment.Score) []any {
	var p segment.Prediction
	predicted := 0
	if sc.Prediction != nil {
		p, predicted = *sc.Prediction, 1
	}
	return append(row, sc.RFM.R, sc.RFM.F, sc.RFM.M, int(sc.Segment), int(sc.Flags), predicted,
		p.ExpectedPurchases, p.HorizonDays, p.PAlive, p.ExpectedOrderValue, p.CLV, boolInt(p.Interval), p.PurchasesLow,
		p.PurchasesHigh, p.CLVLow, p.CLVHigh, int(sc.Withheld), sc.ScoredAt.UnixMicro())
}

// writeScores updates the scores of customers already in seg_features
// (a scoring run, an agony mark), leaving their features alone.
func writeScores(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, scores []segment.Score) error {
	rows := make([][]any, len(scores))
	for i := range scores {
		rows[i] = appendScore(append(make([]any, 0, len(scoreWrites)), scores[i].CustomerID), &scores[i])
	}
	err := rowSource(d, scoreWrites, rows, func(src string, args []any) error {
		_, err := tx.ExecContext(ctx, `WITH v (`+scoreWrites.names()+`) AS (`+src+`)
			UPDATE seg_features SET r = v.r, f = v.f, m = v.m, segment = v.segment, flags = v.flags, predicted = v.predicted,
			expected_purchases = v.expected_purchases, horizon_days = v.horizon_days, p_alive = v.p_alive,
			order_value = v.order_value, clv = v.clv, has_interval = v.has_interval, purchases_low = v.purchases_low,
			purchases_high = v.purchases_high, clv_low = v.clv_low, clv_high = v.clv_high, withheld = v.withheld,
			scored_at = v.scored_at
			FROM v WHERE seg_features.customer_id = v.customer_id`, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("write scores: %w", err)
	}
	return nil
}

// encodeChannels writes the paid orders per channel as a JSON object.
func encodeChannels(ch map[string]int64) string {
	if len(ch) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(ch) // a map of strings to integers always encodes
	return string(b)
}

func decodeChannels(s string) (map[string]int64, error) {
	var ch map[string]int64
	if err := json.Unmarshal([]byte(s), &ch); err != nil {
		return nil, err
	}
	return ch, nil
}

// encodeDays writes purchase days compactly: per day, varints of the day
// (as a delta from the previous one), orders, value, first time (delta
// from the previous day's last) and last time (delta from first). A
// customer with a hundred purchase days takes about a kilobyte.
func encodeDays(days []segment.Day) []byte {
	b := make([]byte, 0, len(days)*16)
	var prevDay int32
	var prevLast int64
	for _, d := range days {
		b = binary.AppendVarint(b, int64(d.Day-prevDay))
		b = binary.AppendVarint(b, int64(d.Orders))
		b = binary.AppendVarint(b, d.Value)
		b = binary.AppendVarint(b, d.First-prevLast)
		b = binary.AppendVarint(b, d.Last-d.First)
		prevDay, prevLast = d.Day, d.Last
	}
	return b
}

func decodeDays(b []byte) ([]segment.Day, error) {
	var out []segment.Day
	var prevDay int32
	var prevLast int64
	next := func() (int64, error) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, errors.New("truncated")
		}
		b = b[n:]
		return v, nil
	}
	for len(b) > 0 {
		var v [5]int64
		for i := range v {
			x, err := next()
			if err != nil {
				return nil, err
			}
			v[i] = x
		}
		d := segment.Day{Day: prevDay + int32(v[0]), Orders: int32(v[1]), Value: v[2], First: prevLast + v[3]}
		d.Last = d.First + v[4]
		out = append(out, d)
		prevDay, prevLast = d.Day, d.Last
	}
	return out, nil
}
