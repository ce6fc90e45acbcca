package events_test

import (
	"context"
	"io"
	"log/slog"
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

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/events"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestPoisonEventIsDeadLettered: an event PostgreSQL refuses every time
// (a NUL byte in a text column) does not hold back the events around it;
// after LEDGER_MAX_ATTEMPTS it is dead-lettered with its reason, and the
// others are applied.
func TestPoisonEventIsDeadLettered(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqldb.Open(ctx, testkit.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := store.Open(ctx, db, events.Encode, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ledger.DefaultProgramme("EUR")
	if err != nil {
		t.Fatal(err)
	}
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	if err := orderbus.EnsureStreams(ctx, js, orderbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, order := range []string{"good-1", "bad\x00", "good-2"} {
		ev := &ordersv1.OrderEvent{EventId: "e" + order, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, Source: "shop",
			OrderId: order, CustomerId: "c", OccurredAt: timestamppb.New(time.Date(2026, 5, 1, 0, 0, i, 0, time.UTC)),
			BaseTotal: &commonv1.Money{MinorUnits: 10_00, Currency: "EUR"}}
		data, _ := proto.Marshal(ev)
		msg := &nats.Msg{Subject: orderbus.Subject("paid", "c"), Data: data, Header: natsx.ProtoHeader(ctx, ev.GetEventId(), ev)}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, orderbus.Stream, jetstream.ConsumerConfig{Durable: "ledger-test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	c, err := events.NewConsumer(st, func() *ledger.Programme { return p },
		events.Options{MaxAttempts: 2, Ping: db.W.PingContext}, quiet, tracenoop.NewTracerProvider(),
		sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("t"))
	if err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(db, js, quiet, outbox.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go relay.Run(runCtx)
	go natsx.NewBatchConsumer(cons, natsx.BatchOptions{MaxBatch: 16}, quiet).Run(runCtx, c.Handle)

	dl, err := js.OrderedConsumer(ctx, orderbus.DeadLetterStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := dl.Next(jetstream.FetchMaxWait(20 * time.Second))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if m.Headers().Get(orderbus.HeaderReason) != "processing_failed" || m.Subject() != "boomerang.deadletter.ledger.orders" {
		t.Errorf("dead letter %s, reason %q", m.Subject(), m.Headers().Get(orderbus.HeaderReason))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := st.Account(ctx, p, "c", 0)
		if err == nil && v.Account.Balance == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the good events were not applied: %v %v", v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := st.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	// Counted once, just after the commit that wrote it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := testkit.Counter(t, reader, "boomerang.deadletters", "service", "reason")
		if len(got) == 1 && got["ledger/processing_failed"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("boomerang.deadletters = %v, want ledger/processing_failed: 1", got)
		}
	}
}
