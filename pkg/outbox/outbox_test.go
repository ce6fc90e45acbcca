package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func setup(tb testing.TB, url string) (*sqldb.DB, jetstream.JetStream) {
	tb.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(ctx, db, "outbox", outbox.Migrations(), quiet); err != nil {
		tb.Fatal(err)
	}
	_, natsURL := testkit.NATS(tb)
	_, js := testkit.JetStream(tb, natsURL)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Duplicates: time.Minute}); err != nil {
		tb.Fatal(err)
	}
	return db, js
}

func add(tb testing.TB, db *sqldb.DB, msgs ...outbox.Message) {
	tb.Helper()
	err := db.InTx(context.Background(), func(tx *sql.Tx) error {
		return outbox.Add(context.Background(), tx, db.Dialect, time.Now(), msgs...)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func run(tb testing.TB, r *outbox.Relay) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
}

func TestRelay(t *testing.T) {
	backends := map[string]func(testing.TB) string{
		"sqlite":   func(tb testing.TB) string { return "sqlite:" + filepath.Join(tb.TempDir(), "o.db") },
		"postgres": testkit.Postgres,
	}
	for name, url := range backends {
		t.Run(name, func(t *testing.T) {
			db, js := setup(t, url(t))
			// Written before any relay runs, as after a crash between
			// commit and publish; one id written twice.
			var msgs []outbox.Message
			for i := 0; i < 1200; i++ {
				h := nats.Header{}
				h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
				msgs = append(msgs, outbox.Message{ID: fmt.Sprintf("id-%d", i), Subject: fmt.Sprintf("t.%d", i%7), Header: h, Data: []byte(fmt.Sprint(i))})
			}
			add(t, db, msgs...)
			add(t, db, msgs[5])

			// Two relays: on PostgreSQL one leads, on SQLite both run in one
			// process; either way every message is stored once, in order.
			for i := 0; i < 2; i++ {
				r, err := outbox.NewRelay(db, js, quiet, outbox.RelayOptions{Batch: 100, Poll: 50 * time.Millisecond, LockKey: 42})
				if err != nil {
					t.Fatal(err)
				}
				run(t, r)
				if i == 0 {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					if err := r.Flush(ctx); err != nil {
						t.Fatal(err)
					}
					cancel()
				}
			}
			ctx := context.Background()
			cons, err := js.OrderedConsumer(ctx, "T", jetstream.OrderedConsumerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 1200; i++ {
				m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if string(m.Data()) != fmt.Sprint(i) || m.Headers().Get("Nats-Msg-Id") != fmt.Sprintf("id-%d", i) {
					t.Fatalf("message %d: %q id %q", i, m.Data(), m.Headers().Get("Nats-Msg-Id"))
				}
				if m.Headers().Get("traceparent") == "" {
					t.Fatal("trace context lost")
				}
			}
			if m, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond)); err == nil {
				t.Fatalf("extra message %q", m.Data())
			}
			var left int
			if err := db.R.QueryRow("SELECT COUNT(*) FROM outbox").Scan(&left); err != nil || left != 0 {
				t.Fatalf("%d rows left in the outbox (%v)", left, err)
			}
		})
	}
}
