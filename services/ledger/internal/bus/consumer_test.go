package bus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/busrouter"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// rig is a ledger on PostgreSQL with ORDERS and DEADLETTER on a NATS
// server of its own.
type rig struct {
	db *sqldb.DB
	st *store.Store
	a  *app.App
	p  *ledger.Programme
	js jetstream.JetStream
}

func newRig(tb testing.TB) *rig {
	tb.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, testkit.Postgres(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	st, err := store.Open(ctx, db, bus.Encode, quiet)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := ledger.DefaultProgramme("EUR")
	if err != nil {
		tb.Fatal(err)
	}
	_, url := testkit.NATS(tb)
	_, js := testkit.JetStream(tb, url)
	if err := streams.Ensure(ctx, js, "ledger", streams.Settings{MaxAge: map[string]time.Duration{orderbus.Stream: 0, orderbus.DeadLetterStream: 0}}); err != nil {
		tb.Fatal(err)
	}
	return &rig{db: db, st: st, a: app.New(st, nil), p: p, js: js}
}

// paid publishes a paid order event of 10 EUR.
func (r *rig) paid(tb testing.TB, id, customer, order string, seq int32, at time.Time) {
	tb.Helper()
	ev := &ordersv1.OrderEvent{EventId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, Source: "shop",
		OrderId: order, OrderSequence: seq, CustomerId: customer, OccurredAt: timestamppb.New(at),
		BaseTotal: &commonv1.Money{MinorUnits: 10_00, Currency: "EUR"}}
	data, err := proto.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	msg := &nats.Msg{Subject: orderbus.Subject("paid", customer), Data: data, Header: natsx.ProtoHeader(ctx, id, ev)}
	if _, err := r.js.PublishMsg(ctx, msg); err != nil {
		tb.Fatal(err)
	}
}

// consume runs the consumer on ORDERS until the test ends, with its
// relay, and returns the relay and the reader of their metrics. As in
// the service, each commit wakes the relay and the relay counts the dead
// letters.
func (r *rig) consume(tb testing.TB, opts bus.Options, log *slog.Logger) (*outbox.Relay, *sdkmetric.ManualReader) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	cons, err := r.js.CreateOrUpdateConsumer(ctx, orderbus.Stream, jetstream.ConsumerConfig{Durable: "ledger-test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		tb.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("t")
	router, err := busrouter.New(log, tracenoop.NewTracerProvider(), meter)
	if err != nil {
		tb.Fatal(err)
	}
	dead, err := orderbus.NewDeadLetters(meter)
	if err != nil {
		tb.Fatal(err)
	}
	relay, err := outbox.NewRelay(r.db, r.js, quiet, outbox.RelayOptions{Stored: dead.Stored})
	if err != nil {
		tb.Fatal(err)
	}
	opts.OnCommit, opts.Log = relay.Notify, log
	route := bus.Route(r.a, func() *ledger.Programme { return r.p }, opts)
	go relay.Run(ctx)
	go busrouter.Run(ctx, router, natsx.NewBatchConsumer(cons, natsx.BatchOptions{MaxBatch: 16, LaterDelay: opts.LaterDelay}, log), route)
	return relay, reader
}

// deadLetters reads n dead letters from DEADLETTER and counts them by
// reason.
func (r *rig) deadLetters(tb testing.TB, n int) map[string]int {
	tb.Helper()
	dl, err := r.js.OrderedConsumer(context.Background(), orderbus.DeadLetterStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	reasons := map[string]int{}
	for range n {
		m, err := dl.Next(jetstream.FetchMaxWait(20 * time.Second))
		if err != nil {
			tb.Fatalf("dead letters %v, then none: %v", reasons, err)
		}
		if m.Subject() != "boomerang.deadletter.ledger.orders" {
			tb.Errorf("dead letter on %s", m.Subject())
		}
		reasons[m.Headers().Get(orderbus.HeaderReason)]++
	}
	return reasons
}

// counted waits until the relay has published what was committed and
// returns boomerang.deadletters by "service/reason".
func counted(tb testing.TB, relay *outbox.Relay, reader *sdkmetric.ManualReader) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := relay.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprint(testkit.Counter(tb, reader, "boomerang.deadletters", "service", "reason"))
}

// TestPoisonEventIsDeadLettered: an event PostgreSQL refuses every time
// (a NUL byte in a text column) does not hold back the events around it;
// after LEDGER_MAX_ATTEMPTS it is dead-lettered with its reason, and the
// others are applied. The garbage before it in the batch is dead-lettered
// at each attempt, the batch failing and being applied again message by
// message, and published in between: it is counted once all the same.
func TestPoisonEventIsDeadLettered(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	if _, err := r.js.Publish(ctx, orderbus.Subject("paid", "c"), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	for i, order := range []string{"good-1", "bad\x00", "good-2"} {
		r.paid(t, "e"+order, "c", order, 0, time.Date(2026, 5, 1, 0, 0, i, 0, time.UTC))
	}
	relay, reader := r.consume(t, bus.Options{MaxAttempts: 2, Healthy: r.db.W.PingContext}, quiet)

	if got := fmt.Sprint(r.deadLetters(t, 2)); got != "map[invalid_event:1 processing_failed:1]" {
		t.Errorf("dead letters %v, want invalid_event and processing_failed", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := r.a.Account(ctx, r.p, "c", 0)
		if err == nil && v.Account.Balance == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the good events were not applied: %v %v", v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := r.st.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := counted(t, relay, reader), "map[ledger/invalid_event:1 ledger/processing_failed:1]"; got != want {
		t.Errorf("boomerang.deadletters = %s, want %s", got, want)
	}
}

// TestOrderHistoryGapIsDeadLettered: an event whose predecessor never
// comes is put off until LEDGER_WAIT_FOR_ORDER, then dead-lettered as
// order_history_gap, counted once and logged once at warn level, with its
// order but without its customer.
func TestOrderHistoryGapIsDeadLettered(t *testing.T) {
	r := newRig(t)
	const customer = "cus_gap_7"
	r.paid(t, "e-gap", customer, "o-gap", 2, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	relay, reader := r.consume(t, bus.Options{LaterDelay: 50 * time.Millisecond, WaitForOrder: 200 * time.Millisecond,
		Healthy: r.db.W.PingContext}, log)

	if got := fmt.Sprint(r.deadLetters(t, 1)); got != "map[order_history_gap:1]" {
		t.Errorf("dead letters %v, want order_history_gap", got)
	}
	if got, want := counted(t, relay, reader), "map[ledger/order_history_gap:1]"; got != want {
		t.Errorf("boomerang.deadletters = %s, want %s", got, want)
	}
	// Long enough for the event to have come back, had it been kept.
	time.Sleep(4 * 50 * time.Millisecond)
	var gaps []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, customer) {
			t.Errorf("the customer logged: %s", line)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err == nil && rec["reason"] == "order_history_gap" {
			gaps = append(gaps, rec)
		}
	}
	if len(gaps) != 1 {
		t.Fatalf("%d gap lines logged, want 1:\n%s", len(gaps), logs.String())
	}
	for k, want := range map[string]any{"level": "WARN", "source": "shop", "order_id": "o-gap", "kind": "paid", "order_sequence": 2.0} {
		if gaps[0][k] != want {
			t.Errorf("gap line %s = %v, want %v", k, gaps[0][k], want)
		}
	}
}

// syncBuffer is a log destination read while the consumer writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
