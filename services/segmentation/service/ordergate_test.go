package service_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/service"
)

// TestOrderEventsWaitForTheirPredecessor publishes an order's events
// newest first, as a redelivery after a crash delivers them: the refund
// and the payment are put off until the placed event has been applied,
// then count as in order. An event whose predecessor never comes is
// applied without it once it has waited SEGMENTATION_WAIT_FOR_ORDER, and
// holds nothing back.
func TestOrderEventsWaitForTheirPredecessor(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "seg.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg, err := service.LoadConfig(config.Map(map[string]string{"BOOMERANG_BASE_CURRENCY": "EUR",
		"SEGMENTATION_LATER_DELAY": "50ms", "SEGMENTATION_WAIT_FOR_ORDER": "1s"}))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(ctx, cfg, service.Deps{DB: db, JetStream: js,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Tracer: tracenoop.NewTracerProvider(), Meter: metricnoop.NewMeterProvider()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	now := time.Now().UTC().Add(-time.Hour)
	numbered := func(id string, kind ordersv1.OrderEventKind, order string, seq int32) *ordersv1.OrderEvent {
		ev := orderEvent(id, "c1", order, kind, now, 2000)
		ev.OrderSequence = seq
		return ev
	}
	refund := numbered("r", ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, "o1", 3)
	refund.Refund = &ordersv1.Refund{RefundId: "r1", RefundedTotal: &ordersv1.Amount{Base: &commonv1.Money{MinorUnits: 500, Currency: "EUR"}}}
	publish(t, js, "refunded", refund)
	publish(t, js, "paid", numbered("p", ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, "o1", 2))
	// o2's placed event never comes.
	publish(t, js, "paid", numbered("p2", ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, "o2", 2))
	time.Sleep(200 * time.Millisecond) // the first two are put off at least once
	publish(t, js, "placed", numbered("o", ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED, "o1", 1))

	features := func() (orders, value, refunds int64) {
		_ = db.R.QueryRowContext(ctx, "SELECT orders, total_value, refunds FROM seg_features WHERE customer_id = 'c1'").Scan(&orders, &value, &refunds)
		return
	}
	waitFor(t, func() bool { o, v, r := features(); return o == 1 && v == 1500 && r == 1 })
	// o2's payment is applied without its placed event after a second.
	waitFor(t, func() bool { o, v, r := features(); return o == 2 && v == 3500 && r == 1 })
	if n := streamCount(ctx, js, orderbus.DeadLetterStream); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	// Nothing is left waiting.
	waitFor(t, func() bool {
		c, err := js.Consumer(ctx, orderbus.Stream, "segmentation")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
