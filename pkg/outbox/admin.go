package outbox

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
)

// What an operator does with parked messages, many at a time: list them a
// page at a time, count them, requeue or drop them. Payloads stay in the
// database; operators see their size and digest.

// ParkedEntry is a parked message as an operator sees it: Data is left
// out, because a parked message may hold customer data, and SHA256 tells
// payloads apart instead.
type ParkedEntry struct {
	Parked
	// SHA256 is the payload's digest.
	SHA256 [sha256.Size]byte
}

// ParkedCursor is the last message of a page: the next page starts after
// it, in the listing's order (parked_at, then id).
type ParkedCursor struct {
	ParkedAt time.Time
	ID       string
}

// ParkedQuery selects a page of parked messages.
type ParkedQuery struct {
	// Reason keeps only the messages parked for it; "" keeps all.
	Reason string
	// After is the previous page's last message; nil starts at the oldest.
	After *ParkedCursor
	// Limit is the most messages returned (default 100).
	Limit int
}

// ListParkedPage returns a page of parked messages, oldest parked first,
// with their payloads' digests. Payloads are read one row at a time to be
// hashed, so a page of large messages costs I/O, not memory.
func ListParkedPage(ctx context.Context, db *sqldb.DB, q ParkedQuery) ([]ParkedEntry, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	var (
		where []string
		args  []any
	)
	if q.Reason != "" {
		args = append(args, q.Reason)
		where = append(where, fmt.Sprintf("reason = $%d", len(args)))
	}
	if q.After != nil {
		args = append(args, q.After.ParkedAt.UnixMicro(), q.After.ID)
		n := len(args)
		where = append(where, fmt.Sprintf("(parked_at > $%d OR (parked_at = $%d AND msg_id > $%d))", n-1, n-1, n))
	}
	query := "SELECT msg_id, subject, headers, payload, created_at, parked_at, reason, detail FROM outbox_parked"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, q.Limit)
	query += fmt.Sprintf(" ORDER BY parked_at, msg_id LIMIT $%d", len(args))
	rows, err := db.R.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list parked: %w", err)
	}
	out, err := scanEntries(rows)
	if err != nil {
		return nil, fmt.Errorf("list parked: %w", err)
	}
	return out, nil
}

// scanEntries reads rows of parked messages with their payloads into
// entries that keep only the payloads' digests, and closes rows.
func scanEntries(rows *sql.Rows) ([]ParkedEntry, error) {
	var out []ParkedEntry
	for rows.Next() {
		p, err := scanParked(rows, true)
		if err != nil {
			_ = rows.Close()
			return nil, err
		}
		e := ParkedEntry{Parked: p, SHA256: sha256.Sum256(p.Data)}
		e.Data = nil
		out = append(out, e)
	}
	return out, sqldb.CloseRows(rows)
}

// ReasonCount is how many messages are parked for one reason.
type ReasonCount struct {
	Reason string
	Count  int
	// Oldest is when the first of them was parked.
	Oldest time.Time
}

// CountParkedByReason counts the parked messages by reason, in the order
// of the reasons' names; reasons with none are left out.
func CountParkedByReason(ctx context.Context, db *sqldb.DB) ([]ReasonCount, error) {
	rows, err := db.R.QueryContext(ctx,
		"SELECT reason, COUNT(*), MIN(parked_at) FROM outbox_parked GROUP BY reason ORDER BY reason")
	if err != nil {
		return nil, fmt.Errorf("count parked: %w", err)
	}
	var out []ReasonCount
	for rows.Next() {
		var (
			rc     ReasonCount
			oldest int64
		)
		if err := rows.Scan(&rc.Reason, &rc.Count, &oldest); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("count parked: %w", err)
		}
		rc.Oldest = time.UnixMicro(oldest)
		out = append(out, rc)
	}
	if err := sqldb.CloseRows(rows); err != nil {
		return nil, fmt.Errorf("count parked: %w", err)
	}
	return out, nil
}

// RequeueIDs moves the parked messages with these ids back to the end of
// the outbox, as Requeue does one, in the order they were written, and
// returns the ids it moved; ids not parked are left out. All move in one
// transaction.
func RequeueIDs(ctx context.Context, db *sqldb.DB, ids []string, now time.Time) ([]string, error) {
	var moved []string
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		found, err := lockParked(ctx, tx, db.Dialect, ids)
		if err != nil {
			return err
		}
		moved = found
		// found is in the order written; chunk after chunk keeps it.
		return sqldb.InChunks(anys(found), func(chunk []any) error {
			in := db.Dialect.Placeholders(2, len(chunk))
			// An id already back in the outbox (written again since) is
			// published from there.
			if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (msg_id, subject, headers, payload, created_at)
				SELECT msg_id, subject, headers, payload, $1 FROM outbox_parked WHERE msg_id IN (`+in+`)
				ORDER BY created_at, msg_id
				ON CONFLICT (msg_id) DO NOTHING`, append([]any{now.UnixMicro()}, chunk...)...); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "DELETE FROM outbox_parked WHERE msg_id IN ("+db.Dialect.Placeholders(1, len(chunk))+")", chunk...)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("requeue parked: %w", err)
	}
	return moved, nil
}

// RequeueReason requeues, as RequeueIDs does, every message parked for
// reason when it is called, and returns how many it moved. Messages parked
// again while it runs stay parked: a requeue never chases its own tail.
func RequeueReason(ctx context.Context, db *sqldb.DB, reason string, now time.Time) (int, error) {
	ids, err := parkedIDs(ctx, db, reason)
	if err != nil {
		return 0, err
	}
	const perTx = 1000
	n := 0
	for start := 0; start < len(ids); start += perTx {
		moved, err := RequeueIDs(ctx, db, ids[start:min(start+perTx, len(ids))], now)
		n += len(moved)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// parkedIDs returns the ids parked for reason, in the order written.
func parkedIDs(ctx context.Context, db *sqldb.DB, reason string) ([]string, error) {
	rows, err := db.R.QueryContext(ctx,
		"SELECT msg_id FROM outbox_parked WHERE reason = $1 ORDER BY created_at, msg_id", reason)
	if err != nil {
		return nil, fmt.Errorf("parked %s: %w", reason, err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("parked %s: %w", reason, err)
		}
		ids = append(ids, id)
	}
	if err := sqldb.CloseRows(rows); err != nil {
		return nil, fmt.Errorf("parked %s: %w", reason, err)
	}
	return ids, nil
}

// DropIDs deletes the parked messages with these ids for good and returns
// what they were (without payloads, with their digests), oldest parked
// first, for the operator's record; ids not parked are left out.
func DropIDs(ctx context.Context, db *sqldb.DB, ids []string) ([]ParkedEntry, error) {
	var dropped []ParkedEntry
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		dropped = nil
		return sqldb.InChunks(anys(ids), func(chunk []any) error {
			in := db.Dialect.Placeholders(1, len(chunk))
			// Locked as read, so what is recorded is what is deleted.
			rows, err := tx.QueryContext(ctx, `SELECT msg_id, subject, headers, payload, created_at, parked_at, reason, detail
				FROM outbox_parked WHERE msg_id IN (`+in+`) ORDER BY parked_at, msg_id`+db.Dialect.ForUpdate(), chunk...)
			if err != nil {
				return err
			}
			entries, err := scanEntries(rows)
			if err != nil {
				return err
			}
			dropped = append(dropped, entries...)
			_, err = tx.ExecContext(ctx, "DELETE FROM outbox_parked WHERE msg_id IN ("+in+")", chunk...)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("drop parked: %w", err)
	}
	slices.SortFunc(dropped, func(a, b ParkedEntry) int {
		return cmp.Or(a.ParkedAt.Compare(b.ParkedAt), cmp.Compare(a.ID, b.ID))
	})
	return dropped, nil
}

// lockParked returns those of ids that are parked, in the order they were
// written, locking their rows (PostgreSQL; SQLite's write transactions are
// serialised) so that a concurrent drop or requeue waits for tx.
func lockParked(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, ids []string) ([]string, error) {
	type found struct {
		id      string
		created int64
	}
	var all []found
	err := sqldb.InChunks(anys(ids), func(chunk []any) error {
		rows, err := tx.QueryContext(ctx, "SELECT msg_id, created_at FROM outbox_parked WHERE msg_id IN ("+
			d.Placeholders(1, len(chunk))+")"+d.ForUpdate(), chunk...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var f found
			if err := rows.Scan(&f.id, &f.created); err != nil {
				_ = rows.Close()
				return err
			}
			all = append(all, f)
		}
		return sqldb.CloseRows(rows)
	})
	if err != nil {
		return nil, fmt.Errorf("lock parked: %w", err)
	}
	slices.SortFunc(all, func(a, b found) int { return cmp.Or(cmp.Compare(a.created, b.created), cmp.Compare(a.id, b.id)) })
	out := make([]string, len(all))
	for i, f := range all {
		out[i] = f.id
	}
	return out, nil
}

func anys(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}
