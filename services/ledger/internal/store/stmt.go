package store

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"strings"
	"sync"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
)

// stmts keeps prepared statements by their text. Parsing and planning a
// multi-row statement cost more than running it (SQLite spent a seventh of
// a batch's time in its parser; PostgreSQL plans each one anew), so the
// store prepares each statement once per connection and runs it again.
// The set of texts is bounded: multi-row statements come in power-of-two
// row counts and IN lists are padded to a power of two.
//
// A statement first needed inside a transaction runs unprepared and is
// prepared after the transaction ends (flush): preparing on the pool while
// the transaction holds SQLite's only writing connection would wait for
// it forever.
type stmts struct {
	db *sql.DB
	// queries: prepare queries too, not only writes.
	queries bool
	mu      sync.Mutex
	m       map[string]*sql.Stmt
	want    map[string]bool
	// texts holds the rendered multi-row statements by kind and row
	// count: rendering thousands of placeholders cost more than sending
	// them.
	texts map[textKey]string
}

type textKey struct {
	kind string
	n    int
}

// maxStmts bounds the cache; past it, statements run unprepared.
const maxStmts = 512

func newStmts(db *sql.DB, queries bool) *stmts {
	return &stmts{db: db, queries: queries, m: map[string]*sql.Stmt{}, want: map[string]bool{}, texts: map[textKey]string{}}
}

// get returns the prepared statement for q, or nil when it is not
// prepared yet (inTx: it will be by the next flush) or the cache is full.
func (c *stmts) get(ctx context.Context, q string, inTx bool) (*sql.Stmt, error) {
	c.mu.Lock()
	st, ok := c.m[q]
	full := len(c.m)+len(c.want) >= maxStmts
	if !ok && !full && inTx {
		c.want[q] = true
	}
	c.mu.Unlock()
	if ok || full || inTx {
		return st, nil
	}
	return c.prepare(ctx, q)
}

// prepare prepares q and keeps it. Not under mu: preparing waits for a
// connection, and the transaction holding one may be asking the cache for
// a statement.
func (c *stmts) prepare(ctx context.Context, q string) (*sql.Stmt, error) {
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[q]; ok {
		st.Close()
		return prev, nil
	}
	c.m[q] = st
	return st, nil
}

// flush prepares the statements transactions asked for; it must run
// outside a transaction. A statement that fails to prepare stays
// unprepared: the transaction that ran it reported any error in it.
func (c *stmts) flush(ctx context.Context) {
	c.mu.Lock()
	var qs []string
	for q := range c.want {
		qs = append(qs, q)
		delete(c.want, q)
	}
	c.mu.Unlock()
	for _, q := range qs {
		_, _ = c.prepare(ctx, q)
	}
}

func (c *stmts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
}

// query runs q in tx (or, with tx nil, on the cache's pool) as a prepared
// statement.
func (c *stmts) query(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	var st *sql.Stmt
	var err error
	if c.queries {
		st, err = c.get(ctx, q, tx != nil)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case st == nil && tx == nil:
		return c.db.QueryContext(ctx, q, args...)
	case st == nil:
		return tx.QueryContext(ctx, q, args...)
	case tx == nil:
		return st.QueryContext(ctx, args...)
	}
	return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
}

// queryPrepared runs q outside a transaction as a prepared statement,
// also where queries are otherwise sent as text: for a query of one key,
// whose generic plan is as good as any.
func (c *stmts) queryPrepared(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := c.get(ctx, q, false)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.db.QueryContext(ctx, q, args...)
	}
	return st.QueryContext(ctx, args...)
}

// exec runs q in tx as a prepared statement.
func (c *stmts) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	st, err := c.get(ctx, q, true)
	if err != nil {
		return err
	}
	if st == nil {
		_, err = tx.ExecContext(ctx, q, args...)
		return err
	}
	_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	return err
}

// insertRows writes rows (each a value per column of cols) as
// sqldb.InsertRows does, in statements of power-of-two row counts so that
// each is prepared once.
func (c *stmts) insertRows(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, table, cols, conflict string, rows [][]any) error {
	return c.execRows(ctx, tx, table, "insert "+table+" "+cols+" "+conflict, rows, func(n, width int) string {
		q := "INSERT INTO " + table + " (" + cols + ") VALUES " + d.Tuples(n, width)
		if conflict != "" {
			q += " ON CONFLICT " + conflict
		}
		return q
	})
}

// updateLots sets the remainder and the warned flag of lots (rows of
// entry_id, remaining, warned) on their earning entries, in one statement
// per power-of-two run of rows.
func (c *stmts) updateLots(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, rows [][]any) error {
	return c.execRows(ctx, tx, "lots", "update lots", rows, func(n, _ int) string {
		var b strings.Builder
		b.WriteString("WITH v (entry_id, remaining, warned) AS (VALUES ")
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			// Typed, as PostgreSQL cannot infer a VALUES list's types.
			b.WriteString("(CAST(" + d.Placeholders(3*i+1, 1) + " AS TEXT), CAST(" + d.Placeholders(3*i+2, 1) +
				" AS BIGINT), CAST(" + d.Placeholders(3*i+3, 1) + " AS INTEGER))")
		}
		b.WriteString(") UPDATE entries SET remaining = v.remaining, warned = v.warned FROM v WHERE entries.entry_id = v.entry_id")
		return b.String()
	})
}

// execRows runs the statement text(n, width) renders for n rows over rows,
// n a power of two; kind names the statement for the cache of texts.
func (c *stmts) execRows(ctx context.Context, tx *sql.Tx, what, kind string, rows [][]any, text func(n, width int) string) error {
	if len(rows) == 0 {
		return nil
	}
	width := len(rows[0])
	most := 1 << (bits.Len(uint(max(1, 2000/width))) - 1) // well under every driver's parameter limit
	args := make([]any, 0, most*width)
	for start := 0; start < len(rows); {
		n := min(most, 1<<(bits.Len(uint(len(rows)-start))-1))
		args = args[:0]
		for _, r := range rows[start : start+n] {
			args = append(args, r...)
		}
		c.mu.Lock()
		q, ok := c.texts[textKey{kind, n}]
		c.mu.Unlock()
		if !ok {
			q = text(n, width)
			c.mu.Lock()
			c.texts[textKey{kind, n}] = q
			c.mu.Unlock()
		}
		if err := c.exec(ctx, tx, q, args...); err != nil {
			return fmt.Errorf("write %s: %w", what, err)
		}
		start += n
	}
	return nil
}

// padded returns ids lengthened to a power of two by repeating the last,
// so that IN lists come in few lengths; a repeated value changes no IN.
func padded(ids []any) []any {
	if len(ids) == 0 {
		return ids
	}
	n := 1 << bits.Len(uint(len(ids)-1))
	out := make([]any, n)
	copy(out, ids)
	for i := len(ids); i < n; i++ {
		out[i] = ids[len(ids)-1]
	}
	return out
}
