package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/redisx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/service"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestConfig(t *testing.T) {
	c, err := service.LoadConfig(config.Map(map[string]string{"REDIS_URL": "redis://localhost:6379/2"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL != "redis://localhost:6379/2" || c.ScoreInterval != time.Hour || c.Flags.VIPShare != 0.05 || c.BatchSize != 512 {
		t.Errorf("defaults %+v", c)
	}
	_, err = service.LoadConfig(config.Map(map[string]string{
		"SEGMENTATION_VIP_SHARE": "2", "SEGMENTATION_BATCH_SIZE": "0", "BOOMERANG_BASE_CURRENCY": "XXY",
		"SEGMENTATION_REDIS_URL": "localhost:6379",
	}))
	for _, want := range []string{"SEGMENTATION_VIP_SHARE", "SEGMENTATION_BATCH_SIZE", "BOOMERANG_BASE_CURRENCY", "SEGMENTATION_REDIS_URL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func orderEvent(id, customer, order string, kind ordersv1.OrderEventKind, at time.Time, base int64) *ordersv1.OrderEvent {
	return &ordersv1.OrderEvent{
		EventId: id, Kind: kind, Source: "shop", OrderId: order, CustomerId: customer, Channel: "web",
		OccurredAt: timestamppb.New(at), IngestedAt: timestamppb.New(at),
		Total: &commonv1.Money{MinorUnits: base, Currency: "EUR"}, BaseTotal: &commonv1.Money{MinorUnits: base, Currency: "EUR"},
	}
}

func publish(tb testing.TB, js jetstream.JetStream, kind string, ev *ordersv1.OrderEvent) {
	tb.Helper()
	data, err := proto.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	msg := &nats.Msg{Subject: orderbus.Subject(kind, ev.GetCustomerId()), Data: data,
		Header: natsx.ProtoHeader(context.Background(), ev.GetEventId(), ev)}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		tb.Fatal(err)
	}
}

// TestService runs the service on an in-process NATS server with SQLite
// and Redis: order events in, profiles, segment-changed events and dead
// letters out.
func TestService(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "seg.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rc, err := redisx.Open(ctx, testkit.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	cfg, err := service.LoadConfig(config.Map(map[string]string{"BOOMERANG_BASE_CURRENCY": "EUR", "SEGMENTATION_MIN_SCORE_INTERVAL": "0s"}))
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	svc, err := service.New(ctx, cfg, service.Deps{DB: db, JetStream: js, Redis: rc,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Tracer: tracenoop.NewTracerProvider(), Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	svc.Register(g)
	cc, err := grpc.NewClient(testkit.GRPC(t, g), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := segmentationv1.NewSegmentationServiceClient(cc)
	profile := func(ctx context.Context, id string) (*segmentationv1.GetProfileResponse, error) {
		return client.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: id})
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	now := time.Now().UTC()
	paid := ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
	for i := 0; i < 10; i++ {
		publish(t, js, "paid", orderEvent(fmt.Sprint("e", i), fmt.Sprintf("c%d", i%4), fmt.Sprint("o", i), paid, now.AddDate(0, 0, -30+i), int64(1000*(i+1))))
	}
	publish(t, js, "paid", orderEvent("e0", "c0", "o0", paid, now.AddDate(0, 0, -30), 1000)) // a duplicate publish
	refund := orderEvent("r1", "c1", "o1", ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, now, 2000)
	refund.Refund = &ordersv1.Refund{RefundId: "r1", RefundedTotal: &ordersv1.Amount{Base: &commonv1.Money{MinorUnits: 500, Currency: "EUR"}}}
	publish(t, js, "refunded", refund)
	if _, err := js.Publish(ctx, orderbus.Subject("paid", "junk"), []byte("not protobuf at all \xff")); err != nil {
		t.Fatal(err)
	}

	// c1 has o1 (2000, refunded 500), o5 (6000), o9 (10000).
	var p *segmentationv1.GetProfileResponse
	waitFor(t, func() bool {
		if err := svc.Relay().Flush(ctx); err != nil {
			return false
		}
		p, err = profile(ctx, "c1")
		return err == nil && p.GetFeatures().GetRefunds() == 1 && p.GetSegment() != segmentationv1.Segment_SEGMENT_UNSPECIFIED
	})
	if f := p.GetFeatures(); f.GetOrders() != 3 || f.GetTotalValue().GetMinorUnits() != 17500 {
		t.Errorf("c1 %v", p)
	}
	p0, err := profile(ctx, "c0")
	if err != nil || p0.GetFeatures().GetOrders() != 3 || p0.GetFeatures().GetTotalValue().GetMinorUnits() != 1000+5000+9000 {
		t.Errorf("c0 %v, %v", p0, err)
	}
	// Segment-changed events reached the SEGMENT stream, and the junk the
	// dead-letter stream.
	waitFor(t, func() bool {
		_ = svc.Relay().Flush(ctx)
		return streamCount(ctx, js, "SEGMENT") >= 4 && streamCount(ctx, js, orderbus.DeadLetterStream) == 1
	})
	// The junk's dead letter is counted once, just after its commit.
	waitFor(t, func() bool {
		got := testkit.Counter(t, reader, "boomerang.deadletters", "service", "reason")
		return len(got) == 1 && got["segmentation/not_an_order_event"] == 1
	})
	cons, err := js.OrderedConsumer(ctx, "SEGMENT", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"boomerang.segmentation.v1.segment_changed.c1"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ev := &segmentationv1.SegmentChanged{}
	if err := proto.Unmarshal(m.Data(), ev); err != nil || ev.GetCustomerId() != "c1" || m.Headers().Get(jetstream.MsgIDHeader) != ev.GetEventId() {
		t.Errorf("segment changed %v, %v", ev, err)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func streamCount(ctx context.Context, js jetstream.JetStream, name string) uint64 {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRestartAndReplay stops the service in the middle of the stream,
// starts another on the same database, then deletes the durable consumer so
// that a third replays ORDERS from the start: every customer ends with
// exactly the orders published, each counted once.
func TestRestartAndReplay(t *testing.T) {
	ctx := context.Background()
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "seg.db")
	cfg, err := service.LoadConfig(config.Map(map[string]string{"BOOMERANG_BASE_CURRENCY": "EUR", "SEGMENTATION_BATCH_SIZE": "16",
		// Messages the stopped service had pulled but not applied come back
		// when their lease ends.
		"SEGMENTATION_ACK_WAIT": "1s"}))
	if err != nil {
		t.Fatal(err)
	}
	start := func() (*service.Service, *sqldb.DB, func()) {
		db, err := sqldb.Open(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := service.New(ctx, cfg, service.Deps{DB: db, JetStream: js,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Tracer: tracenoop.NewTracerProvider(), Meter: metricnoop.NewMeterProvider()})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- svc.Run(rctx) }()
		return svc, db, func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			db.Close()
		}
	}
	processed := func(db *sqldb.DB) int {
		var n int
		if err := db.R.QueryRowContext(ctx, "SELECT COUNT(*) FROM seg_processed").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := streams.Ensure(ctx, js, "segmentation", streams.Settings{MaxAge: map[string]time.Duration{orderbus.Stream: 0, orderbus.DeadLetterStream: 0}}); err != nil {
		t.Fatal(err)
	}
	const events, customers = 800, 40
	now := time.Now().UTC()
	want := map[string]int64{}
	for i := 0; i < events; i++ {
		c := fmt.Sprintf("c%02d", i%customers)
		want[c] += int64(100 + i)
		publish(t, js, "paid", orderEvent(fmt.Sprint("e", i), c, fmt.Sprint("o", i), ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
			now.Add(time.Duration(i-events)*time.Minute), int64(100+i)))
	}
	_, db, stop := start()
	waitFor(t, func() bool { return processed(db) >= 100 })
	stop()
	_, db, stop = start()
	waitFor(t, func() bool { return processed(db) == events })
	stop()
	if err := js.DeleteConsumer(ctx, orderbus.Stream, "segmentation"); err != nil {
		t.Fatal(err)
	}
	_, db, stop = start()
	defer stop()
	// The replay is done when the new consumer has nothing pending.
	waitFor(t, func() bool {
		c, err := js.Consumer(ctx, orderbus.Stream, "segmentation")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	rows, err := db.R.QueryContext(ctx, "SELECT customer_id, orders, total_value FROM seg_features")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var c string
		var orders, value int64
		if err := rows.Scan(&c, &orders, &value); err != nil {
			t.Fatal(err)
		}
		seen++
		if orders != events/customers || value != want[c] {
			t.Errorf("%s: %d orders, value %d; want %d, %d", c, orders, value, events/customers, want[c])
		}
	}
	if seen != customers || processed(db) != events {
		t.Errorf("%d customers, %d events processed", seen, processed(db))
	}
}
