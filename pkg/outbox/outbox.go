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
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
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

// Columns are the outbox table's columns that AppendRows fills, Width of
// them, and Conflict the ON CONFLICT clause a row is inserted with: a
// store that writes with statements of its own (prepared once) inserts
// rows of these; Add writes them itself.
const (
	Columns  = "msg_id, subject, headers, payload, created_at"
	Width    = 5
	Conflict = "(msg_id) DO NOTHING"
)

// AppendRows appends the rows of msgs to args, Width values each.
func AppendRows(args []any, now time.Time, msgs ...Message) []any {
	at := now.UnixMicro()
	for _, m := range msgs {
		args = append(args, m.ID, m.Subject, encodeHeader(m.Header), m.Data, at)
	}
	return args
}

// Add writes messages in tx. Messages whose id is already in the outbox
// are skipped.
func Add(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, now time.Time, msgs ...Message) error {
	const perStmt = 200 // 5 parameters a row, well under every driver's limit
	for start := 0; start < len(msgs); start += perStmt {
		chunk := msgs[start:min(start+perStmt, len(msgs))]
		args := AppendRows(make([]any, 0, len(chunk)*Width), now, chunk...)
		q := "INSERT INTO outbox (" + Columns + ") VALUES " + d.Tuples(len(chunk), Width) + " ON CONFLICT " + Conflict
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
// deletes them once JetStream has acknowledged them. A message that can
// never be published (see Reason) is moved to the parked table with its
// reason, so that one bad row never holds back the rows behind it.
type Relay struct {
	db      *sqldb.DB
	js      jetstream.JetStream
	log     *slog.Logger
	batch   int
	poll    time.Duration
	lockKey int64
	fit     func(m *nats.Msg, max int) bool
	stored  func(ctx context.Context, m *nats.Msg)
	wake    chan struct{}

	meter      metric.Meter
	service    attribute.KeyValue
	published  metric.Int64Counter
	pending    metric.Int64Gauge
	parked     metric.Int64Counter
	parkedRows metric.Int64ObservableGauge
	oldestAge  metric.Float64ObservableGauge

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
	// Fit is asked about a message whose headers and payload exceed max,
	// the connected server's max payload. It may shrink m in place (the
	// Nats-Msg-Id header is already set and must stay) and reports whether
	// it did; a message that still does not fit is parked as too large.
	// Dead letters use it to carry a truncated copy of what they park.
	Fit func(m *nats.Msg, max int) bool
	// Stored is told of each message JetStream stored: acknowledged and
	// not a duplicate of a message id in the stream's duplicate window.
	// A message published again is told once, whether its ack was lost
	// or its row was written again after the relay had published and
	// deleted it (an input redelivered, or a failed batch applied again
	// message by message). Dead letters are counted through it.
	Stored func(ctx context.Context, m *nats.Msg)
}

// NewRelay returns a relay; Run starts it.
func NewRelay(db *sqldb.DB, js jetstream.JetStream, log *slog.Logger, o RelayOptions) (*Relay, error) {
	if o.Batch <= 0 {
		o.Batch = 512
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	r := &Relay{
		db: db, js: js, log: log, batch: o.Batch, poll: o.Poll, lockKey: o.LockKey, fit: o.Fit, stored: o.Stored,
		wake: make(chan struct{}, 1), meter: o.Meter, service: attribute.String("service", o.Service),
	}
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
		if r.parked, err = o.Meter.Int64Counter("boomerang.outbox.parked",
			metric.WithDescription("Outbox messages parked because they can never be published, by service and reason")); err != nil {
			return nil, err
		}
		if r.parkedRows, err = o.Meter.Int64ObservableGauge("boomerang.outbox.parked.rows",
			metric.WithDescription("Outbox messages currently parked, waiting for an operator")); err != nil {
			return nil, err
		}
		if r.oldestAge, err = o.Meter.Float64ObservableGauge("boomerang.outbox.oldest.age", metric.WithUnit("s"),
			metric.WithDescription("Age of the oldest outbox message waiting to be published (0 when none waits)")); err != nil {
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
	if r.meter != nil {
		reg, err := r.meter.RegisterCallback(r.observe, r.parkedRows, r.oldestAge)
		if err != nil {
			return fmt.Errorf("outbox metrics: %w", err)
		}
		defer func() { _ = reg.Unregister() }()
	}
	unlock, err := r.lead(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	t := time.NewTicker(r.poll)
	defer t.Stop()
	retry := &backoff.ExponentialBackOff{
		InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.2, Multiplier: 2, MaxInterval: 5 * time.Second,
	}
	retry.Reset()
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
			case <-time.After(retry.NextBackOff()):
			}
			r.requeue(waiting)
			continue
		}
		retry.Reset()
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

// OldestAge is how long the oldest message in the outbox has waited to be
// published; zero when the outbox is empty. A relay that cannot reach
// JetStream, or a replica that never gets the leadership lock, shows here.
func (r *Relay) OldestAge(ctx context.Context) (time.Duration, error) {
	// The lowest seq is the row the relay works on next; its key is
	// indexed, where created_at is not.
	var created int64
	err := r.db.R.QueryRowContext(ctx, "SELECT created_at FROM outbox ORDER BY seq LIMIT 1").Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("outbox age: %w", err)
	}
	return max(time.Since(time.UnixMicro(created)), 0), nil
}

// observe reports the parked rows and the outbox's age when metrics are
// collected, from the database, so that every replica reports the same.
func (r *Relay) observe(ctx context.Context, o metric.Observer) error {
	n, err := CountParked(ctx, r.db)
	if err != nil {
		return err
	}
	age, err := r.OldestAge(ctx)
	if err != nil {
		return err
	}
	attrs := metric.WithAttributes(r.service)
	o.ObserveInt64(r.parkedRows, int64(n), attrs)
	o.ObserveFloat64(r.oldestAge, age.Seconds(), attrs)
	return nil
}

type row struct {
	seq int64
	id  string
	msg *nats.Msg
	// bad is why the row cannot even be made into a message.
	bad error
}

// parking is a row that will be moved to the parked table.
type parking struct {
	row    *row
	reason string
	detail string
}

// pass publishes up to one batch and returns how many rows it found.
func (r *Relay) pass(ctx context.Context) (int, error) {
	batch, err := r.read(ctx)
	if err != nil {
		return 0, err
	}
	if r.pending != nil {
		r.pending.Record(ctx, int64(len(batch)))
	}
	if len(batch) == 0 {
		return 0, nil
	}
	done, parked, err := r.publish(ctx, batch)
	if len(done) == 0 && len(parked) == 0 {
		return len(batch), err
	}
	// What JetStream acknowledged is recorded even when the relay is
	// being stopped: a row left behind would be sent again, and stored
	// twice once the stream's duplicate window has passed.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := r.settle(sctx, done, parked); serr != nil {
		return 0, errors.Join(err, serr)
	}
	if r.published != nil && len(done) > 0 {
		r.published.Add(ctx, int64(len(done)))
	}
	for _, p := range parked {
		r.log.ErrorContext(ctx, "outbox message parked", "msg_id", p.row.id, "subject", p.row.msg.Subject,
			"reason", p.reason, "detail", p.detail)
		if r.parked != nil {
			r.parked.Add(ctx, 1, metric.WithAttributes(r.service, attribute.String("reason", p.reason)))
		}
	}
	return len(batch), err
}

func (r *Relay) read(ctx context.Context) ([]row, error) {
	// Read through the reader pool: with SQLite the writer connection stays
	// free for the services' transactions (WAL readers see every commit).
	rows, err := r.db.R.QueryContext(ctx,
		"SELECT seq, msg_id, subject, headers, payload FROM outbox ORDER BY seq LIMIT $1", r.batch)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var batch []row
	for rows.Next() {
		var (
			b               row
			header, payload []byte
		)
		m := &nats.Msg{}
		if err := rows.Scan(&b.seq, &b.id, &m.Subject, &header, &payload); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		m.Data = payload
		if m.Header, b.bad = decodeHeader(header); b.bad != nil {
			m.Header = nats.Header{}
		}
		m.Header.Set(jetstream.MsgIDHeader, b.id)
		b.msg = m
		batch = append(batch, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return batch, nil
}

// errAckTimeout ends a wait for acks that the server does not answer.
var errAckTimeout = errors.New("publish: no ack within 30s")

// publish sends the batch asynchronously. It returns the seqs JetStream
// acknowledged, whatever failed around them, and the rows to park; err is
// the first failure that retrying may cure, after which it sends no more
// (the next pass resends from the first row not done).
func (r *Relay) publish(ctx context.Context, batch []row) (done []int64, parked []parking, err error) {
	maxPayload := int(r.js.Conn().MaxPayload())
	type sent struct {
		row *row
		f   jetstream.PubAckFuture
	}
	futures := make([]sent, 0, len(batch))
	for i := range batch {
		b := &batch[i]
		if b.bad != nil {
			parked = append(parked, parking{b, ReasonBadHeaders, b.bad.Error()})
			continue
		}
		if detail := r.fits(b.msg, maxPayload); detail != "" {
			parked = append(parked, parking{b, ReasonTooLarge, detail})
			continue
		}
		f, perr := r.js.PublishMsgAsync(b.msg)
		if perr != nil {
			if reason := permanent(perr); reason != "" {
				parked = append(parked, parking{b, reason, perr.Error()})
				continue
			}
			err = fmt.Errorf("publish %s: %w", b.msg.Subject, perr)
			break
		}
		futures = append(futures, sent{b, f})
	}
	noStream := map[string]bool{} // subjects looked up in this pass
	settled := func(s sent, ack *jetstream.PubAck, e error) {
		if ack != nil {
			done = append(done, s.row.seq)
			// Told now, not once the row is deleted: should that fail, the
			// message is sent again and comes back a duplicate.
			if !ack.Duplicate && r.stored != nil {
				r.stored(ctx, s.row.msg)
			}
			return
		}
		reason := permanent(e)
		if reason == "" && isNoResponders(e) && ctx.Err() == nil {
			subj := s.row.msg.Subject
			gone, seen := noStream[subj]
			if !seen {
				gone = r.streamless(ctx, subj)
				noStream[subj] = gone
			}
			if gone {
				reason = ReasonNoStream
			}
		}
		if reason != "" {
			parked = append(parked, parking{s.row, reason, e.Error()})
			return
		}
		if err == nil {
			err = fmt.Errorf("publish %s: %w", s.row.msg.Subject, e)
		}
	}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for i, s := range futures {
		var stop error
		select {
		case ack := <-s.f.Ok():
			settled(s, ack, nil)
		case e := <-s.f.Err():
			settled(s, nil, e)
		case <-timeout.C:
			stop = errAckTimeout
		case <-ctx.Done():
			stop = ctx.Err()
		}
		if stop != nil {
			// Keep the answers already in; the rest are sent again.
			for _, s := range futures[i:] {
				select {
				case ack := <-s.f.Ok():
					settled(s, ack, nil)
				case e := <-s.f.Err():
					settled(s, nil, e)
				default:
				}
			}
			return done, parked, errors.Join(err, stop)
		}
	}
	return done, parked, err
}

// fits returns why m cannot be published on a server whose max payload is
// maxPayload, after offering it to the Fit hook, or "" when it can.
func (r *Relay) fits(m *nats.Msg, maxPayload int) string {
	if maxPayload <= 0 {
		return "" // not connected yet: the publish itself will tell
	}
	size := payloadSize(m)
	if size <= maxPayload {
		return ""
	}
	if r.fit != nil && r.fit(m, maxPayload) && payloadSize(m) <= maxPayload {
		return ""
	}
	return fmt.Sprintf("%d bytes of headers and payload, over the server's max payload of %d", size, maxPayload)
}

// payloadSize is what the server counts against its max payload: the
// encoded headers and the data.
func payloadSize(m *nats.Msg) int { return m.Size() - len(m.Subject) - len(m.Reply) }

// permanent returns the reason to park a message whose publish failed with
// err, or "" when retrying may succeed.
func permanent(err error) string {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return ReasonTooLarge
	case errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum ||
		api.ErrorCode == errCodeHeaderExceedsMaximum):
		return ReasonTooLarge
	case errors.Is(err, nats.ErrBadHeaderMsg):
		return ReasonBadHeaders
	case errors.Is(err, nats.ErrBadSubject):
		return ReasonBadSubject
	}
	return ""
}

// errCodeHeaderExceedsMaximum is JetStream's answer to headers over 64 KiB
// (JSStreamHeaderExceedsMaximumErr); nats.go has no constant for it.
const errCodeHeaderExceedsMaximum jetstream.ErrorCode = 10097

func isNoResponders(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}

// streamless reports whether JetStream itself says that no stream takes
// subject. No responders to a publish also happens while a stream has no
// leader or JetStream is restarting; only JetStream's own answer that no
// stream is bound to the subject makes the message unpublishable.
func (r *Relay) streamless(ctx context.Context, subject string) bool {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := r.js.StreamNameBySubject(lctx, subject)
	return errors.Is(err, jetstream.ErrStreamNotFound)
}

// settle deletes the published rows and moves the parked ones to
// outbox_parked, in one transaction.
func (r *Relay) settle(ctx context.Context, done []int64, parked []parking) error {
	seqs := make([]any, 0, len(done)+len(parked))
	for _, s := range done {
		seqs = append(seqs, s)
	}
	for _, p := range parked {
		seqs = append(seqs, p.row.seq)
	}
	now := time.Now().UnixMicro()
	err := r.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, p := range parked {
			// The first parking of an id is kept: a later copy (the same
			// input dead-lettered again) carries nothing new.
			if _, err := tx.ExecContext(ctx, `INSERT INTO outbox_parked
				(msg_id, subject, headers, payload, created_at, parked_at, reason, detail)
				SELECT msg_id, subject, headers, payload, created_at, $1, $2, $3 FROM outbox WHERE seq = $4
				ON CONFLICT (msg_id) DO NOTHING`, now, p.reason, p.detail, p.row.seq); err != nil {
				return fmt.Errorf("park %s: %w", p.row.id, err)
			}
		}
		return sqldb.InChunks(seqs, func(chunk []any) error {
			q := "DELETE FROM outbox WHERE seq IN (" + r.db.Dialect.Placeholders(1, len(chunk)) + ")"
			_, err := tx.ExecContext(ctx, q, chunk...)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("settle published: %w", err)
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
