// Package store keeps segmentation's facts in SQL (PostgreSQL or SQLite):
// per-customer features and the orders behind them, the events already
// applied, the latest score of each customer, the model fits and the
// scoring state, and the outbox of segment-changed events. A batch of order
// events is applied in one transaction.
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

// Rescore is a customer whose features changed: their features, agony
// mark and previous score (nil for a customer never scored).
type Rescore struct {
	Features *segment.Features
	Agony    bool
	Old      *segment.Score
}

// Rescorer scores the customers a transaction changed, inside it, and
// returns one score per customer, in order, with the outbox messages the
// changes call for. It gets them all at once so that it can spread the
// work over cores.
type Rescorer func(items []Rescore) ([]segment.Score, []outbox.Message)

// Update is one customer changed by a transaction.
type Update struct {
	Features *segment.Features
	Old      *segment.Score
	New      segment.Score
}

// Profile is the customer's new profile.
func (u *Update) Profile() segment.Profile { return u.New.Profile(u.Features) }

// Batch is the work of one transaction.
type Batch struct {
	// Events in the order they were delivered.
	Events []segment.Event
	// Extra outbox messages (dead letters of input that could not be
	// decoded), written in the same transaction.
	Extra []outbox.Message
	Now   time.Time
}

// Apply applies the batch's events in one transaction: events already
// applied (by id) are skipped, the others update their customer's features
// in order, every changed customer is rescored, and features, orders,
// scores and outbox messages are written together. It returns the changed
// customers and the number of events applied; an error means nothing was
// written.
func (s *Store) Apply(ctx context.Context, b Batch, rescore Rescorer) ([]Update, int, error) {
	var (
		updates []Update
		applied int
	)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		updates, applied = nil, 0
		w, err := s.load(ctx, tx, b.Events)
		if err != nil {
			return err
		}
		changed := map[string]bool{}
		var order []string
		var events []any
		for _, ev := range b.Events {
			if w.processed[ev.ID] {
				continue
			}
			w.processed[ev.ID] = true
			events = append(events, ev.ID, b.Now.UnixMicro())
			applied++
			f := w.features[ev.CustomerID]
			if f == nil {
				f = &segment.Features{CustomerID: ev.CustomerID}
				w.features[ev.CustomerID] = f
			}
			k := orderKey{ev.Source, ev.OrderID}
			next, ch := segment.Apply(f, w.orders[k], ev)
			if next != nil && next != w.orders[k] {
				w.orders[k] = next
				w.dirtyOrders[k] = true
			}
			if ch && !changed[ev.CustomerID] {
				changed[ev.CustomerID] = true
				order = append(order, ev.CustomerID)
			}
		}
		items := make([]Rescore, len(order))
		for i, c := range order {
			items[i] = Rescore{Features: w.features[c], Agony: w.agony[c], Old: w.scores[c]}
		}
		var msgs []outbox.Message
		if len(items) > 0 {
			var scores []segment.Score
			scores, msgs = rescore(items)
			if len(scores) != len(items) {
				return fmt.Errorf("rescore: %d scores for %d customers", len(scores), len(items))
			}
			for i, it := range items {
				updates = append(updates, Update{Features: it.Features, Old: it.Old, New: scores[i]})
			}
		}
		if err := s.writeProcessed(ctx, tx, events); err != nil {
			return err
		}
		if err := s.writeOrders(ctx, tx, w); err != nil {
			return err
		}
		fs := make([]*segment.Features, len(updates))
		scores := make([]segment.Score, len(updates))
		for i, u := range updates {
			fs[i], scores[i] = u.Features, u.New
		}
		if err := s.writeFeatures(ctx, tx, fs, w.agony, w.knownCustomers, b.Now); err != nil {
			return err
		}
		if err := writeScores(ctx, tx, s.db.Dialect, scores); err != nil {
			return err
		}
		msgs = append(msgs, b.Extra...)
		if len(msgs) > 0 {
			return outbox.Add(ctx, tx, s.db.Dialect, b.Now, msgs...)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return updates, applied, nil
}

type orderKey struct{ source, orderID string }

// work is one batch's state, read in a few statements.
type work struct {
	processed   map[string]bool
	features    map[string]*segment.Features
	agony       map[string]bool
	scores      map[string]*segment.Score
	orders      map[orderKey]*segment.Order
	dirtyOrders map[orderKey]bool
	// knownCustomers and knownOrders were in the database before the
	// batch: they are updated, the others inserted.
	knownCustomers map[string]bool
	knownOrders    map[orderKey]bool
}

func (s *Store) load(ctx context.Context, tx *sql.Tx, evs []segment.Event) (*work, error) {
	w := &work{
		processed: map[string]bool{}, features: map[string]*segment.Features{}, agony: map[string]bool{},
		scores: map[string]*segment.Score{}, orders: map[orderKey]*segment.Order{}, dirtyOrders: map[orderKey]bool{},
		knownCustomers: map[string]bool{}, knownOrders: map[orderKey]bool{},
	}
	var ids, customers []any
	seenC := map[string]bool{}
	bySource := map[string][]any{}
	var sources []string
	seenO := map[orderKey]bool{}
	for _, ev := range evs {
		ids = append(ids, ev.ID)
		if !seenC[ev.CustomerID] {
			seenC[ev.CustomerID] = true
			customers = append(customers, ev.CustomerID)
		}
		k := orderKey{ev.Source, ev.OrderID}
		if !seenO[k] {
			seenO[k] = true
			if _, ok := bySource[ev.Source]; !ok {
				sources = append(sources, ev.Source)
			}
			bySource[ev.Source] = append(bySource[ev.Source], ev.OrderID)
		}
	}
	d := s.db.Dialect
	err := inChunks(ids, 1, func(args []any) error {
		return query(ctx, tx, "SELECT event_id FROM seg_processed WHERE event_id IN ("+d.Placeholders(1, len(args))+")", args,
			func(rows *sql.Rows) error {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				w.processed[id] = true
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("find applied events: %w", err)
	}
	err = inChunks(customers, 1, func(args []any) error {
		return query(ctx, tx, "SELECT "+featureColumns+" FROM seg_features WHERE customer_id IN ("+d.Placeholders(1, len(args))+")"+d.ForUpdate(), args,
			func(rows *sql.Rows) error {
				f, agony, err := scanFeatures(rows)
				if err != nil {
					return err
				}
				w.features[f.CustomerID], w.agony[f.CustomerID] = f, agony
				w.knownCustomers[f.CustomerID] = true
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("load features: %w", err)
	}
	// A customer's first order takes the agony the feedback service
	// reported before it.
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
			w.agony[c] = st.On
		}
	}
	err = inChunks(customers, 1, func(args []any) error {
		return query(ctx, tx, "SELECT "+scoreColumns+" FROM seg_scores WHERE customer_id IN ("+d.Placeholders(1, len(args))+")", args,
			func(rows *sql.Rows) error {
				sc, err := scanScore(rows)
				if err != nil {
					return err
				}
				w.scores[sc.CustomerID] = sc
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("load scores: %w", err)
	}
	for _, src := range sources {
		err := inChunks(bySource[src], 1, func(ids []any) error {
			return query(ctx, tx, "SELECT source, order_id, customer_id, status, paid_at, value, refunded, discounted, channel FROM seg_orders WHERE source = "+
				d.Placeholders(1, 1)+" AND order_id IN ("+d.Placeholders(2, len(ids))+")", append([]any{src}, ids...),
				func(rows *sql.Rows) error {
					o := &segment.Order{}
					var status, disc int
					var paidAt int64
					if err := rows.Scan(&o.Source, &o.OrderID, &o.CustomerID, &status, &paidAt, &o.Value, &o.Refunded, &disc, &o.Channel); err != nil {
						return err
					}
					o.Status, o.Discounted, o.PaidAt = segment.OrderStatus(status), disc != 0, time.UnixMicro(paidAt).UTC()
					w.orders[orderKey{o.Source, o.OrderID}] = o
					w.knownOrders[orderKey{o.Source, o.OrderID}] = true
					return nil
				})
		})
		if err != nil {
			return nil, fmt.Errorf("load orders: %w", err)
		}
	}
	return w, nil
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

func (s *Store) writeProcessed(ctx context.Context, tx *sql.Tx, rows []any) error {
	// Ids were checked under the transaction; a concurrent replica that
	// applied one meanwhile makes this insert conflict, and InTx runs the
	// batch again from the start, where the id is then skipped.
	err := inChunks(rows, 2, func(args []any) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO seg_processed (event_id, processed_at) VALUES "+s.db.Dialect.Tuples(len(args)/2, 2), args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("record applied events: %w", err)
	}
	return nil
}

// writeOrders inserts new orders and updates known ones. New rows are plain
// inserts: should a concurrent transaction (another replica) have created
// one meanwhile, the key conflict runs the batch again from a fresh read
// instead of overwriting its work.
func (s *Store) writeOrders(ctx context.Context, tx *sql.Tx, w *work) error {
	var rows, fresh []any
	for k := range w.dirtyOrders {
		o := w.orders[k]
		disc := 0
		if o.Discounted {
			disc = 1
		}
		row := []any{o.Source, o.OrderID, o.CustomerID, int(o.Status), o.PaidAt.UnixMicro(), o.Value, o.Refunded, disc, o.Channel}
		if w.knownOrders[k] {
			rows = append(rows, row...)
		} else {
			fresh = append(fresh, row...)
		}
	}
	err := inChunks(fresh, 9, func(args []any) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO seg_orders (source, order_id, customer_id, status, paid_at, value, refunded, discounted, channel)
			VALUES `+s.db.Dialect.Tuples(len(args)/9, 9), args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("insert orders: %w", err)
	}
	err = inChunks(rows, 9, func(args []any) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO seg_orders (source, order_id, customer_id, status, paid_at, value, refunded, discounted, channel)
			VALUES `+s.db.Dialect.Tuples(len(args)/9, 9)+` ON CONFLICT (source, order_id) DO UPDATE SET status = excluded.status,
			paid_at = excluded.paid_at, value = excluded.value, refunded = excluded.refunded, discounted = excluded.discounted,
			channel = excluded.channel`, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("write orders: %w", err)
	}
	return nil
}

const featureColumns = `customer_id, currency, orders, total_value, discounted_orders, refunds, refunded_value, channels, days, agony`

func scanFeatures(rows *sql.Rows) (*segment.Features, bool, error) {
	f := &segment.Features{}
	var channels string
	var days []byte
	var agony int
	if err := rows.Scan(&f.CustomerID, &f.Currency, &f.Orders, &f.TotalValue, &f.DiscountedOrders, &f.Refunds, &f.RefundedValue,
		&channels, &days, &agony); err != nil {
		return nil, false, err
	}
	if err := json.Unmarshal([]byte(channels), &f.Channels); err != nil {
		return nil, false, fmt.Errorf("customer %s channels: %w", f.CustomerID, err)
	}
	var err error
	if f.Days, err = decodeDays(days); err != nil {
		return nil, false, fmt.Errorf("customer %s days: %w", f.CustomerID, err)
	}
	return f, agony != 0, nil
}

// writeFeatures inserts new customers and updates known ones; like orders,
// a new customer another transaction created meanwhile is a key conflict
// that runs the batch again.
func (s *Store) writeFeatures(ctx context.Context, tx *sql.Tx, fs []*segment.Features, agony, known map[string]bool, now time.Time) error {
	var rows, fresh []any
	for _, f := range fs {
		ch := f.Channels
		if ch == nil {
			ch = map[string]int64{}
		}
		channels, err := json.Marshal(ch)
		if err != nil {
			return err
		}
		a := 0
		if agony[f.CustomerID] {
			a = 1
		}
		row := []any{f.CustomerID, f.Currency, f.Orders, f.TotalValue, f.DiscountedOrders, f.Refunds, f.RefundedValue,
			string(channels), encodeDays(f.Days), a, now.UnixMicro()}
		if known[f.CustomerID] {
			rows = append(rows, row...)
		} else {
			fresh = append(fresh, row...)
		}
	}
	err := inChunks(fresh, 11, func(args []any) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO seg_features (`+featureColumns+`, updated_at) VALUES `+s.db.Dialect.Tuples(len(args)/11, 11), args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("insert features: %w", err)
	}
	err = inChunks(rows, 11, func(args []any) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO seg_features (`+featureColumns+`, updated_at) VALUES `+s.db.Dialect.Tuples(len(args)/11, 11)+`
			ON CONFLICT (customer_id) DO UPDATE SET currency = excluded.currency, orders = excluded.orders,
			total_value = excluded.total_value, discounted_orders = excluded.discounted_orders, refunds = excluded.refunds,
			refunded_value = excluded.refunded_value, channels = excluded.channels, days = excluded.days, agony = excluded.agony,
			updated_at = excluded.updated_at`, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("write features: %w", err)
	}
	return nil
}

const scoreColumns = `customer_id, r, f, m, segment, flags, predicted, expected_purchases, horizon_days, p_alive, order_value, clv, scored_at`

func scanScore(rows *sql.Rows) (*segment.Score, error) {
	sc := &segment.Score{}
	var seg, flags, predicted int
	var p segment.Prediction
	var at int64
	if err := rows.Scan(&sc.CustomerID, &sc.RFM.R, &sc.RFM.F, &sc.RFM.M, &seg, &flags, &predicted, &p.ExpectedPurchases,
		&p.HorizonDays, &p.PAlive, &p.ExpectedOrderValue, &p.CLV, &at); err != nil {
		return nil, err
	}
	sc.Segment, sc.Flags, sc.ScoredAt = segment.Segment(seg), segment.Flags(flags), time.UnixMicro(at).UTC()
	if predicted != 0 {
		sc.Prediction = &p
	}
	return sc, nil
}

func writeScores(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, scores []segment.Score) error {
	rows := make([]any, 0, 13*len(scores))
	for _, sc := range scores {
		var p segment.Prediction
		predicted := 0
		if sc.Prediction != nil {
			p, predicted = *sc.Prediction, 1
		}
		rows = append(rows, sc.CustomerID, sc.RFM.R, sc.RFM.F, sc.RFM.M, int(sc.Segment), int(sc.Flags), predicted,
			p.ExpectedPurchases, p.HorizonDays, p.PAlive, p.ExpectedOrderValue, p.CLV, sc.ScoredAt.UnixMicro())
	}
	err := inChunks(rows, 13, func(args []any) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO seg_scores (`+scoreColumns+`) VALUES `+d.Tuples(len(args)/13, 13)+`
			ON CONFLICT (customer_id) DO UPDATE SET r = excluded.r, f = excluded.f, m = excluded.m, segment = excluded.segment,
			flags = excluded.flags, predicted = excluded.predicted, expected_purchases = excluded.expected_purchases,
			horizon_days = excluded.horizon_days, p_alive = excluded.p_alive, order_value = excluded.order_value,
			clv = excluded.clv, scored_at = excluded.scored_at`, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("write scores: %w", err)
	}
	return nil
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

// inChunks calls fn with args in slices of whole rows (width values each)
// small enough for every driver's parameter limit.
func inChunks(args []any, width int, fn func([]any) error) error {
	const maxParams = 6000
	per := maxParams / width * width
	for start := 0; start < len(args); start += per {
		if err := fn(args[start:min(start+per, len(args))]); err != nil {
			return err
		}
	}
	return nil
}
