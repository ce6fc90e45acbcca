package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// bus starts a NATS server with the given max payload (0: the server's
// default) and a stream T on t.> that drops duplicates for dup.
func bus(tb testing.TB, maxPayload int32, dup time.Duration) (*server.Server, *nats.Conn, jetstream.JetStream) {
	tb.Helper()
	ns, err := natsx.RunEmbedded(natsx.EmbeddedOptions{Port: -1, StoreDir: tb.TempDir(), MaxPayload: maxPayload})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ns.Shutdown)
	nc, js := testkit.JetStream(tb, ns.ClientURL())
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Duplicates: dup}); err != nil {
		tb.Fatal(err)
	}
	return ns, nc, js
}

func openDB(tb testing.TB, url string) *sqldb.DB {
	tb.Helper()
	db, err := sqldb.Open(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(context.Background(), db, "outbox", outbox.Migrations(), quiet); err != nil {
		tb.Fatal(err)
	}
	return db
}

func flush(tb testing.TB, r *outbox.Relay, d time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		tb.Fatalf("flush: %v", err)
	}
}

// stored reads every message of stream T: how many times each Nats-Msg-Id
// is stored, and the ids in stream order.
func stored(tb testing.TB, js jetstream.JetStream) (map[string]int, []string) {
	tb.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, "T")
	if err != nil {
		tb.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	counts := map[string]int{}
	var order []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			tb.Fatalf("stream seq %d: %v", seq, err)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		counts[id]++
		order = append(order, id)
	}
	return counts, order
}

func outboxLen(tb testing.TB, db *sqldb.DB) int {
	tb.Helper()
	var n int
	if err := db.R.QueryRow("SELECT COUNT(*) FROM outbox").Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestRelayPassesOversizeMessage: a message that can never fit the
// server's max payload does not hold back the messages behind it.
func TestRelayPassesOversizeMessage(t *testing.T) {
	const maxPayload = 64 << 10
	for _, dbk := range testkit.Databases("o.db") {
		t.Run(dbk.Name, func(t *testing.T) {
			_, nc, js := bus(t, maxPayload, time.Minute)
			if got := nc.MaxPayload(); got != maxPayload {
				t.Fatalf("server max payload %d, want %d", got, maxPayload)
			}
			db := openDB(t, dbk.URL(t))
			add(t, db,
				outbox.Message{ID: "a", Subject: "t.a", Data: []byte("a")},
				// Exactly the max payload, before the Nats-Msg-Id header
				// the relay adds: over the limit once published.
				outbox.Message{ID: "big", Subject: "t.big", Data: bytes.Repeat([]byte{'x'}, maxPayload)},
			)
			// Headers that do not decode, as a hand-edited row would have.
			if _, err := db.W.Exec("INSERT INTO outbox (msg_id, subject, headers, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
				"garbled", "t.garbled", []byte("{not json"), []byte("g"), time.Now().UnixMicro()); err != nil {
				t.Fatal(err)
			}
			add(t, db, outbox.Message{ID: "b", Subject: "t.b", Data: []byte("b")})
			reader := sdkmetric.NewManualReader()
			meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
			r, err := outbox.NewRelay(db, js, quiet, outbox.RelayOptions{Poll: 50 * time.Millisecond, Meter: meter, Service: "svc"})
			if err != nil {
				t.Fatal(err)
			}
			run(t, r)
			flush(t, r, 10*time.Second)
			counts, order := stored(t, js)
			if want := []string{"a", "b"}; fmt.Sprint(order) != fmt.Sprint(want) {
				t.Errorf("stream T holds %v, want %v", order, want)
			}
			if counts["big"] != 0 {
				t.Errorf("oversize message stored %d times", counts["big"])
			}
			if n := outboxLen(t, db); n != 0 {
				t.Errorf("%d rows left in the outbox", n)
			}

			parked, err := outbox.ListParked(context.Background(), db, 10)
			if err != nil {
				t.Fatal(err)
			}
			reasons := map[string]string{}
			for _, p := range parked {
				reasons[p.ID] = p.Reason
				if p.ID == "big" && (p.Subject != "t.big" || p.Size != maxPayload) {
					t.Errorf("parked big: %+v, want t.big with %d bytes", p, maxPayload)
				}
			}
			if want := map[string]string{"big": outbox.ReasonTooLarge, "garbled": outbox.ReasonBadHeaders}; fmt.Sprint(reasons) != fmt.Sprint(want) {
				t.Fatalf("parked %v, want %v", reasons, want)
			}
			got, err := outbox.GetParked(context.Background(), db, "big")
			if err != nil || !bytes.Equal(got.Data, bytes.Repeat([]byte{'x'}, maxPayload)) {
				t.Errorf("parked payload kept: %d bytes, %v", len(got.Data), err)
			}
			want := map[string]int64{"boomerang.outbox.parked": 1, "boomerang.outbox.parked.rows": 2, "boomerang.outbox.published": 2}
			for name, v := range want {
				if got := metricValue(t, reader, name, "reason", outbox.ReasonTooLarge); got != v {
					t.Errorf("%s = %d, want %d", name, got, v)
				}
			}
			if got := metricValue(t, reader, "boomerang.outbox.parked", "service", "other"); got != 0 {
				t.Errorf("parked counted for service other: %d", got)
			}
		})
	}
}

// TestRelayKeepsAcksPastAFailure: when one message of a batch fails, the
// ones JetStream acknowledged around it are done, and none is stored twice
// even after the stream's duplicate window has passed.
func TestRelayKeepsAcksPastAFailure(t *testing.T) {
	const dup = 500 * time.Millisecond
	for _, dbk := range testkit.Databases("o.db") {
		t.Run(dbk.Name, func(t *testing.T) {
			_, _, js := bus(t, 0, dup)
			db := openDB(t, dbk.URL(t))
			var msgs []outbox.Message
			for i := 0; i < 10; i++ {
				if i == 4 {
					// No stream takes this subject.
					msgs = append(msgs, outbox.Message{ID: "lost", Subject: "nostream.x", Data: []byte("?")})
				}
				msgs = append(msgs, outbox.Message{ID: fmt.Sprintf("id-%d", i), Subject: fmt.Sprintf("t.%d", i%3), Data: []byte(fmt.Sprint(i))})
			}
			add(t, db, msgs...)
			r, err := outbox.NewRelay(db, js, quiet, outbox.RelayOptions{Poll: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			run(t, r)
			// Well beyond the duplicate window: a message resent now would
			// be stored again.
			time.Sleep(8 * dup)
			counts, order := stored(t, js)
			for i := 0; i < 10; i++ {
				if id := fmt.Sprintf("id-%d", i); counts[id] != 1 {
					t.Errorf("%s stored %d times, want once (stream: %v)", id, counts[id], order)
				}
			}
			if len(order) != 10 {
				t.Errorf("stream T holds %d messages, want 10: %v", len(order), order)
			}
			flush(t, r, 10*time.Second)
			if n := outboxLen(t, db); n != 0 {
				t.Errorf("%d rows left in the outbox", n)
			}
			ctx := context.Background()
			parked, err := outbox.ListParked(ctx, db, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(parked) != 1 || parked[0].ID != "lost" || parked[0].Reason != outbox.ReasonNoStream {
				t.Fatalf("parked = %+v, want lost as %s", parked, outbox.ReasonNoStream)
			}

			// Once a stream takes the subject, the operator requeues it.
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "N", Subjects: []string{"nostream.>"}}); err != nil {
				t.Fatal(err)
			}
			if err := outbox.Requeue(ctx, db, "lost", time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := outbox.Requeue(ctx, db, "lost", time.Now()); !errors.Is(err, outbox.ErrNotParked) {
				t.Errorf("second requeue: %v, want ErrNotParked", err)
			}
			flush(t, r, 10*time.Second)
			s, err := js.Stream(ctx, "N")
			if err != nil {
				t.Fatal(err)
			}
			m, err := s.GetLastMsgForSubject(ctx, "nostream.x")
			if err != nil || m.Header.Get(jetstream.MsgIDHeader) != "lost" {
				t.Fatalf("requeued message on N: %v", err)
			}
			if n, err := outbox.CountParked(ctx, db); err != nil || n != 0 {
				t.Errorf("%d parked after requeue (%v)", n, err)
			}
		})
	}
}

// TestRelayTellsStoredOnce: Stored is told of each message JetStream
// stored, once, although its row is written again after it was published
// and deleted, or was published by a relay that stopped before recording
// the ack; a parked message is not stored.
func TestRelayTellsStoredOnce(t *testing.T) {
	for _, dbk := range testkit.Databases("o.db") {
		t.Run(dbk.Name, func(t *testing.T) {
			ctx := context.Background()
			_, _, js := bus(t, 0, time.Minute)
			db := openDB(t, dbk.URL(t))
			var mu sync.Mutex
			told := map[string]int{}
			r, err := outbox.NewRelay(db, js, quiet, outbox.RelayOptions{Poll: time.Hour,
				Stored: func(_ context.Context, m *nats.Msg) {
					mu.Lock()
					defer mu.Unlock()
					told[m.Header.Get(jetstream.MsgIDHeader)]++
				}})
			if err != nil {
				t.Fatal(err)
			}
			run(t, r)
			a := outbox.Message{ID: "a", Subject: "t.a", Data: []byte("a")}
			add(t, db, a, outbox.Message{ID: "b", Subject: "t.b", Data: []byte("b")},
				outbox.Message{ID: "lost", Subject: "nostream.x", Data: []byte("?")})
			flush(t, r, 10*time.Second)
			// a written again after the relay published and deleted it; c
			// published by a relay that stopped before deleting its row.
			add(t, db, a)
			if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "t.c", Data: []byte("c"),
				Header: nats.Header{jetstream.MsgIDHeader: []string{"c"}}}); err != nil {
				t.Fatal(err)
			}
			add(t, db, outbox.Message{ID: "c", Subject: "t.c", Data: []byte("c")})
			flush(t, r, 10*time.Second)

			if counts, _ := stored(t, js); fmt.Sprint(counts) != "map[a:1 b:1 c:1]" {
				t.Errorf("stream T holds %v, want a, b and c once each", counts)
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(told) != "map[a:1 b:1]" {
				t.Errorf("Stored told %v, want a and b once each", told)
			}
		})
	}
}

// TestRelayRetriesThroughServerRestart: while the server is down nothing
// is parked, and once it is back every message is stored once, in order.
func TestRelayRetriesThroughServerRestart(t *testing.T) {
	for _, dbk := range testkit.Databases("o.db") {
		t.Run(dbk.Name, func(t *testing.T) {
			store := t.TempDir()
			port := testkit.FreePort(t)
			ns, err := natsx.RunEmbedded(natsx.EmbeddedOptions{Port: port, StoreDir: store})
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Duplicates: time.Minute}); err != nil {
				t.Fatal(err)
			}
			db := openDB(t, dbk.URL(t))
			r, err := outbox.NewRelay(db, js, quiet, outbox.RelayOptions{Batch: 20, Poll: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			run(t, r)
			msg := func(i int) outbox.Message {
				return outbox.Message{ID: fmt.Sprintf("id-%03d", i), Subject: fmt.Sprintf("t.%d", i%5), Data: []byte(fmt.Sprint(i))}
			}
			for i := 0; i < 50; i++ {
				add(t, db, msg(i))
			}
			flush(t, r, 10*time.Second)

			ns.Shutdown()
			ns.WaitForShutdown()
			for i := 50; i < 100; i++ {
				add(t, db, msg(i))
			}
			r.Notify()
			time.Sleep(time.Second)
			if n, err := outbox.CountParked(ctx, db); err != nil || n != 0 {
				t.Fatalf("%d parked while the server was down (%v)", n, err)
			}
			if n := outboxLen(t, db); n != 50 {
				t.Fatalf("%d rows in the outbox while the server was down, want 50", n)
			}
			ns, err = natsx.RunEmbedded(natsx.EmbeddedOptions{Port: port, StoreDir: store})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(ns.Shutdown)
			flush(t, r, 40*time.Second)

			counts, order := stored(t, js)
			var want []string
			for i := 0; i < 100; i++ {
				want = append(want, msg(i).ID)
			}
			if fmt.Sprint(order) != fmt.Sprint(want) {
				t.Errorf("stream T holds %v, want %v", order, want)
			}
			for i := 0; i < 100; i++ {
				if id := msg(i).ID; counts[id] != 1 {
					t.Errorf("%s stored %d times", id, counts[id])
				}
			}
			if n, err := outbox.CountParked(ctx, db); err != nil || n != 0 {
				t.Errorf("%d parked (%v)", n, err)
			}
		})
	}
}

// metricValue sums the int64 points of the named metric, taking only the
// points whose attribute key, when they have it, equals value.
func metricValue(tb testing.TB, reader *sdkmetric.ManualReader, name, key, value string) int64 {
	tb.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		tb.Fatal(err)
	}
	var sum int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			default:
				tb.Fatalf("%s: unexpected data %T", name, m.Data)
			}
			for _, p := range points {
				if v, ok := p.Attributes.Value(attribute.Key(key)); ok && v.AsString() != value {
					continue
				}
				sum += p.Value
			}
		}
	}
	return sum
}
