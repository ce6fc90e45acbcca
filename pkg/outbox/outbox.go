// Package outbox is the transactional outbox: a service writes the events
// it publishes into its own database in the same transaction as the state
// change, and a relay publishes them to JetStream afterwards with the
// outbox id as Nats-Msg-Id. No event is lost when the process dies between
// commit and publish, and none is invented for a change that rolled back.
package outbox

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the outbox table's migrations; services apply them
// with sqldb.Migrate(ctx, db, "outbox", outbox.Migrations(), log).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the embedded directory is part of the build
	}
	return sub
}

// Message is one event waiting to be published.
type Message struct {
	// ID is unique per event and deterministic where the event is (a
	// redelivered input must produce the same id): it becomes the
	// Nats-Msg-Id, and a second Add with the same id is ignored.
	ID      string
	Subject string
	Header  nats.Header
	Data    []byte
}

// Add writes messages in tx. Messages whose id is already in the outbox
// are skipped.
func Add(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, now time.Time, msgs ...Message) error {
	const perStmt = 200 // 5 parameters a row, well under every driver's limit
	for start := 0; start < len(msgs); start += perStmt {
		chunk := msgs[start:min(start+perStmt, len(msgs))]
		args := make([]any, 0, len(chunk)*5)
		for _, m := range chunk {
			args = append(args, m.ID, m.Subject, encodeHeader(m.Header), m.Data, now.UnixMicro())
		}
		q := "INSERT INTO outbox (msg_id, subject, headers, payload, created_at) VALUES " +
			d.Tuples(len(chunk), 5) + " ON CONFLICT (msg_id) DO NOTHING"
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("outbox add: %w", err)
		}
	}
	return nil
}

// encodeHeader stores headers as JSON, keeping the case of their names:
// NATS headers are case-sensitive ("traceparent" is not "Traceparent").
func encodeHeader(h nats.Header) []byte {
	if len(h) == 0 {
		return nil
	}
	b, _ := json.Marshal(map[string][]string(h))
	return b
}

func decodeHeader(b []byte) (nats.Header, error) {
	h := nats.Header{}
	if len(b) == 0 {
		return h, nil
	}
	if err := json.Unmarshal(b, (*map[string][]string)(&h)); err != nil {
		return nil, err
	}
	return h, nil
}

// Relay publishes outbox messages in the order they were written and
// deletes them once JetStream has acknowledged them.
type Relay struct {
	db      *sqldb.DB
	js      jetstream.JetStream
	log     *slog.Logger
	batch   int
	poll    time.Duration
	lockKey int64
	wake    chan struct{}

	published metric.Int64Counter
	pending   metric.Int64Gauge

	mu      sync.Mutex
	waiters []chan struct{}
}

// RelayOptions tunes the relay.
type RelayOptions struct {
	// Batch is the most messages published before waiting for acks.
	Batch int
	// Poll is how often the table is checked without a Notify.
	Poll time.Duration
	// LockKey names the relay's leadership lock in PostgreSQL: with
	// several replicas on one database, one relay publishes at a time so
	// that events keep their order.
	LockKey int64
	Meter   metric.Meter
	Service string
}

// NewRelay returns a relay; Run starts it.
func NewRelay(db *sqldb.DB, js jetstream.JetStream, log *slog.Logger, o RelayOptions) (*Relay, error) {
	if o.Batch <= 0 {
		o.Batch = 512
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	r := &Relay{db: db, js: js, log: log, batch: o.Batch, poll: o.Poll, lockKey: o.LockKey, wake: make(chan struct{}, 1)}
	if o.Meter != nil {
		var err error
		if r.published, err = o.Meter.Int64Counter("boomerang.outbox.published",
			metric.WithDescription("Outbox messages published to JetStream")); err != nil {
			return nil, err
		}
		if r.pending, err = o.Meter.Int64Gauge("boomerang.outbox.pending",
			metric.WithDescription("Outbox messages found waiting at the last relay pass")); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Notify tells the relay that new messages were committed.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx is cancelled.
func (r *Relay) Run(ctx context.Context) error {
	unlock, err := r.lead(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	t := time.NewTicker(r.poll)
	defer t.Stop()
	backoff := 100 * time.Millisecond
	for {
		// Waiters registered before this pass began are answered by it;
		// later ones wait for the next.
		waiting := r.takeWaiters()
		n, err := r.pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.log.WarnContext(ctx, "outbox relay", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			r.requeue(waiting)
			continue
		}
		backoff = 100 * time.Millisecond
		if n == r.batch {
			r.requeue(waiting)
			continue // more may be waiting
		}
		for _, ch := range waiting {
			close(ch)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-t.C:
		}
	}
}

// Flush waits until the relay has found the outbox empty after the call.
// Tests and graceful shutdown use it.
func (r *Relay) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	r.mu.Lock()
	r.waiters = append(r.waiters, ch)
	r.mu.Unlock()
	r.Notify()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Relay) takeWaiters() []chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := r.waiters
	r.waiters = nil
	return ws
}

func (r *Relay) requeue(ws []chan struct{}) {
	if len(ws) == 0 {
		return
	}
	r.mu.Lock()
	r.waiters = append(ws, r.waiters...)
	r.mu.Unlock()
}

type row struct {
	seq int64
	msg *nats.Msg
}

// pass publishes up to one batch and returns how many rows it found.
func (r *Relay) pass(ctx context.Context) (int, error) {
	// Read through the reader pool: with SQLite the writer connection stays
	// free for the services' transactions (WAL readers see every commit).
	rows, err := r.db.R.QueryContext(ctx,
		"SELECT seq, msg_id, subject, headers, payload FROM outbox ORDER BY seq LIMIT $1", r.batch)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	var batch []row
	for rows.Next() {
		var (
			seq             int64
			id, subject     string
			header, payload []byte
		)
		if err := rows.Scan(&seq, &id, &subject, &header, &payload); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read outbox: %w", err)
		}
		h, err := decodeHeader(header)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("outbox %s headers: %w", id, err)
		}
		h.Set(jetstream.MsgIDHeader, id)
		batch = append(batch, row{seq: seq, msg: &nats.Msg{Subject: subject, Header: h, Data: payload}})
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	rows.Close()
	if r.pending != nil {
		r.pending.Record(ctx, int64(len(batch)))
	}
	if len(batch) == 0 {
		return 0, nil
	}
	done, err := r.publish(ctx, batch)
	if len(done) > 0 {
		if derr := r.delete(ctx, done); derr != nil {
			return 0, errors.Join(err, derr)
		}
		if r.published != nil {
			r.published.Add(ctx, int64(len(done)))
		}
	}
	return len(batch), err
}

// publish sends the batch asynchronously and returns the seqs of the prefix
// JetStream acknowledged; it stops at the first failure so that the next
// pass resends from there (the Nats-Msg-Id drops what was stored twice).
func (r *Relay) publish(ctx context.Context, batch []row) ([]int64, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	var err error
	for _, b := range batch {
		f, perr := r.js.PublishMsgAsync(b.msg)
		if perr != nil {
			err = fmt.Errorf("publish %s: %w", b.msg.Subject, perr)
			break
		}
		futures = append(futures, f)
	}
	done := make([]int64, 0, len(futures))
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for i, f := range futures {
		select {
		case <-f.Ok():
			if err == nil {
				done = append(done, batch[i].seq)
			}
		case e := <-f.Err():
			if err == nil {
				err = fmt.Errorf("publish %s: %w", batch[i].msg.Subject, e)
			}
		case <-timeout.C:
			return done, errors.Join(err, errors.New("publish: no ack within 30s"))
		case <-ctx.Done():
			return done, ctx.Err()
		}
	}
	return done, err
}

func (r *Relay) delete(ctx context.Context, seqs []int64) error {
	// Seqs are integers we read ourselves, so they are written inline.
	var b strings.Builder
	b.WriteString("DELETE FROM outbox WHERE seq IN (")
	for i, s := range seqs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(s, 10))
	}
	b.WriteByte(')')
	if _, err := r.db.W.ExecContext(ctx, b.String()); err != nil {
		return fmt.Errorf("delete published: %w", err)
	}
	return nil
}

// lead takes the relay's leadership lock. On PostgreSQL it is a session
// advisory lock held on a dedicated connection, waited for while another
// replica holds it; SQLite is owned by one process, which leads.
func (r *Relay) lead(ctx context.Context) (func(), error) {
	if r.db.Dialect != sqldb.Postgres {
		return func() {}, nil
	}
	conn, err := r.db.W.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("relay lock: %w", err)
	}
	for {
		var ok bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", r.lockKey).Scan(&ok); err != nil {
			conn.Close()
			if ctx.Err() != nil {
				return func() {}, nil
			}
			return nil, fmt.Errorf("relay lock: %w", err)
		}
		if ok {
			return func() {
				_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", r.lockKey)
				conn.Close()
			}, nil
		}
		select {
		case <-ctx.Done():
			conn.Close()
			return func() {}, nil
		case <-time.After(2 * time.Second):
		}
	}
}
