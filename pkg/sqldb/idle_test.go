package sqldb

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// A SQLite connection left unused is closed, and its page cache with it,
// so a service that has stopped working gives that memory back; the next
// statement opens a connection again.
func TestSQLiteIdleConnectionsClose(t *testing.T) {
	ctx := context.Background()
	db, err := openSQLite(ctx, filepath.Join(t.TempDir(), "idle.db"), 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.W.ExecContext(ctx, "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.ExecContext(ctx, "INSERT INTO t (v) VALUES (randomblob(1000))"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.R.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	for _, pool := range []struct {
		name string
		db   *sql.DB
	}{{"writer", db.W}, {"reader", db.R}} {
		// database/sql closes idle connections at most once a second.
		deadline := time.Now().Add(5 * time.Second)
		for pool.db.Stats().OpenConnections > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d connections still open after 5s unused", pool.name, pool.db.Stats().OpenConnections)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if closed := pool.db.Stats().MaxIdleTimeClosed; closed == 0 {
			t.Errorf("%s: no connection closed for being idle", pool.name)
		}
	}
	if _, err := db.W.ExecContext(ctx, "INSERT INTO t (v) VALUES (randomblob(1000))"); err != nil {
		t.Fatalf("write after the writer was closed: %v", err)
	}
	if err := db.R.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows after reopening: %d, %v; want 2", n, err)
	}
}
