// Package store keeps the feedback service's facts in SQL (PostgreSQL or
// SQLite): survey responses with their rollup by quarter hour, reviews and
// the seller's responses, ticket events and tickets, what segmentation said
// of each customer, recovery cases, and the outbox of feedback events. It
// holds no rules: a batch of intake loads what it touches (locked on
// PostgreSQL), lets the caller's function decide (the domain's rules), and
// writes what that changed in one transaction.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Encoder turns a domain event into its outbox message; ctx carries the
// trace the event continues.
type Encoder func(ctx context.Context, ev feedback.Event) (outbox.Message, error)

// Store is the feedback service's database.
type Store struct {
	db     *sqldb.DB
	encode Encoder
	now    func() time.Time
	// zones are the reporting time zones this replica is configured with;
	// the rollups are kept for those in score_zones (see dayZones).
	zones []*time.Location
	// locs caches time.LoadLocation by name.
	locs sync.Map
}

// Options configure the store.
type Options struct {
	Encode Encoder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ScoreZones are IANA time zones whose local days get a rollup of
	// their own (default UTC); scores in other zones are summed from
	// quarter hours.
	ScoreZones []string
	Log        *slog.Logger
}

// Open migrates db and returns the store.
func Open(ctx context.Context, db *sqldb.DB, o Options) (*Store, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := sqldb.Migrate(ctx, db, "feedback", sub, o.Log); err != nil {
		return nil, err
	}
	if err := sqldb.Migrate(ctx, db, "outbox", outbox.Migrations(), o.Log); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Encode == nil {
		return nil, errors.New("store: an encoder is required")
	}
	if len(o.ScoreZones) == 0 {
		o.ScoreZones = []string{"UTC"}
	}
	st := &Store{db: db, encode: o.Encode, now: o.Now}
	seen := map[string]bool{}
	for _, name := range o.ScoreZones {
		loc, err := time.LoadLocation(name)
		if err != nil {
			return nil, fmt.Errorf("score time zone %q: %w", name, err)
		}
		if !seen[loc.String()] {
			seen[loc.String()] = true
			st.zones = append(st.zones, loc)
		}
	}
	if err := st.syncZones(ctx, seen, o.Log); err != nil {
		return nil, err
	}
	return st, nil
}

// syncZones rebuilds the rollups when the reporting zones differ from
// those the local-day rollup was kept for.
func (s *Store) syncZones(ctx context.Context, want map[string]bool, log *slog.Logger) error {
	rows, err := s.db.R.QueryContext(ctx, "SELECT zone FROM score_zones")
	if err != nil {
		return fmt.Errorf("score zones: %w", err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var z string
		if err := rows.Scan(&z); err != nil {
			rows.Close()
			return err
		}
		have[z] = true
	}
	if err := sqldb.CloseRows(rows); err != nil {
		return err
	}
	if maps.Equal(have, want) {
		return nil
	}
	start := time.Now()
	n, err := s.RebuildRollups(ctx)
	if err == nil && log != nil {
		log.InfoContext(ctx, "score rollups rebuilt for new reporting time zones", "responses", n, "duration", time.Since(start))
	}
	return err
}

// zoneLockClass and zoneLockKey name the advisory lock that orders
// rollup rebuilds (exclusive) against the transactions that write the
// rollups (shared): a write sees the zone set of the last rebuild before
// it, and a rebuild sees every write before it.
const (
	zoneLockClass = 0x667a6f6e // "fzon"
	zoneLockKey   = 0
)

// dayZones returns the reporting zones with a local-day rollup: those of
// score_zones, which the last rebuild wrote for its replica's
// configuration. Every replica writes and reads the rollup for that set,
// whatever its own configuration says, so replicas configured apart for a
// while (during a rolling restart) keep it whole. With lock, tx holds the
// shared side of the rebuild lock (PostgreSQL; SQLite has one writer).
func (s *Store) dayZones(ctx context.Context, q queryer, lock bool) ([]*time.Location, error) {
	if lock && s.db.Dialect.ForUpdate() != "" {
		rows, err := q.QueryContext(ctx, `SELECT pg_advisory_xact_lock_shared($1::int4, $2::int4)`, zoneLockClass, zoneLockKey)
		if err != nil {
			return nil, fmt.Errorf("zone lock: %w", err)
		}
		if err := sqldb.CloseRows(rows); err != nil {
			return nil, fmt.Errorf("zone lock: %w", err)
		}
	}
	rows, err := q.QueryContext(ctx, "SELECT zone FROM score_zones ORDER BY zone")
	if err != nil {
		return nil, fmt.Errorf("score zones: %w", err)
	}
	var out []*time.Location
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, err
		}
		loc, err := s.location(name)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, loc)
	}
	return out, sqldb.CloseRows(rows)
}

func (s *Store) location(name string) (*time.Location, error) {
	if l, ok := s.locs.Load(name); ok {
		return l.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("score zone %q: %w", name, err)
	}
	s.locs.Store(name, loc)
	return loc, nil
}

// RebuildRollups recomputes both rollups from the stored responses, for
// the reporting zones this replica is configured with, and returns how
// many responses it counted.
func (s *Store) RebuildRollups(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		n = 0
		if s.db.Dialect.ForUpdate() != "" {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1::int4, $2::int4)`, zoneLockClass, zoneLockKey); err != nil {
				return fmt.Errorf("zone lock: %w", err)
			}
		}
		for _, q := range []string{"DELETE FROM score_buckets", "DELETE FROM score_days", "DELETE FROM score_zones"} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("rebuild rollups: %w", err)
			}
		}
		roll := feedback.NewRollup(s.zones)
		rows, err := tx.QueryContext(ctx, "SELECT responded_at, segment, kind, score FROM responses")
		if err != nil {
			return fmt.Errorf("rebuild rollups: %w", err)
		}
		for rows.Next() {
			var at int64
			var seg, kind, score int
			if err := rows.Scan(&at, &seg, &kind, &score); err != nil {
				rows.Close()
				return err
			}
			roll.Add(at, seg, feedback.Kind(kind), score, 1)
			n++
		}
		if err := sqldb.CloseRows(rows); err != nil {
			return err
		}
		if err := s.saveRollup(ctx, tx, roll); err != nil {
			return err
		}
		zones := make([][]any, 0, len(s.zones))
		for _, z := range s.zones {
			zones = append(zones, []any{z.String(), ms(s.now())})
		}
		return sqldb.InsertRows(ctx, tx, s.db.Dialect, "score_zones", "zone, built_at", "", zones)
	})
	return n, err
}

// ScoreZone returns the reporting zone named name (as time.LoadLocation
// names it) when it has a local-day rollup.
func (s *Store) ScoreZone(ctx context.Context, name string) (*time.Location, bool, error) {
	zones, err := s.dayZones(ctx, s.db.R, false)
	if err != nil {
		return nil, false, err
	}
	for _, z := range zones {
		if z.String() == name {
			return z, true, nil
		}
	}
	return nil, false, nil
}

// DB returns the underlying database.
func (s *Store) DB() *sqldb.DB { return s.db }

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// existing adds to found which of keys are already in table's key column.
func existing(ctx context.Context, q queryer, d sqldb.Dialect, table, col string, keys []any, found map[string]bool) error {
	return sqldb.InChunks(keys, func(chunk []any) error {
		rows, err := q.QueryContext(ctx, "SELECT "+col+" FROM "+table+" WHERE "+col+" IN ("+d.Placeholders(1, len(chunk))+")", chunk...)
		if err != nil {
			return fmt.Errorf("read %s: %w", table, err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return err
			}
			found[k] = true
		}
		return sqldb.CloseRows(rows)
	})
}

// anys is ids as query arguments.
func anys(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}
