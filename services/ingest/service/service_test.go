package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/ingest/service"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	token  = "test-token-0123456789abcdef"
	source = "shop"
)

type harness struct {
	js     jetstream.JetStream
	client ingestv1.IngestServiceClient
	reader *sdkmetric.ManualReader
}

func start(t *testing.T, dbURL string, env map[string]string) *harness {
	t.Helper()
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	vars := map[string]string{
		"INGEST_DATABASE_URL":       dbURL,
		"BOOMERANG_IDENTITY_SECRET": strings.Repeat("ab", 32),
		"INGEST_MAX_ATTEMPTS":       "2",
		"INGEST_LATER_DELAY":        "50ms",
		"INGEST_WAIT_FOR_ORDER":     "300ms",
		"INGEST_WEBHOOK_ADDR":       "",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := service.LoadConfig(config.Map(vars))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	db, err := sqldb.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := service.New(ctx, cfg, service.Deps{DB: db, JetStream: js, Log: log, Tracer: tracenoop.NewTracerProvider(),
		Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	if err != nil {
		t.Fatal(err)
	}
	tokens := &grpcx.Tokens{}
	tokens.Add(token, "ingest:write", "ingest:read")
	gs, err := grpcx.NewServer(grpcx.ServerOptions{Tokens: tokens, Scopes: svc.Scopes(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	svc.Register(gs.Server)
	conn, err := grpcx.Dial(testkit.GRPC(t, gs.Server), grpcx.ClientOptions{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
		conn.Close()
		db.Close()
	})
	return &harness{js: js, client: ingestv1.NewIngestServiceClient(conn), reader: reader}
}

// odd is one order with the text under test. Both encodings are built from
// it: the bus's JSON (orderjson's shape) and protobuf (gRPC and the bus).
type odd struct {
	orderID, customerID, sku, category, code, currency, country, refundID string
	// raw, when set, replaces the bytes "RAW-PLACEHOLDER" in both encoded
	// messages (padded to its length): bytes no Go encoder writes (not
	// UTF-8).
	raw string
}

const placeholder = "RAW-PLACEHOLDER"

var occurred = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

func (o odd) order() *ingestv1.Order {
	cur := o.currency
	if cur == "" {
		cur = "USD"
	}
	m := &ingestv1.Order{Source: source, OrderId: o.orderID, OccurredAt: timestamppb.New(occurred)}
	if o.refundID != "" {
		m.Kind = ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED
		m.Refund = &ingestv1.RefundInput{RefundId: o.refundID, Amount: &commonv1.Money{MinorUnits: 100, Currency: cur}}
		return m
	}
	m.Kind = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
	m.Total = &commonv1.Money{MinorUnits: 1999, Currency: cur}
	m.Customer = &ingestv1.CustomerInput{PlatformCustomerId: o.customerID, Email: "ann@example.com", Country: o.country}
	m.Items = []*ingestv1.LineItemInput{{Sku: o.sku, Category: o.category, Quantity: 1, UnitPrice: &commonv1.Money{MinorUnits: 1999, Currency: cur}}}
	if o.code != "" {
		m.Discount = &ingestv1.DiscountInput{Codes: []string{o.code}}
	}
	return m
}

func (o odd) json(t *testing.T) []byte {
	t.Helper()
	cur := o.currency
	if cur == "" {
		cur = "USD"
	}
	doc := map[string]any{"order_id": o.orderID, "occurred_at": occurred.Format(time.RFC3339), "currency": cur}
	if o.refundID != "" {
		doc["kind"] = "refunded"
		doc["refund"] = map[string]any{"id": o.refundID, "amount": "1.00"}
	} else {
		doc["kind"] = "paid"
		doc["total"] = "19.99"
		doc["customer"] = map[string]any{"id": o.customerID, "email": "ann@example.com", "country": o.country}
		doc["items"] = []any{map[string]any{"sku": o.sku, "category": o.category, "quantity": 1, "price": "19.99"}}
		if o.code != "" {
			doc["discount"] = map[string]any{"codes": []string{o.code}}
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return o.patch(t, b)
}

func (o odd) protobuf(t *testing.T) []byte {
	t.Helper()
	b, err := proto.Marshal(o.order())
	if err != nil {
		t.Fatal(err)
	}
	return o.patch(t, b)
}

func (o odd) patch(t *testing.T, b []byte) []byte {
	t.Helper()
	if o.raw == "" {
		return b
	}
	if len(o.raw) != len(placeholder) || !bytes.Contains(b, []byte(placeholder)) {
		t.Fatalf("raw bytes %q must replace %q of the same length", o.raw, placeholder)
	}
	return bytes.ReplaceAll(b, []byte(placeholder), []byte(o.raw))
}

// outcome is what became of one input: "accepted", or a reason; field is
// the field the rejection names ("" when it names none).
type outcome struct{ reason, field string }

// TestOutcomesCountedOnce sends a known mix of input and checks that
// boomerang.ingest.orders counts each message once by its final outcome —
// rejections made while decoding included, a refund put off again and
// again only when it is finally dead-lettered — and that
// boomerang.deadletters counts each dead letter once.
func TestOutcomesCountedOnce(t *testing.T) {
	h := start(t, "sqlite:"+t.TempDir()+"/ingest.db", map[string]string{"INGEST_MAX_PAYLOAD_BYTES": "1024"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	paid := func(id, currency string) string {
		return `{"order_id":"` + id + `","kind":"paid","occurred_at":"2026-11-01T10:00:00Z","currency":"` + currency +
			`","total":"10.00","customer":{"email":"ann@example.com"}}`
	}
	bus := []struct {
		subject, body, want string // want: "outcome/reason"
	}{
		{source, paid("a", "USD"), "accepted/"},
		{source, paid("b", "USD"), "accepted/"},
		{source, paid("a", "USD"), "duplicate/"},
		{source, `{"order_id": `, "rejected/malformed"},
		{"Not A Source", paid("c", "USD"), "rejected/bad_subject"},
		{source, `{"order_id":"big","pad":"` + strings.Repeat("x", 2000) + `"}`, "rejected/too_large"},
		{source, `{"order_id":"d","kind":"shipped"}`, "rejected/invalid"},
		{source, paid("e", "ZZZ"), "rejected/unknown_currency"},
		{source, `{"source":"other","order_id":"f"}`, "rejected/source_mismatch"},
		// Put off every 50ms for 300ms, then dead-lettered: counted once.
		{source, `{"order_id":"never","kind":"refunded","occurred_at":"2026-11-01T10:00:00Z","refund":{"id":"r","amount":"1.00","currency":"USD"}}`, "rejected/unknown_order"},
		{source, `{"order_id":"a","kind":"refunded","occurred_at":"2026-11-01T11:00:00Z","refund":{"id":"r","amount":"11.00","currency":"USD"}}`, "rejected/refund_exceeds_remaining"},
	}
	wantOrders, wantDead := map[string]int64{}, map[string]int64{}
	dead := 0
	for _, m := range bus {
		subject := "boomerang.ingest.orders." + m.subject
		if m.subject == "Not A Source" {
			subject = "boomerang.ingest.orders.Not-A-Source"
		}
		if _, err := h.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte(m.body)}); err != nil {
			t.Fatal(err)
		}
		wantOrders[m.want]++
		if reason, ok := strings.CutPrefix(m.want, "rejected/"); ok {
			wantDead["ingest/"+reason]++
			dead++
		}
	}
	// gRPC: one accepted, one rejected by the order's history (counted,
	// not dead-lettered), one refused as a whole (not ingested, not counted).
	o := odd{orderID: "g", sku: "A-1"}
	if got := h.submit(ctx, t, o.order()); got.reason != "accepted" {
		t.Fatalf("gRPC order: %+v", got)
	}
	wantOrders["accepted/"]++
	if got := h.submit(ctx, t, odd{orderID: "g2", refundID: "r"}.order()); got.reason != "unknown_order" {
		t.Fatalf("gRPC refund of an unknown order: %+v", got)
	}
	wantOrders["rejected/unknown_order"]++
	if got := h.submit(ctx, t, odd{orderID: "g\x00", sku: "A-1"}.order()); got.reason != "invalid" {
		t.Fatalf("gRPC order with a NUL: %+v", got)
	}

	h.deadLetters(ctx, t, dead)
	// The counters move after the commit that precedes the acks; give
	// the last batch a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		orders, dl := h.counts(t)
		if equalCounts(orders, wantOrders) && equalCounts(dl, wantDead) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("boomerang.ingest.orders = %v,\nwant %v\nboomerang.deadletters = %v,\nwant %v", orders, wantOrders, dl, wantDead)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOddInputsAgree sends the same odd inputs as JSON and protobuf over
// NATS and through gRPC SubmitOrders, on SQLite and PostgreSQL, and expects
// the same outcome on every path: a bad field is InvalidArgument naming it
// over gRPC and a dead letter with reason invalid naming it on the bus.
func TestOddInputsAgree(t *testing.T) {
	tests := []struct {
		name string
		in   odd
		want outcome
		// unsendable: a gRPC client cannot encode the order (protobuf
		// strings must be UTF-8), so only the bus can carry it.
		unsendable bool
	}{
		{name: "plain order", in: odd{orderID: "plain", sku: "A-1"}, want: outcome{"accepted", ""}},
		{name: "NUL in order id", in: odd{orderID: "nul\x00id", sku: "A-1"}, want: outcome{"invalid", "order_id"}},
		{name: "escape in sku", in: odd{orderID: "esc", sku: "A\x1b[0m"}, want: outcome{"invalid", "items[0].sku"}},
		{name: "NUL in customer id", in: odd{orderID: "cust", customerID: "c\x00", sku: "A-1"}, want: outcome{"invalid", "customer.platform_customer_id"}},
		{name: "C1 control in category", in: odd{orderID: "cat", sku: "A-1", category: "shoes\u0085"}, want: outcome{"invalid", "items[0].category"}},
		{name: "tab in discount code", in: odd{orderID: "code", sku: "A-1", code: "SAVE\t10"}, want: outcome{"invalid", "discount.codes[0]"}},
		{name: "NUL in refund id", in: odd{orderID: "plain", refundID: "r\x00"}, want: outcome{"invalid", "refund.refund_id"}},
		{name: "replacement character in order id", in: odd{orderID: "bad\uFFFDid", sku: "A-1"}, want: outcome{"invalid", "order_id"}},
		{name: "order id not UTF-8", in: odd{orderID: placeholder, sku: "A-1", raw: "\xff\xfe\xfd"}, want: outcome{"invalid", "order_id"}, unsendable: true},
		{name: "lower-case currency", in: odd{orderID: "lower", sku: "A-1", currency: "usd"}, want: outcome{"invalid", "currency"}},
		{name: "lower-case country", in: odd{orderID: "country", sku: "A-1", country: "jp"}, want: outcome{"invalid", "customer.country"}},
		{name: "unknown currency", in: odd{orderID: "zzz", sku: "A-1", currency: "ZZZ"}, want: outcome{"unknown_currency", ""}},
	}
	paths := []string{"json", "protobuf", "grpc"}
	for _, db := range testkit.Databases("ingest.db") {
		t.Run(db.Name, func(t *testing.T) {
			h := start(t, db.URL(t), nil)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			// Each path gets its own order ids, so none is a duplicate of another's.
			suffix := func(o odd, path string) odd {
				if o.raw != "" {
					o.raw += "-" + path
					o.raw += strings.Repeat("x", len(placeholder)-len(o.raw))
				} else {
					o.orderID += "-" + path
				}
				return o
			}
			got := map[string]outcome{} // test name/path → outcome
			seqs := map[uint64]string{} // bus message's stream sequence → test name/path
			ids := map[string]string{}  // bus message's order id → test name/path
			bus := 0
			for _, tt := range tests {
				for _, path := range paths[:2] {
					in := suffix(tt.in, path)
					msg := &nats.Msg{Subject: "boomerang.ingest.orders." + source, Header: nats.Header{}}
					if path == "json" {
						msg.Data = in.json(t)
						msg.Header.Set("Content-Type", "application/json")
					} else {
						msg.Data = in.protobuf(t)
						msg.Header.Set("Content-Type", "application/protobuf")
					}
					ack, err := h.js.PublishMsg(ctx, msg)
					if err != nil {
						t.Fatal(err)
					}
					seqs[ack.Sequence] = tt.name + "/" + path
					if tt.in.refundID == "" {
						ids[in.orderID] = tt.name + "/" + path
					}
					bus++
				}
				if tt.unsendable {
					continue
				}
				got[tt.name+"/grpc"] = h.submit(ctx, t, suffix(tt.in, "grpc").order())
			}
			for k, v := range h.busOutcomes(ctx, t, seqs, ids, bus) {
				got[k] = v
			}
			for _, tt := range tests {
				for _, path := range paths {
					if path == "grpc" && tt.unsendable {
						continue
					}
					g, ok := got[tt.name+"/"+path]
					if !ok {
						t.Errorf("%s over %s: no outcome", tt.name, path)
						continue
					}
					if g.reason != tt.want.reason || !strings.HasSuffix(g.field, tt.want.field) {
						t.Errorf("%s over %s: got %+v, want %+v", tt.name, path, g, tt.want)
					}
				}
			}

			// GetOrder with an id no order can have is the caller's error.
			_, err := h.client.GetOrder(ctx, &ingestv1.GetOrderRequest{Source: source, OrderId: "nul\x00id-json"})
			if code := status.Code(err); code != codes.InvalidArgument {
				t.Errorf("GetOrder with a NUL in the id: %v, want InvalidArgument", err)
			} else if f := violatedFields(err); len(f) != 1 || f[0] != "order_id" {
				t.Errorf("GetOrder violations %v, want [order_id]", f)
			}
			if _, err := h.client.GetOrder(ctx, &ingestv1.GetOrderRequest{Source: source, OrderId: "plain-grpc"}); err != nil {
				t.Errorf("GetOrder of an accepted order: %v", err)
			}
		})
	}
}

func equalCounts(got, want map[string]int64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// submit sends one order through SubmitOrders and reads its outcome.
func (h *harness) submit(ctx context.Context, t *testing.T, o *ingestv1.Order) outcome {
	t.Helper()
	resp, err := h.client.SubmitOrders(ctx, &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{o}})
	if err != nil {
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("SubmitOrders %q: %v", o.GetOrderId(), err)
		}
		fields := violatedFields(err)
		if len(fields) == 0 {
			t.Fatalf("SubmitOrders %q: InvalidArgument without field violations: %v", o.GetOrderId(), err)
		}
		return outcome{"invalid", strings.TrimPrefix(fields[0], "orders[0].")}
	}
	r := resp.GetResults()[0]
	switch r.GetOutcome() {
	case ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED:
		return outcome{"accepted", ""}
	case ingestv1.OrderOutcome_ORDER_OUTCOME_REJECTED:
		return outcome{r.GetReason(), ""}
	}
	t.Fatalf("SubmitOrders %q: outcome %v", o.GetOrderId(), r.GetOutcome())
	return outcome{}
}

func violatedFields(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				fields = append(fields, fv.GetField())
			}
		}
	}
	return fields
}

// busOutcomes waits until each of n bus messages became a dead letter or a
// canonical event and returns their outcomes by name. A dead letter's field
// is the first field path its error names.
func (h *harness) busOutcomes(ctx context.Context, t *testing.T, seqs map[uint64]string, ids map[string]string, n int) map[string]outcome {
	t.Helper()
	out := map[string]outcome{}
	dead, err := h.js.OrderedConsumer(ctx, "DEADLETTER", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	orders, err := h.js.OrderedConsumer(ctx, "ORDERS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		if m, err := dead.Next(jetstream.FetchMaxWait(100 * time.Millisecond)); err == nil {
			seq, _ := strconv.ParseUint(m.Headers().Get("Boomerang-Original-Sequence"), 10, 64)
			name, ok := seqs[seq]
			if !ok {
				t.Fatalf("dead letter of an unknown message %d: %v", seq, m.Headers())
			}
			field, _, _ := strings.Cut(m.Headers().Get("Boomerang-Error"), ":")
			o := outcome{m.Headers().Get("Boomerang-Reason"), field}
			if o.reason != "invalid" {
				o.field = ""
			}
			out[name] = o
		}
		if m, err := orders.Next(jetstream.FetchMaxWait(100 * time.Millisecond)); err == nil {
			ev := &ordersv1.OrderEvent{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				t.Fatal(err)
			}
			if name, ok := ids[ev.GetOrderId()]; ok {
				out[name] = outcome{"accepted", ""}
			}
		}
	}
	if len(out) < n {
		t.Fatalf("%d of %d bus messages settled within 30s: %v", len(out), n, out)
	}
	return out
}

// deadLetters waits until the DEADLETTER stream holds n messages.
func (h *harness) deadLetters(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := h.js.Stream(ctx, "DEADLETTER")
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs >= uint64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("DEADLETTER holds %d messages after 20s, want %d", info.State.Msgs, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// counts reads boomerang.ingest.orders by "outcome/reason" and
// boomerang.deadletters by "service/reason".
func (h *harness) counts(t *testing.T) (orders, dead map[string]int64) {
	t.Helper()
	return testkit.Counter(t, h.reader, "boomerang.ingest.orders", "outcome", "reason"),
		testkit.Counter(t, h.reader, "boomerang.deadletters", "service", "reason")
}
