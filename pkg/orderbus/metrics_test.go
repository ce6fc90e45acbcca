package orderbus_test

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
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// TestDeadLettersCountedOnceStored: the relay's Stored hook counts each
// dead letter once, under the service its subject names and its reason,
// although the dead letter is written again after the relay published it;
// events are not counted.
func TestDeadLettersCountedOnceStored(t *testing.T) {
	ctx := context.Background()
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	if err := streams.Ensure(ctx, js, "ingest", streams.Settings{MaxAge: map[string]time.Duration{orderbus.Stream: 0, orderbus.DeadLetterStream: 0}}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(ctx, db, "outbox", outbox.Migrations(), log); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	dead, err := orderbus.NewDeadLetters(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("t"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := outbox.NewRelay(db, js, log, outbox.RelayOptions{Poll: time.Hour, Stored: dead.Stored})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- r.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-stopped })

	deadLetter := func(id, service, reason string) outbox.Message {
		h := nats.Header{}
		h.Set(orderbus.HeaderReason, reason)
		return outbox.Message{ID: id, Subject: orderbus.DeadLetterRoot + service + ".shop", Header: h, Data: []byte("?")}
	}
	write := func(msgs ...outbox.Message) {
		t.Helper()
		if err := db.InTx(ctx, func(tx *sql.Tx) error { return outbox.Add(ctx, tx, db.Dialect, time.Now(), msgs...) }); err != nil {
			t.Fatal(err)
		}
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		defer fcancel()
		if err := r.Flush(fctx); err != nil {
			t.Fatal(err)
		}
	}
	tooLarge := deadLetter("dlq-ingest-1", "ingest", "too_large")
	write(tooLarge, deadLetter("dlq-ledger-7", "ledger", "invalid_event"),
		outbox.Message{ID: "e1", Subject: orderbus.Subject("paid", "c1"), Data: []byte("e")})
	write(tooLarge)

	got := testkit.Counter(t, reader, "boomerang.deadletters", "service", "reason")
	if want := "map[ingest/too_large:1 ledger/invalid_event:1]"; fmt.Sprint(got) != want {
		t.Errorf("boomerang.deadletters = %v, want %s", got, want)
	}
}
