// Package sqldb opens the SQL database a service owns — PostgreSQL through
// pgx, or an embedded SQLite file through a pure-Go driver — and keeps the few
// differences between the two dialects in one place.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect is the SQL flavour of a database.
type Dialect int

const (
	Postgres Dialect = iota + 1
	SQLite
)

func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case SQLite:
		return "sqlite"
	}
	return "unknown"
}

// ForUpdate is the row-locking suffix for a SELECT inside a transaction.
// SQLite needs none: its write transactions are serialised (BEGIN IMMEDIATE).
func (d Dialect) ForUpdate() string {
	if d == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// DB is a service's database. Queries use $1-style placeholders, which both
// drivers accept.
type DB struct {
	// W takes writes and transactions. For SQLite it has one connection, so
	// writers queue in Go instead of spinning on SQLITE_BUSY.
	W *sql.DB
	// R serves reads that need no transaction; for PostgreSQL it is W.
	R       *sql.DB
	Dialect Dialect
}

// Open connects to url: postgres://… or postgresql://… for PostgreSQL,
// sqlite:PATH (or a bare file path ending in .db) for SQLite.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		db, err := sql.Open("pgx", withExecMode(rawURL))
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
		db.SetConnMaxIdleTime(5 * time.Minute)
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("connect postgres %s: %w", Redact(rawURL), err)
		}
		return &DB{W: db, R: db, Dialect: Postgres}, nil
	case strings.HasPrefix(rawURL, "sqlite:"), strings.HasSuffix(rawURL, ".db"):
		return openSQLite(ctx, strings.TrimPrefix(rawURL, "sqlite:"), sqliteIdleClose)
	}
	return nil, fmt.Errorf("database url %q: want postgres://… or sqlite:PATH", Redact(rawURL))
}

// withExecMode makes pgx send statements without preparing them first,
// unless the URL chooses a mode. Batches are multi-row statements whose
// text changes with the number of rows, so a prepared-statement cache only
// adds a round trip per batch (measured: 4,000 → 6,100 orders/s).
func withExecMode(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	if q.Get("default_query_exec_mode") == "" {
		q.Set("default_query_exec_mode", "exec")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// sqliteIdleClose is how long a SQLite connection may sit unused before
// it is closed. Its page cache goes with it: a service that has stopped
// writing gives the memory back within a minute instead of holding its
// caches at their fullest for as long as it runs, and the next statement
// opens a connection again in about a third of a millisecond, reading what
// it needs from the kernel's page cache.
const sqliteIdleClose = time.Minute

// openSQLite opens the file at path as a writer pool of one connection and
// a reader pool, each connection closed after idleClose unused.
func openSQLite(ctx context.Context, path string, idleClose time.Duration) (*DB, error) {
	path = strings.TrimPrefix(path, "//")
	if path == "" {
		return nil, errors.New("sqlite: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// WAL lets readers run beside the writer; synchronous(FULL) makes a
	// commit durable when it returns, which is what the services promise.
	// A checkpoint every 10,000 pages (about 40 MB of WAL) instead of
	// SQLite's 1,000 copies a page written by many batches once, not once
	// per few batches: the consumers' commits are a sixth cheaper.
	//
	// Each connection keeps a page cache of its own, outside the Go heap,
	// that fills up to its limit as the database grows and is given back
	// only when the connection closes: the writer's is where it pays (a
	// batch's index pages), the readers' mostly copy what the kernel's
	// page cache already holds. A cached 4 KiB page takes an 8 KiB block
	// of the pure-Go C allocator (the page and its header round up to the
	// next power of two), so the limits cost twice their size resident:
	// one database's connections hold at most 2 x (16 + 4 x 2) MiB while
	// busy, and nothing once idle for sqliteIdleClose (with 64 MiB each,
	// the single process's four databases reached a gigabyte resident).
	pragmas := "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)" +
		"&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(10000)"
	w, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=cache_size(-16384)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(idleClose)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=cache_size(-2048)&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetConnMaxIdleTime(idleClose)
	return &DB{W: w, R: r, Dialect: SQLite}, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	err := db.W.Close()
	if db.R != db.W {
		err = errors.Join(err, db.R.Close())
	}
	return err
}

// InTx runs fn in a transaction and commits it. A serialisation failure,
// deadlock or a unique-key race lost to a concurrent transaction rolls back
// and runs fn again (up to five times), so fn must only touch the database
// and values it rebuilds on each call.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 5 * time.Millisecond):
			}
		}
		err = db.tryTx(ctx, fn)
		if err == nil || !Retryable(err) {
			return err
		}
	}
	return err
}

func (db *DB) tryTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// ErrConflict is returned by transaction code that saw a concurrent
// transaction win a race; InTx runs the transaction again.
var ErrConflict = errors.New("conflict with a concurrent transaction")

// Retryable reports whether err is a transient conflict with another
// transaction: running the transaction again may succeed.
func Retryable(err error) bool {
	if errors.Is(err, ErrConflict) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "40001", "40P01", "23505": // serialization_failure, deadlock_detected, unique_violation
			return true
		}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}

// IsUniqueViolation reports whether err is a unique or primary key conflict.
func IsUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// Redact hides the password of a database URL for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Placeholders returns n parameter placeholders numbered from `from`, for
// IN lists and multi-row inserts: "$from, $from+1, …" for PostgreSQL, and
// "?, ?, …" for SQLite, which looks numbered parameters up by name, one
// linear search each — quadratic in a statement with thousands of them. A
// statement must use one style throughout.
func (d Dialect) Placeholders(from, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		if d == SQLite {
			b.WriteByte('?')
		} else {
			fmt.Fprintf(&b, "$%d", from+i)
		}
	}
	return b.String()
}

// Tuples renders rows groups of width placeholders, "($1, $2), ($3, $4)",
// for multi-row VALUES lists.
func (d Dialect) Tuples(rows, width int) string {
	var b strings.Builder
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + d.Placeholders(r*width+1, width) + ")")
	}
	return b.String()
}
