package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
)

// Reasons a relay parks a message: each is a fault of the message or of
// the bus's configuration that publishing again will not cure.
const (
	// ReasonTooLarge: headers and payload exceed the server's max payload
	// (or the stream's max message or header size).
	ReasonTooLarge = "too_large"
	// ReasonNoStream: JetStream answers that no stream takes the subject.
	ReasonNoStream = "no_stream"
	// ReasonBadHeaders: the stored headers cannot be decoded or sent.
	ReasonBadHeaders = "bad_headers"
	// ReasonBadSubject: the subject is not a valid NATS subject.
	ReasonBadSubject = "bad_subject"
)

// ErrNotParked is returned for a message id that is not parked.
var ErrNotParked = errors.New("outbox message not parked")

// Parked is a message the relay could not publish.
type Parked struct {
	ID      string
	Subject string
	Header  nats.Header
	// Size is the payload's length; ListParked leaves Data out.
	Size      int
	Data      []byte
	CreatedAt time.Time
	ParkedAt  time.Time
	Reason    string
	// Detail is the error that decided it, for people.
	Detail string
}

// ListParked returns up to limit parked messages, oldest parked first,
// without their payloads (GetParked has it).
func ListParked(ctx context.Context, db *sqldb.DB, limit int) ([]Parked, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.R.QueryContext(ctx, `SELECT msg_id, subject, headers, LENGTH(payload), created_at, parked_at, reason, detail
		FROM outbox_parked ORDER BY parked_at, msg_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list parked: %w", err)
	}
	defer rows.Close()
	var out []Parked
	for rows.Next() {
		p, err := scanParked(rows, false)
		if err != nil {
			return nil, fmt.Errorf("list parked: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list parked: %w", err)
	}
	return out, nil
}

// GetParked returns one parked message with its payload.
func GetParked(ctx context.Context, db *sqldb.DB, id string) (Parked, error) {
	row := db.R.QueryRowContext(ctx, `SELECT msg_id, subject, headers, payload, created_at, parked_at, reason, detail
		FROM outbox_parked WHERE msg_id = $1`, id)
	p, err := scanParked(row, true)
	if errors.Is(err, sql.ErrNoRows) {
		return Parked{}, fmt.Errorf("%s: %w", id, ErrNotParked)
	}
	if err != nil {
		return Parked{}, fmt.Errorf("get parked %s: %w", id, err)
	}
	return p, nil
}

func scanParked(s interface{ Scan(...any) error }, withData bool) (Parked, error) {
	var (
		p                 Parked
		header            []byte
		created, parkedAt int64
	)
	dest := []any{&p.ID, &p.Subject, &header, &p.Size, &created, &parkedAt, &p.Reason, &p.Detail}
	if withData {
		dest[3] = &p.Data
	}
	if err := s.Scan(dest...); err != nil {
		return Parked{}, err
	}
	if withData {
		p.Size = len(p.Data)
	}
	// Headers that could not be decoded are why some rows are parked:
	// they are shown as absent rather than failing the listing.
	p.Header, _ = decodeHeader(header)
	p.CreatedAt, p.ParkedAt = time.UnixMicro(created), time.UnixMicro(parkedAt)
	return p, nil
}

// CountParked returns how many messages are parked.
func CountParked(ctx context.Context, db *sqldb.DB) (int, error) {
	var n int
	if err := db.R.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox_parked").Scan(&n); err != nil {
		return 0, fmt.Errorf("count parked: %w", err)
	}
	return n, nil
}

// Requeue moves a parked message back to the end of the outbox, once the
// cause is gone (a stream created, the server's max payload raised); the
// relay publishes it with its own id, so a consumer still sees it once.
// A running relay picks it up at its next poll, or at once after Notify.
func Requeue(ctx context.Context, db *sqldb.DB, id string, now time.Time) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		// An id already back in the outbox (written again since) is
		// published from there.
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (msg_id, subject, headers, payload, created_at)
			SELECT msg_id, subject, headers, payload, $1 FROM outbox_parked WHERE msg_id = $2
			ON CONFLICT (msg_id) DO NOTHING`, now.UnixMicro(), id); err != nil {
			return fmt.Errorf("requeue %s: %w", id, err)
		}
		return deleteParked(ctx, tx, id)
	})
}

// Drop deletes a parked message for good.
func Drop(ctx context.Context, db *sqldb.DB, id string) error {
	return db.InTx(ctx, func(tx *sql.Tx) error { return deleteParked(ctx, tx, id) })
}

func deleteParked(ctx context.Context, tx *sql.Tx, id string) error {
	res, err := tx.ExecContext(ctx, "DELETE FROM outbox_parked WHERE msg_id = $1", id)
	if err != nil {
		return fmt.Errorf("unpark %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("unpark %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", id, ErrNotParked)
	}
	return nil
}
