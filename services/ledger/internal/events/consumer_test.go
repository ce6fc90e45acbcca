package events_test

import (
	"context"
	"fmt"
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
// others are applied. The garbage before it in the batch is dead-lettered
// at each attempt, the batch failing and being applied again message by
// message, and published in between: it is counted once all the same.
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
	if _, err := js.Publish(ctx, orderbus.Subject("paid", "c"), []byte("garbage")); err != nil {
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
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("t")
	c, err := events.NewConsumer(st, func() *ledger.Programme { return p },
		events.Options{MaxAttempts: 2, Ping: db.W.PingContext}, quiet, tracenoop.NewTracerProvider(), meter)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := orderbus.NewDeadLetters(meter)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(db, js, quiet, outbox.RelayOptions{Stored: dead.Stored})
	if err != nil {
		t.Fatal(err)
	}
	// As in the service: each commit wakes the relay, so the garbage's
	// dead letter is published and gone from the outbox before the batch
	// is tried again.
	c.OnCommit(relay.Notify)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go relay.Run(runCtx)
	go natsx.NewBatchConsumer(cons, natsx.BatchOptions{MaxBatch: 16}, quiet).Run(runCtx, c.Handle)

	dl, err := js.OrderedConsumer(ctx, orderbus.DeadLetterStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for range 2 {
		m, err := dl.Next(jetstream.FetchMaxWait(20 * time.Second))
		if err != nil {
			t.Fatalf("dead letters %v, then none: %v", reasons, err)
		}
		if m.Subject() != "boomerang.deadletter.ledger.orders" {
			t.Errorf("dead letter on %s", m.Subject())
		}
		reasons[m.Headers().Get(orderbus.HeaderReason)]++
	}
	if fmt.Sprint(reasons) != "map[invalid_event:1 processing_failed:1]" {
		t.Errorf("dead letters %v, want invalid_event and processing_failed", reasons)
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
	// Each dead letter is counted once, when JetStream stores it.
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	defer fcancel()
	if err := relay.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	got := testkit.Counter(t, reader, "boomerang.deadletters", "service", "reason")
	if want := "map[ledger/invalid_event:1 ledger/processing_failed:1]"; fmt.Sprint(got) != want {
		t.Errorf("boomerang.deadletters = %v, want %s", got, want)
	}
}
