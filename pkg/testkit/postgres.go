package testkit

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver
)

var (
	pgOnce  sync.Once
	pgAdmin string
	pgErr   error
)

// Postgres returns the URL of a new, empty database that is dropped after
// the test. The server is BOOMERANG_TEST_POSTGRES_URL or, failing that, one
// throwaway server per test binary started from the installed binaries.
func Postgres(tb testing.TB) string {
	tb.Helper()
	pgOnce.Do(func() {
		if u := os.Getenv("BOOMERANG_TEST_POSTGRES_URL"); u != "" {
			pgAdmin = u
			return
		}
		pgAdmin, pgErr = startPostgres()
	})
	if pgErr != nil {
		unavailable(tb, "PostgreSQL", pgErr)
	}
	admin, err := sql.Open("pgx", pgAdmin)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	name := randomName("boomerang_test_")
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		unavailable(tb, "PostgreSQL", err)
	}
	tb.Cleanup(func() {
		a, err := sql.Open("pgx", pgAdmin)
		if err != nil {
			return
		}
		defer a.Close()
		ctx, cancel := ctxTimeout(30 * time.Second)
		defer cancel()
		_, _ = a.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(pgAdmin)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// pgBinDir finds the directory of initdb and postgres.
func pgBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("initdb not found (install postgresql or set BOOMERANG_TEST_POSTGRES_URL)")
}

// startPostgres initialises a cluster in a temporary directory and starts
// it on a free port. PostgreSQL refuses to run as root, so as root it runs
// as the "postgres" system user the Debian package creates.
func startPostgres() (string, error) {
	bin, err := pgBinDir()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "boomerang-pg-")
	if err != nil {
		return "", err
	}
	var asUser []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("running as root and no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err
		}
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(name string, args ...string) *exec.Cmd {
		full := append(append([]string{}, asUser...), append([]string{filepath.Join(bin, name)}, args...)...)
		return exec.Command(full[0], full[1:]...)
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := listenFree()
	if err != nil {
		return "", err
	}
	cmd := run("postgres", "-D", data, "-p", strconv.Itoa(port), "-h", "127.0.0.1", "-k", dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start postgres: %w", err)
	}
	addShared(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _, _ = cmd.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		os.RemoveAll(dir)
	})
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		db, err := sql.Open("pgx", admin)
		if err == nil {
			err = db.Ping()
			db.Close()
			if err == nil {
				return admin, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", errors.New("throwaway postgres did not start within 30s")
}
