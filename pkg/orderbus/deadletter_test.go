package orderbus_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// TestDeadLetterOfMaximalMessageFits: a dead letter of the largest message
// the server takes reaches DEADLETTER, cut to the max payload the relay's
// connection reports, with the original's size and SHA-256 in headers.
func TestDeadLetterOfMaximalMessageFits(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxPayload int32 // 0: the server's default
	}{
		{"default max payload", 0},
		{"64 KiB max payload", 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ns, err := natsx.RunEmbedded(natsx.EmbeddedOptions{Port: -1, StoreDir: t.TempDir(), MaxPayload: tc.maxPayload})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(ns.Shutdown)
			nc, js := testkit.JetStream(t, ns.ClientURL())
			limit := int(nc.MaxPayload())
			if tc.maxPayload != 0 && limit != int(tc.maxPayload) {
				t.Fatalf("connection max payload %d, want %d", limit, tc.maxPayload)
			}
			if err := streams.Ensure(ctx, js, "ingest", streams.Settings{MaxAge: map[string]time.Duration{orderbus.Stream: 0, orderbus.DeadLetterStream: 0}}); err != nil {
				t.Fatal(err)
			}
			in, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "IN", Subjects: []string{"in.>"}})
			if err != nil {
				t.Fatal(err)
			}

			// The largest message the server accepts: no headers, a
			// payload of exactly its max payload.
			original := make([]byte, limit)
			for i := range original {
				original[i] = byte('a' + rand.IntN(26))
			}
			if err := nc.Publish("in.shop", original); err != nil {
				t.Fatal(err)
			}
			cons, err := in.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				t.Fatal(err)
			}
			m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Data(), original) {
				t.Fatalf("stored %d bytes, published %d", len(m.Data()), len(original))
			}
			dl := orderbus.DeadLetter(m, "ingest", "shop", "too_large", "payload over the intake's limit")

			db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "o.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			if err := sqldb.Migrate(ctx, db, "outbox", outbox.Migrations(), log); err != nil {
				t.Fatal(err)
			}
			if err := db.InTx(ctx, func(tx *sql.Tx) error { return outbox.Add(ctx, tx, db.Dialect, time.Now(), dl) }); err != nil {
				t.Fatal(err)
			}
			r, err := outbox.NewRelay(db, js, log, outbox.RelayOptions{Poll: 50 * time.Millisecond, Fit: orderbus.FitDeadLetter})
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			stopped := make(chan error, 1)
			go func() { stopped <- r.Run(rctx) }()
			t.Cleanup(func() { cancel(); <-stopped })
			fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
			defer fcancel()
			if err := r.Flush(fctx); err != nil {
				t.Fatal(err)
			}
			if parked, err := outbox.ListParked(ctx, db, 10); err != nil || len(parked) != 0 {
				t.Fatalf("parked %+v (%v), want the dead letter published", parked, err)
			}

			dead, err := js.Stream(ctx, orderbus.DeadLetterStream)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dead.GetLastMsgForSubject(ctx, orderbus.DeadLetterRoot+"ingest.shop")
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(original)
			for h, want := range map[string]string{
				orderbus.HeaderReason:          "too_large",
				orderbus.HeaderOriginalSubject: "in.shop",
				orderbus.HeaderOriginalSeq:     "1",
				orderbus.HeaderTruncated:       strconv.Itoa(limit),
				orderbus.HeaderOriginalSHA256:  hex.EncodeToString(sum[:]),
				jetstream.MsgIDHeader:          dl.ID,
			} {
				if v := got.Header.Get(h); v != want {
					t.Errorf("header %s = %q, want %q", h, v, want)
				}
			}
			if len(got.Data) == 0 || !bytes.HasPrefix(original, got.Data) {
				t.Errorf("dead letter carries %d bytes, want a non-empty prefix of the original", len(got.Data))
			}
			var headerBytes int
			for k, vs := range got.Header {
				for _, v := range vs {
					headerBytes += len(k) + len(v) + 4 // "k: v\r\n"
				}
			}
			if size := len("NATS/1.0\r\n\r\n") + headerBytes + len(got.Data); size > limit {
				t.Errorf("dead letter is %d bytes, over the max payload %d", size, limit)
			}
		})
	}
}

// TestFitDeadLetterLeavesOtherSubjects: only dead letters are cut; an
// event on the order bus is parked whole rather than published truncated.
func TestFitDeadLetterLeavesOtherSubjects(t *testing.T) {
	m := &nats.Msg{Subject: orderbus.Subject("paid", "c1"), Data: bytes.Repeat([]byte{'x'}, 2048)}
	if orderbus.FitDeadLetter(m, 1024) {
		t.Fatal("an order event was cut to fit")
	}
	if len(m.Data) != 2048 || len(m.Header) != 0 {
		t.Fatalf("order event changed: %d bytes, headers %v", len(m.Data), m.Header)
	}
}
