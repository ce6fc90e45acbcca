package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform"
	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform/platformtest"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

const (
	writerToken = "writer-token-0123456789abcdef"
	readerToken = "reader-token-0123456789abcdef"
)

// running is a running single-process Boomerang for a test.
type running struct {
	m    *platform.Main
	js   jetstream.JetStream
	nc   *nats.Conn
	conn *grpc.ClientConn
}

func startPlatform(tb testing.TB, dataDir string, extra map[string]string) *running {
	tb.Helper()
	env := map[string]string{
		"BOOMERANG_API_TOKENS": writerToken + ":ingest:write,ingest:read;" + readerToken + ":ingest:read",
	}
	for k, v := range extra {
		env[k] = v
	}
	m := platformtest.Start(tb, dataDir, env)
	p := &running{m: m}
	p.nc, p.js = platformtest.Admin(tb, m)
	var err error
	p.conn, err = grpcx.Dial(m.GRPCAddr(), grpcx.ClientOptions{Token: writerToken})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.conn.Close() })
	return p
}

func (p *running) publish(tb testing.TB, subject string, body string, header nats.Header) {
	tb.Helper()
	msg := &nats.Msg{Subject: subject, Data: []byte(body), Header: header}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		tb.Fatal(err)
	}
}

// next waits for the next message on a stream, through an ordered consumer.
type streamReader struct {
	cons jetstream.Consumer
}

func (p *running) reader(tb testing.TB, stream string) *streamReader {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	return &streamReader{cons: c}
}

func (r *streamReader) next(tb testing.TB) jetstream.Msg {
	tb.Helper()
	m, err := r.cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		tb.Fatalf("no message within 10s: %v", err)
	}
	return m
}

func (r *streamReader) none(tb testing.TB, wait time.Duration) {
	tb.Helper()
	m, err := r.cons.Next(jetstream.FetchMaxWait(wait))
	if err == nil {
		tb.Fatalf("unexpected message on %s: %s", m.Subject(), m.Data())
	}
	if !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		tb.Fatalf("next: %v", err)
	}
}

func decodeEvent(tb testing.TB, m jetstream.Msg) *ordersv1.OrderEvent {
	tb.Helper()
	ev := &ordersv1.OrderEvent{}
	if err := proto.Unmarshal(m.Data(), ev); err != nil {
		tb.Fatal(err)
	}
	return ev
}

func TestEndToEnd(t *testing.T) {
	p := startPlatform(t, t.TempDir(), map[string]string{"INGEST_WAIT_FOR_ORDER": "0s"})
	orders := p.reader(t, "ORDERS")
	dead := p.reader(t, "DEADLETTER")
	client := ingestv1.NewIngestServiceClient(p.conn)
	ctx := context.Background()

	// A JSON order published by a shop, with a trace it continues.
	paid := `{"order_id": "A-1", "kind": "paid", "occurred_at": "2026-11-01T10:00:00Z", "currency": "USD",
	  "total": "120.00", "shipping": "10.00", "tax": 5, "channel": "web",
	  "discount": {"codes": ["BF20"], "amount": "20.00"},
	  "customer": {"id": "cust-9", "email": "  Ann@Example.COM ", "birthday": "1990-04-12", "marketing_consent": true},
	  "items": [{"sku": "SHOE-1", "category": "shoes", "quantity": 2, "price": "55.00"}]}`
	traceID := "4bf92f3577b34da6a3ce929d0e0e4736"
	h := nats.Header{}
	h.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	h.Set("Content-Type", "application/json")
	p.publish(t, "boomerang.ingest.orders.shop-us", paid, h)

	m := orders.next(t)
	ev := decodeEvent(t, m)
	if !strings.HasPrefix(m.Subject(), "boomerang.orders.v1.paid.cus_") {
		t.Fatalf("subject = %s", m.Subject())
	}
	if m.Headers().Get("Nats-Msg-Id") != ev.GetEventId() {
		t.Errorf("Nats-Msg-Id %q, event id %q", m.Headers().Get("Nats-Msg-Id"), ev.GetEventId())
	}
	if got := m.Headers().Get("traceparent"); !strings.Contains(got, traceID) {
		t.Errorf("traceparent %q does not continue trace %s", got, traceID)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"source", ev.GetSource(), "shop-us"},
		{"total", ev.GetTotal().GetMinorUnits(), int64(12000)},
		{"base total", ev.GetBaseTotal().GetMinorUnits(), int64(10800)},
		{"base currency", ev.GetBaseTotal().GetCurrency(), "EUR"},
		{"fx rate", ev.GetFxRate(), "0.9"},
		{"tax from a JSON number", ev.GetTax().GetOriginal().GetMinorUnits(), int64(500)},
		{"discount base", ev.GetDiscount().GetAmount().GetBase().GetMinorUnits(), int64(1800)},
		{"discount code", ev.GetDiscount().GetCodes()[0], "BF20"},
		{"item price base", ev.GetItems()[0].GetUnitPrice().GetBase().GetMinorUnits(), int64(4950)},
		{"birthday month", ev.GetCustomer().GetBirthday().GetMonth(), int32(4)},
		{"new customer", ev.GetCustomer().GetNewCustomer(), true},
		{"sequence", ev.GetOrderSequence(), int32(1)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if strings.Contains(string(m.Data()), "example.com") {
		t.Error("the canonical event carries the e-mail in clear text")
	}
	customer := ev.GetCustomerId()

	// The same order again, as a redelivery with another message id: no
	// second canonical event.
	p.publish(t, "boomerang.ingest.orders.shop-us", paid, nats.Header{"Nats-Msg-Id": []string{"other-id"}})

	// The same person as a guest on another shop, over gRPC: same customer.
	res, err := client.SubmitOrders(ctx, &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{{
		Source: "shop-jp", OrderId: "J-7", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
		OccurredAt: timestamppb.New(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)),
		Total:      &commonv1.Money{MinorUnits: 5000, Currency: "JPY"},
		Customer:   &ingestv1.CustomerInput{Email: "ann@example.com"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	r := res.GetResults()[0]
	if r.GetOutcome() != ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED || r.GetCustomerId() != customer {
		t.Fatalf("guest order: %v, want accepted for %s", r, customer)
	}
	ev = decodeEvent(t, orders.next(t))
	if ev.GetOrderId() != "J-7" || ev.GetBaseTotal().GetMinorUnits() != 3000 || !ev.GetCustomer().GetGuest() || ev.GetCustomer().GetNewCustomer() {
		t.Fatalf("guest event: %v", ev)
	}

	// A partial refund follows its order; a refund beyond what is left is
	// dead-lettered with its reason; a second delivery of the refund is a
	// duplicate.
	refund := `{"order_id": "A-1", "kind": "refunded", "occurred_at": "2026-11-03T10:00:00Z",
	  "refund": {"id": "R-1", "amount": "30.00", "currency": "USD"}}`
	p.publish(t, "boomerang.ingest.orders.shop-us", refund, nil)
	ev = decodeEvent(t, orders.next(t))
	if ev.GetKind() != ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED || ev.GetCustomerId() != customer ||
		ev.GetRefund().GetAmount().GetBase().GetMinorUnits() != 2700 || ev.GetOrderSequence() != 2 {
		t.Fatalf("refund event: %v", ev)
	}
	p.publish(t, "boomerang.ingest.orders.shop-us", refund, nil)
	tooMuch := `{"order_id": "A-1", "kind": "refunded", "occurred_at": "2026-11-03T11:00:00Z",
	  "refund": {"id": "R-2", "amount": "90.01", "currency": "USD"}}`
	p.publish(t, "boomerang.ingest.orders.shop-us", tooMuch, nil)
	dl := dead.next(t)
	if dl.Headers().Get("Boomerang-Reason") != "refund_exceeds_remaining" || string(dl.Data()) != tooMuch {
		t.Fatalf("dead letter %s: %v %q", dl.Subject(), dl.Headers(), dl.Data())
	}

	// Bad input of every kind lands in the dead-letter stream with its
	// reason and original bytes, and the consumer carries on.
	bad := []struct {
		subject, body, reason string
	}{
		{"boomerang.ingest.orders.shop-us", `{"order_id": "B-1", "total": `, "malformed"},
		{"boomerang.ingest.orders.shop-us", `{"order_id": "B-2", "occurred_at": "2026-11-01T10:00:00Z", "currency": "ZZZ", "total": "1", "customer": {"id": "x"}}`, "unknown_currency"},
		{"boomerang.ingest.orders.shop-us", `{"order_id": "B-3", "occurred_at": "2026-11-01T10:00:00Z", "currency": "GBP", "total": "1", "customer": {"id": "x"}}`, "no_fx_rate"},
		{"boomerang.ingest.orders.shop-us", `{"order_id": "B-4", "occurred_at": "2026-11-01T10:00:00Z", "currency": "USD", "total": "1"}`, "invalid"},
		{"boomerang.ingest.orders.shop-us", `{"order_id": "B-5", "occurred_at": "2099-01-01T00:00:00Z", "currency": "USD", "total": "1", "customer": {"id": "x"}}`, "invalid"},
		{"boomerang.ingest.orders.shop-us", `{"order_id": "B-6", "occurred_at": "2026-11-01T10:00:00Z", "currency": "USD", "total": "1.001", "customer": {"id": "x"}}`, "invalid"},
		{"boomerang.ingest.orders.shop-us", `{"order_id": "B-7", "kind": "refunded", "occurred_at": "2026-11-01T10:00:00Z", "refund": {"id": "r", "amount": "1", "currency": "USD"}}`, "unknown_order"},
		{"boomerang.ingest.orders.Shop-US", `{"order_id": "B-8"}`, "bad_subject"},
		{"boomerang.ingest.orders.shop-us", `{"source": "shop-eu", "order_id": "B-9", "occurred_at": "2026-11-01T10:00:00Z", "currency": "USD", "total": "1", "customer": {"id": "x"}}`, "source_mismatch"},
		{"boomerang.ingest.orders.shop-us", "\x08\x96\x01\xff\xff", "malformed"},
		{"boomerang.ingest.orders.shop-us", `{"order_id": "B-10", "occurred_at": "2026-11-01T10:00:00Z", "currency": "USD", "total": "1", "customer": {"email": "not-an-address"}}`, "invalid"},
		{"boomerang.ingest.orders.shop-us", "{\"order_id\": \"" + strings.Repeat("x", 300<<10) + "\"}", "too_large"},
	}
	for _, b := range bad {
		p.publish(t, b.subject, b.body, nil)
	}
	parked := map[string]jetstream.Msg{}
	for range bad {
		dl := dead.next(t)
		parked[string(dl.Data())] = dl
	}
	for _, b := range bad {
		dl, ok := parked[b.body]
		if !ok {
			t.Errorf("no dead letter keeps the original bytes of %.60q", b.body)
			continue
		}
		if got := dl.Headers().Get("Boomerang-Reason"); got != b.reason {
			t.Errorf("body %.60q: reason %q (%s), want %q", b.body, got, dl.Headers().Get("Boomerang-Error"), b.reason)
		}
	}

	// A CloudEvents envelope is accepted, its kind taken from the type.
	ce := `{"specversion": "1.0", "id": "e-1", "source": "//shop", "type": "com.example.order.placed",
	  "time": "2026-11-04T09:00:00Z", "datacontenttype": "application/json",
	  "data": {"order_id": "C-1", "currency": "EUR", "total": "9.99", "customer": {"id": "cust-9"}}}`
	p.publish(t, "boomerang.ingest.orders.shop-us", ce, nil)
	ev = decodeEvent(t, orders.next(t))
	if ev.GetOrderId() != "C-1" || ev.GetKind() != ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED || ev.GetCustomerId() != customer {
		t.Fatalf("CloudEvents order: %v", ev)
	}
	// Nothing else came out: the duplicate order and refund made no event.
	orders.none(t, 500*time.Millisecond)

	// The canonical view of the order with its history.
	got, err := client.GetOrder(ctx, &ingestv1.GetOrderRequest{Source: "shop-us", OrderId: "A-1"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetStatus() != ingestv1.OrderStatus_ORDER_STATUS_PARTIALLY_REFUNDED || len(got.GetHistory()) != 2 ||
		got.GetRefunded().GetMinorUnits() != 3000 || got.GetBaseRefunded().GetMinorUnits() != 2700 {
		t.Fatalf("GetOrder = %v", got)
	}
	if _, err := client.GetOrder(ctx, &ingestv1.GetOrderRequest{Source: "shop-us", OrderId: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetOrder of an unknown order: %v, want NotFound", err)
	}

	// gRPC: a duplicate is reported as such; a bad request is
	// InvalidArgument with field violations and applies nothing.
	res, err = client.SubmitOrders(ctx, &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{{
		Source: "shop-jp", OrderId: "J-7", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
		OccurredAt: timestamppb.New(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)),
		Total:      &commonv1.Money{MinorUnits: 5000, Currency: "JPY"},
		Customer:   &ingestv1.CustomerInput{Email: "ann@example.com"},
	}}})
	if err != nil || res.GetResults()[0].GetOutcome() != ingestv1.OrderOutcome_ORDER_OUTCOME_DUPLICATE {
		t.Fatalf("resubmitted order: %v, %v; want a duplicate", res, err)
	}
	_, err = client.SubmitOrders(ctx, &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{
		{Source: "shop-jp", OrderId: "J-8", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
			OccurredAt: timestamppb.Now(), Total: &commonv1.Money{MinorUnits: 1, Currency: "JPY"},
			Customer: &ingestv1.CustomerInput{Email: "b@example.com"}},
		{Source: "shop-jp", OrderId: "", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
			Total: &commonv1.Money{MinorUnits: -5, Currency: "yen"}},
	}})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("bad request: %v, want InvalidArgument", err)
	}
	fields := map[string]bool{}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				fields[fv.GetField()] = true
			}
		}
	}
	for _, f := range []string{"orders[1].order_id", "orders[1].occurred_at", "orders[1].total.currency", "orders[1].total"} {
		if !fields[f] {
			t.Errorf("no violation for %s in %v", f, fields)
		}
	}
	if _, err := client.GetOrder(ctx, &ingestv1.GetOrderRequest{Source: "shop-jp", OrderId: "J-8"}); status.Code(err) != codes.NotFound {
		t.Fatalf("an order of a rejected request was applied: %v", err)
	}

	// Authentication and scopes.
	anon, err := grpcx.Dial(p.m.GRPCAddr(), grpcx.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := ingestv1.NewIngestServiceClient(anon).GetOrder(ctx, &ingestv1.GetOrderRequest{Source: "shop-us", OrderId: "A-1"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v, want Unauthenticated", err)
	}
	reader, err := grpcx.Dial(p.m.GRPCAddr(), grpcx.ClientOptions{Token: readerToken})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if _, err := ingestv1.NewIngestServiceClient(reader).SubmitOrders(ctx, &ingestv1.SubmitOrdersRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("read-only token submitting: %v, want PermissionDenied", err)
	}

	// Health and metrics.
	body := httpGet(t, "http://"+p.m.HTTPAddr()+"/healthz", http.StatusOK)
	var health map[string]string
	if err := json.Unmarshal([]byte(body), &health); err != nil || health["boomerang.ingest.v1.IngestService"] != "ok" {
		t.Fatalf("healthz = %s", body)
	}
	metrics := httpGet(t, "http://"+p.m.HTTPAddr()+"/metrics", http.StatusOK)
	for _, want := range []string{`boomerang_ingest_orders_total{`, `outcome="accepted"`, `reason="refund_exceeds_remaining"`, "boomerang_consumer_pending", "boomerang_outbox_published", `boomerang_consumer_delay_seconds_bucket{consumer="ingest.orders"`, "rpc_server_"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func httpGet(tb testing.TB, url string, want int) string {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		tb.Fatalf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// A refund that arrives before its order waits for it instead of being
// dead-lettered, and is applied once the order is in.
func TestRefundBeforeItsOrder(t *testing.T) {
	p := startPlatform(t, t.TempDir(), map[string]string{"INGEST_WAIT_FOR_ORDER": "1m", "INGEST_LATER_DELAY": "200ms"})
	orders := p.reader(t, "ORDERS")
	dead := p.reader(t, "DEADLETTER")
	p.publish(t, "boomerang.ingest.orders.shop-us", `{"order_id": "L-1", "kind": "refunded", "occurred_at": "2026-11-03T10:00:00Z",
	  "refund": {"id": "R-1", "amount": "5.00", "currency": "USD"}}`, nil)
	time.Sleep(300 * time.Millisecond)
	p.publish(t, "boomerang.ingest.orders.shop-us", `{"order_id": "L-1", "occurred_at": "2026-11-02T10:00:00Z", "currency": "USD",
	  "total": "20.00", "customer": {"email": "late@example.com"}}`, nil)
	first, second := decodeEvent(t, orders.next(t)), decodeEvent(t, orders.next(t))
	if first.GetKind() != ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID || second.GetKind() != ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED ||
		second.GetRefund().GetRefundedTotal().GetOriginal().GetMinorUnits() != 500 {
		t.Fatalf("events: %v then %v", first, second)
	}
	dead.none(t, 300*time.Millisecond)
}
