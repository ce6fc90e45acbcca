package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var migrations = fstest.MapFS{
	"00001_t.sql": {Data: []byte("-- +goose Up\nCREATE TABLE t (id {{.Serial}}, k TEXT NOT NULL UNIQUE, b {{.Bytes}});\n-- +goose Down\nDROP TABLE t;\n")},
}

func TestDialects(t *testing.T) {
	backends := map[string]func(testing.TB) string{
		"sqlite":   func(tb testing.TB) string { return "sqlite:" + filepath.Join(tb.TempDir(), "x.db") },
		"postgres": testkit.Postgres,
	}
	for name, url := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqldb.Open(ctx, url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for i := 0; i < 2; i++ { // migrating twice is a no-op
				if err := sqldb.Migrate(ctx, db, "test", migrations, nil); err != nil {
					t.Fatal(err)
				}
			}
			d := db.Dialect
			err = db.InTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO t (k, b) VALUES "+d.Tuples(3, 2), "a", []byte{0, 1}, "b", nil, "c", []byte("x"))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			rows, err := db.R.QueryContext(ctx, "SELECT id FROM t WHERE k IN ("+d.Placeholders(1, 3)+") ORDER BY id", "a", "b", "c")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id int64
				rows.Scan(&id)
				ids = append(ids, id)
			}
			rows.Close()
			if len(ids) != 3 || ids[0] >= ids[1] || ids[1] >= ids[2] {
				t.Fatalf("ids %v: want three increasing", ids)
			}
			err = db.InTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO t (k) VALUES ("+d.Placeholders(1, 1)+")", "a")
				return err
			})
			if !sqldb.IsUniqueViolation(err) {
				t.Fatalf("duplicate key: %v, want a unique violation", err)
			}
			calls := 0
			err = db.InTx(ctx, func(*sql.Tx) error {
				calls++
				if calls < 3 {
					return sqldb.ErrConflict
				}
				return nil
			})
			if err != nil || calls != 3 {
				t.Fatalf("conflicts are retried: %d calls, %v", calls, err)
			}
			sentinel := errors.New("no")
			calls = 0
			if err := db.InTx(ctx, func(*sql.Tx) error { calls++; return sentinel }); !errors.Is(err, sentinel) || calls != 1 {
				t.Fatalf("other errors are not retried: %d calls, %v", calls, err)
			}
		})
	}
}

func TestOpenRejectsUnknownURL(t *testing.T) {
	if _, err := sqldb.Open(context.Background(), "mysql://x"); err == nil {
		t.Fatal("mysql URL accepted")
	}
	if got := sqldb.Redact("postgres://u:secret@h/db"); got != "postgres://u:xxxxx@h/db" {
		t.Fatalf("Redact = %s", got)
	}
}

// TestRowChunks: every value once, in order, in slices of whole rows of at
// most MaxParams values.
func TestRowChunks(t *testing.T) {
	const width = 7
	args := make([]any, 0, 2000*width)
	for i := range 2000 * width {
		args = append(args, i)
	}
	var got []any
	err := sqldb.RowChunks(args, width, func(chunk []any) error {
		if len(chunk)%width != 0 || len(chunk) > sqldb.MaxParams {
			t.Errorf("chunk of %d values", len(chunk))
		}
		got = append(got, chunk...)
		return nil
	})
	if err != nil || len(got) != len(args) {
		t.Fatalf("%d of %d values, %v", len(got), len(args), err)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("value %d is %v", i, v)
		}
	}
}

// Each SQLite connection's page cache lives outside the Go heap and fills
// up to its limit as the database grows; the single process opens four
// databases of five connections each, so the limits are what bound its
// resident size: at most 16 MiB for the writer and 2 MiB per reader.
func TestSQLitePageCacheBounded(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		name   string
		pool   *sql.DB
		maxKiB int64
	}{
		{"writer", db.W, 16 << 10},
		{"reader", db.R, 2 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pages int64
			if err := tc.pool.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&pages); err != nil {
				t.Fatal(err)
			}
			var pageSize int64
			if err := tc.pool.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
				t.Fatal(err)
			}
			// A negative cache_size is a limit in KiB, a positive one in pages.
			kib := -pages
			if pages > 0 {
				kib = pages * pageSize / 1024
			}
			if kib <= 0 || kib > tc.maxKiB {
				t.Fatalf("page cache limit %d KiB (cache_size %d), want 1..%d KiB", kib, pages, tc.maxKiB)
			}
		})
	}
}
