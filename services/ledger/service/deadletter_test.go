package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// TestGarbageOfMaxPayloadOnOrders: bytes of the bus's max payload on an
// order subject are dead-lettered, cut to fit, and the ledger's outbox
// is left empty instead of stuck behind the dead letter.
func TestGarbageOfMaxPayloadOnOrders(t *testing.T) {
	_, url := testkit.NATS(t)
	nc, js := testkit.JetStream(t, url)
	cfg, err := LoadConfig(config.Map(map[string]string{
		"LEDGER_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "ledger.db"), "BOOMERANG_BASE_CURRENCY": "EUR",
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	db, err := sqldb.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, cfg, Deps{DB: db, JetStream: js, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Tracer: tracenoop.NewTracerProvider(), Meter: metricnoop.NewMeterProvider()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		db.Close()
	})

	garbage := bytes.Repeat([]byte{0xff}, int(nc.MaxPayload()))
	if err := nc.Publish(orderbus.Subject("paid", "x"), garbage); err != nil {
		t.Fatal(err)
	}
	dead, err := js.Stream(ctx, orderbus.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, err := dead.GetLastMsgForSubject(ctx, orderbus.DeadLetterRoot+"ledger.orders")
		if err == nil {
			sum := sha256.Sum256(garbage)
			if got := m.Header.Get(orderbus.HeaderTruncated); got != strconv.Itoa(len(garbage)) {
				t.Errorf("%s = %q, want %d", orderbus.HeaderTruncated, got, len(garbage))
			}
			if got := m.Header.Get(orderbus.HeaderOriginalSHA256); got != hex.EncodeToString(sum[:]) {
				t.Errorf("%s = %q", orderbus.HeaderOriginalSHA256, got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter after 20s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	defer fcancel()
	if err := s.Relay().Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if age, err := s.OutboxAge(ctx); err != nil || age != 0 {
		t.Errorf("outbox age %s (%v), want empty", age, err)
	}
	if n, err := outbox.CountParked(ctx, db); err != nil || n != 0 {
		t.Errorf("%d parked (%v)", n, err)
	}
}
