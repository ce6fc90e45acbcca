package sqldb

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing/fstest"
	"text/template"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Types are the column types that differ between the dialects. Migration
// files are text/template documents that use them, e.g.
//
//	CREATE TABLE outbox (seq {{.Serial}}, payload {{.Bytes}} NOT NULL)
type Types struct {
	// Serial is a 64-bit primary key column that numbers new rows above
	// every row present.
	Serial string
	// Bytes is a binary column.
	Bytes string
	// WithoutRowID ends a CREATE TABLE whose primary key is not an
	// integer: SQLite then keeps the rows in the key's own B-tree instead
	// of a rowid table plus an index, one write per insert instead of two.
	WithoutRowID string
}

func (d Dialect) types() Types {
	if d == Postgres {
		return Types{Serial: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", Bytes: "BYTEA", WithoutRowID: ""}
	}
	// No AUTOINCREMENT: a new rowid is still above every row in the table,
	// which is all ordering needs, without a write to sqlite_sequence per
	// insert.
	return Types{Serial: "INTEGER PRIMARY KEY", Bytes: "BLOB", WithoutRowID: " WITHOUT ROWID"}
}

// Migrate applies the *.sql goose migrations in fsys, rendered for the
// database's dialect, recording them in the table goose_<name> so that
// several components can keep their own migrations in one database.
func Migrate(ctx context.Context, db *DB, name string, fsys fs.FS, log *slog.Logger) error {
	rendered, err := render(fsys, db.Dialect.types())
	if err != nil {
		return fmt.Errorf("migrations %s: %w", name, err)
	}
	dialect := goose.DialectSQLite3
	opts := []goose.ProviderOption{goose.WithTableName("goose_" + name), goose.WithDisableGlobalRegistry(true)}
	if db.Dialect == Postgres {
		dialect = goose.DialectPostgres
		// Replicas starting together take turns instead of racing.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(len(name))*7919 + 4715))
		if err != nil {
			return fmt.Errorf("migrations %s: %w", name, err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.W, rendered, opts...)
	if err != nil {
		return fmt.Errorf("migrations %s: %w", name, err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", name, err)
	}
	for _, r := range results {
		if log != nil {
			log.InfoContext(ctx, "migration applied", "component", name, "version", r.Source.Version, "duration", r.Duration)
		}
	}
	return nil
}

func render(fsys fs.FS, types Types) (fs.FS, error) {
	out := fstest.MapFS{}
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".sql") {
			return err
		}
		src, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		tmpl, err := template.New(path).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, types); err != nil {
			return err
		}
		out[path[strings.LastIndex(path, "/")+1:]] = &fstest.MapFile{Data: b.Bytes()}
		return nil
	})
	return out, err
}
