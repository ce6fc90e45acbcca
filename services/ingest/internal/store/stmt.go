package store

import (
	"context"
	"database/sql"
	"math/bits"
	"sync"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
)

// stmts keeps the batch's statements prepared. Each batch sends a handful
// of multi-row statements and IN lists with thousands of placeholders;
// parsed anew every time, they cost SQLite about a fifth of the batch.
// Row counts are powers of two and IN lists are padded to one, so the
// set of texts is small and each is prepared once and run again.
//
// A statement first needed inside a transaction runs unprepared and is
// prepared after the transaction (flush): preparing on the pool while the
// transaction holds SQLite's only writing connection would wait for it.
type stmts struct {
	db *sql.DB
	// reads: prepare the loads' queries too. PostgreSQL turns a prepared
	// statement's plan generic after five runs, which the ledger measured
	// three times slower for IN-list queries; there only writes are.
	reads bool
	mu    sync.Mutex
	m     map[string]*sql.Stmt
	want  map[string]bool
	// texts are the rendered statements by kind and row count.
	texts map[textKey]string
}

type textKey struct {
	kind string
	n    int
}

// maxStmts bounds the cache; past it, statements run unprepared.
const maxStmts = 256

// maxRows bounds the rows of one multi-row statement (and the ids of an IN
// list) to keep its parameters well under every driver's limit.
func maxRows(width int) int { return 1 << (bits.Len(uint(max(1, 2000/width))) - 1) }

func newStmts(db *sql.DB, reads bool) *stmts {
	return &stmts{db: db, reads: reads, m: map[string]*sql.Stmt{}, want: map[string]bool{}, texts: map[textKey]string{}}
}

// text returns the statement render(n) renders, rendered once.
func (c *stmts) text(kind string, n int, render func(n int) string) string {
	c.mu.Lock()
	q, ok := c.texts[textKey{kind, n}]
	c.mu.Unlock()
	if ok {
		return q
	}
	q = render(n)
	c.mu.Lock()
	c.texts[textKey{kind, n}] = q
	c.mu.Unlock()
	return q
}

// inTx returns q's statement for tx, or nil when q is not prepared yet
// (it will be at the next flush) or the cache is full.
func (c *stmts) inTx(ctx context.Context, tx *sql.Tx, q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[q]
	if !ok {
		if len(c.m)+len(c.want) < maxStmts {
			c.want[q] = true
		}
		return nil
	}
	return tx.StmtContext(ctx, st)
}

func (c *stmts) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	var err error
	if st := c.inTx(ctx, tx, q); st != nil {
		_, err = st.ExecContext(ctx, args...)
	} else {
		_, err = tx.ExecContext(ctx, q, args...)
	}
	return err
}

// query runs a write that returns rows.
func (c *stmts) query(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if st := c.inTx(ctx, tx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, q, args...)
}

// read runs a query of the batch's load.
func (c *stmts) read(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if !c.reads {
		return tx.QueryContext(ctx, q, args...)
	}
	if st := c.inTx(ctx, tx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, q, args...)
}

// flush prepares the statements transactions asked for; it must run
// outside a transaction. A statement that fails to prepare stays
// unprepared: the transaction that ran it reported any error in it.
func (c *stmts) flush(ctx context.Context) {
	c.mu.Lock()
	qs := make([]string, 0, len(c.want))
	for q := range c.want {
		qs = append(qs, q)
		delete(c.want, q)
	}
	c.mu.Unlock()
	for _, q := range qs {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, ok := c.m[q]; ok {
			st.Close()
		} else {
			c.m[q] = st
		}
		c.mu.Unlock()
	}
}

// rows calls fn with rows (flat, width values each) in runs of
// power-of-two row counts, each with the statement kind's text for its
// count.
func (c *stmts) rows(kind string, args []any, width int, render func(n int) string, fn func(q string, args []any) error) error {
	most := maxRows(width)
	for start := 0; start < len(args); {
		left := (len(args) - start) / width
		n := min(most, 1<<(bits.Len(uint(left))-1))
		if err := fn(c.text(kind, n, render), args[start:start+n*width]); err != nil {
			return err
		}
		start += n * width
	}
	return nil
}

// in calls fn with ids in IN lists of power-of-two lengths, the last
// padded by repeating its last id (a repeated value changes no IN), each
// with the statement kind's text for its length.
func (c *stmts) in(kind string, ids []any, render func(n int) string, fn func(q string, ids []any) error) error {
	most := maxRows(1)
	for start := 0; start < len(ids); start += most {
		chunk := ids[start:min(start+most, len(ids))]
		n := 1 << bits.Len(uint(len(chunk)-1))
		if n > len(chunk) {
			padded := make([]any, n)
			copy(padded, chunk)
			for i := len(chunk); i < n; i++ {
				padded[i] = chunk[len(chunk)-1]
			}
			chunk = padded
		}
		if err := fn(c.text(kind, n, render), chunk); err != nil {
			return err
		}
	}
	return nil
}

// tuplesText renders an INSERT of n rows of width columns.
func tuplesText(d sqldb.Dialect, head, tail string, width int) func(n int) string {
	return func(n int) string { return head + d.Tuples(n, width) + tail }
}
