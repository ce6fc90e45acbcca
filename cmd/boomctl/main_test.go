package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// result is what one boomctl invocation left behind.
type result struct {
	code           int
	stdout, stderr string
}

// boomctl runs the command line in-process with env as its only
// environment, so the developer's BOOMCTL_* variables never leak in.
func boomctl(tb testing.TB, ctx context.Context, env map[string]string, stdin string, args ...string) result {
	tb.Helper()
	var out, errb bytes.Buffer
	a := newApp(config.Map(env), &out, &errb)
	root := a.rootCommand()
	root.SetIn(strings.NewReader(stdin))
	code := a.executeCommand(ctx, root, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// fakeIngest records what the CLI sends and answers as told. It stands in
// for order-ingest to test the CLI's requests and output, not ingest.
type fakeIngest struct {
	ingestv1.UnimplementedIngestServiceServer

	mu     sync.Mutex
	submit []*ingestv1.SubmitOrdersRequest
	get    []*ingestv1.GetOrderRequest
	auth   []string

	submitReply func(*ingestv1.SubmitOrdersRequest) (*ingestv1.SubmitOrdersResponse, error)
	getReply    func(*ingestv1.GetOrderRequest) (*ingestv1.GetOrderResponse, error)
}

func (f *fakeIngest) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.auth = append(f.auth, strings.Join(md.Get("authorization"), ","))
}

func (f *fakeIngest) SubmitOrders(ctx context.Context, req *ingestv1.SubmitOrdersRequest) (*ingestv1.SubmitOrdersResponse, error) {
	f.mu.Lock()
	f.record(ctx)
	f.submit = append(f.submit, req)
	f.mu.Unlock()
	if f.submitReply == nil {
		return nil, status.Error(codes.Unimplemented, "the test expects no SubmitOrders")
	}
	return f.submitReply(req)
}

func (f *fakeIngest) GetOrder(ctx context.Context, req *ingestv1.GetOrderRequest) (*ingestv1.GetOrderResponse, error) {
	f.mu.Lock()
	f.record(ctx)
	f.get = append(f.get, req)
	f.mu.Unlock()
	if f.getReply == nil {
		return nil, status.Error(codes.Unimplemented, "the test expects no GetOrder")
	}
	return f.getReply(req)
}

func startFake(tb testing.TB, f *fakeIngest) string {
	tb.Helper()
	s := grpc.NewServer()
	ingestv1.RegisterIngestServiceServer(s, f)
	return testkit.GRPC(tb, s)
}

// acceptAll accepts every order, rejecting those whose id starts with "bad".
func acceptAll(req *ingestv1.SubmitOrdersRequest) (*ingestv1.SubmitOrdersResponse, error) {
	resp := &ingestv1.SubmitOrdersResponse{}
	for i, o := range req.GetOrders() {
		r := &ingestv1.OrderResult{OrderId: o.GetOrderId(), Outcome: ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED,
			EventId: "evt-" + o.GetOrderId(), CustomerId: "cus_1"}
		if strings.HasPrefix(o.GetOrderId(), "bad") {
			r = &ingestv1.OrderResult{OrderId: o.GetOrderId(), Outcome: ingestv1.OrderOutcome_ORDER_OUTCOME_REJECTED,
				Reason: "unknown_order", Message: "no such order"}
		}
		if i == 1 && !strings.HasPrefix(o.GetOrderId(), "bad") {
			r.Outcome = ingestv1.OrderOutcome_ORDER_OUTCOME_DUPLICATE
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// invalidArgument fails the way Boomerang's validation interceptor does.
func invalidArgument(*ingestv1.SubmitOrdersRequest) (*ingestv1.SubmitOrdersResponse, error) {
	violations := []grpcx.FieldViolation{
		{Field: "orders[0].total", Description: "total is required for placed and paid events"},
		{Field: "orders[0].customer.email", Description: "must be an e-mail address"},
	}
	return nil, grpcx.InvalidArgument("invalid request: "+grpcx.Summary(violations), violations)
}

func TestSubmit(t *testing.T) {
	ctx := context.Background()
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ordersFile := filepath.Join(t.TempDir(), "orders.json")
	if err := os.WriteFile(ordersFile, []byte(`{"orders":[{"source":"s","orderId":"f1","kind":"ORDER_EVENT_KIND_CANCELLED","occurredAt":"2026-11-01T10:00:00Z"},{"source":"s","orderId":"f2","kind":"ORDER_EVENT_KIND_CANCELLED","occurredAt":"2026-11-01T10:00:00Z"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--source", "shop-eu", "--order-id", "1001", "--currency", "EUR", "--total", "120.00",
		"--item", "SHOE-1:shoes:2:50.00", "--email", "ada@example.com", "--occurred-at", "2026-11-01T10:00:00Z"}
	wantFromFlags := &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{{
		Source: "shop-eu", OrderId: "1001", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
		OccurredAt: timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)),
		Total:      &commonv1.Money{MinorUnits: 12000, Currency: "EUR"},
		Customer:   &ingestv1.CustomerInput{Email: "ada@example.com"},
		Items:      []*ingestv1.LineItemInput{{Sku: "SHOE-1", Category: "shoes", Quantity: 2, UnitPrice: &commonv1.Money{MinorUnits: 5000, Currency: "EUR"}}},
	}}}

	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		stdin      string
		reply      func(*ingestv1.SubmitOrdersRequest) (*ingestv1.SubmitOrdersResponse, error)
		wantCode   int
		wantSent   *ingestv1.SubmitOrdersRequest // nil: nothing may be sent
		wantAuth   string
		wantStdout []string
		wantStderr []string
	}{
		{
			name:  "from flags, token flag",
			args:  append([]string{"--token", "flag-token", "orders", "submit"}, flags...),
			reply: acceptAll, wantCode: exitOK, wantSent: wantFromFlags, wantAuth: "Bearer flag-token",
			wantStdout: []string{"ORDER", "OUTCOME", "1001", "accepted", "evt-1001", "cus_1"},
		},
		{
			name:  "token from the environment wins over the file",
			env:   map[string]string{"BOOMCTL_TOKEN": "env-token"},
			args:  append([]string{"--token-file", tokenFile, "orders", "submit"}, flags...),
			reply: acceptAll, wantCode: exitOK, wantSent: wantFromFlags, wantAuth: "Bearer env-token",
		},
		{
			name:  "token from the file",
			args:  append([]string{"--token-file", tokenFile, "orders", "submit"}, flags...),
			reply: acceptAll, wantCode: exitOK, wantSent: wantFromFlags, wantAuth: "Bearer file-token",
		},
		{
			name:  "json output is the response in protojson",
			args:  append([]string{"-o", "json", "orders", "submit"}, flags...),
			reply: acceptAll, wantCode: exitOK, wantSent: wantFromFlags,
			wantStdout: []string{`"outcome": "ORDER_OUTCOME_ACCEPTED"`, `"eventId": "evt-1001"`},
		},
		{
			name: "rejection exits 1 with the reason",
			args: []string{"orders", "submit", "--source", "s", "--order-id", "bad-1", "--kind", "cancelled", "--occurred-at", "2026-11-01T10:00:00Z"},
			wantSent: &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{{Source: "s", OrderId: "bad-1",
				Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED, OccurredAt: timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))}}},
			reply: acceptAll, wantCode: exitFailure,
			wantStdout: []string{"bad-1", "rejected", "unknown_order: no such order"},
			wantStderr: []string{"1 of 1 orders rejected"},
		},
		{
			name:  "file from stdin, duplicate is not a failure",
			args:  []string{"orders", "submit", "--file", "-"},
			stdin: `{"source":"s","orderId":"f1","kind":"ORDER_EVENT_KIND_CANCELLED","occurredAt":"2026-11-01T10:00:00Z"}`,
			wantSent: &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{{Source: "s", OrderId: "f1",
				Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED, OccurredAt: timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))}}},
			reply: acceptAll, wantCode: exitOK, wantStdout: []string{"f1", "accepted"},
		},
		{
			name:  "file with a batch",
			args:  []string{"orders", "submit", "-f", ordersFile},
			reply: acceptAll, wantCode: exitOK,
			wantSent: &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{
				{Source: "s", OrderId: "f1", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED, OccurredAt: timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))},
				{Source: "s", OrderId: "f2", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED, OccurredAt: timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))},
			}},
			wantStdout: []string{"f1", "accepted", "f2", "duplicate"},
		},
		{
			name:  "invalid argument prints each field violation",
			args:  append([]string{"orders", "submit"}, flags...),
			reply: invalidArgument, wantCode: exitFailure, wantSent: wantFromFlags,
			wantStderr: []string{
				"boomctl: SubmitOrders: InvalidArgument: invalid request\n",
				"\n  orders[0].total: total is required for placed and paid events\n",
				"\n  orders[0].customer.email: must be an e-mail address\n",
			},
		},
		{
			name:     "bad amount is a usage error and sends nothing",
			args:     []string{"orders", "submit", "--source", "s", "--order-id", "1", "--currency", "EUR", "--total", "12.345"},
			wantCode: exitUsage, wantStderr: []string{"--total: more decimal places than the currency allows", "Run 'boomctl orders submit --help'"},
		},
		{
			name:     "file and order flags do not mix",
			args:     []string{"orders", "submit", "--file", ordersFile, "--source", "s", "--test"},
			wantCode: exitUsage, wantStderr: []string{"--file cannot be combined with --source, --test"},
		},
		{
			name:     "missing file",
			args:     []string{"orders", "submit", "--file", filepath.Join(t.TempDir(), "nope.json")},
			wantCode: exitFailure, wantStderr: []string{"--file:", "no such file"},
		},
		{
			name:     "explicit token file that is missing",
			args:     append([]string{"--token-file", filepath.Join(t.TempDir(), "nope"), "orders", "submit"}, flags...),
			wantCode: exitFailure, wantStderr: []string{"token file:"},
		},
		{
			name:     "unknown flag",
			args:     []string{"orders", "submit", "--amount", "1"},
			wantCode: exitUsage, wantStderr: []string{"unknown flag: --amount"},
		},
		{
			name:     "bad output format",
			args:     append([]string{"-o", "yaml", "orders", "submit"}, flags...),
			wantCode: exitUsage, wantStderr: []string{`--output: want text or json, got "yaml"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeIngest{submitReply: tt.reply}
			addr := startFake(t, fake)
			got := boomctl(t, ctx, tt.env, tt.stdin, append([]string{"--addr", addr}, tt.args...)...)
			if got.code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", got.code, tt.wantCode, got.stdout, got.stderr)
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(got.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, got.stdout)
				}
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(got.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, got.stderr)
				}
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if tt.wantSent == nil {
				if len(fake.submit) != 0 {
					t.Errorf("sent %v, want nothing sent", fake.submit)
				}
				return
			}
			if len(fake.submit) != 1 {
				t.Fatalf("%d calls, want 1", len(fake.submit))
			}
			if !proto.Equal(fake.submit[0], tt.wantSent) {
				t.Errorf("sent\n %v\nwant\n %v", fake.submit[0], tt.wantSent)
			}
			if tt.wantAuth != "" && fake.auth[0] != tt.wantAuth {
				t.Errorf("authorization %q, want %q", fake.auth[0], tt.wantAuth)
			}
		})
	}
}

func TestGet(t *testing.T) {
	ctx := context.Background()
	ts := func(day int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2026, 11, day, 10, 0, 0, 0, time.UTC))
	}
	usd := func(minor int64) *commonv1.Money { return &commonv1.Money{MinorUnits: minor, Currency: "USD"} }
	order := &ingestv1.GetOrderResponse{
		Source: "shop-us", OrderId: "A-1", CustomerId: "cus_1", Status: ingestv1.OrderStatus_ORDER_STATUS_PARTIALLY_REFUNDED,
		Total: usd(12000), BaseTotal: eur(10800), Refunded: usd(3000), BaseRefunded: eur(2700), FirstSeenAt: ts(1),
		History: []*ordersv1.OrderEvent{
			{EventId: "evt-1", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, OccurredAt: ts(1), Total: usd(12000), BaseTotal: eur(10800), OrderSequence: 1},
			{EventId: "evt-2", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, OccurredAt: ts(3), OrderSequence: 2,
				Refund: &ordersv1.Refund{RefundId: "R-1", Amount: &ordersv1.Amount{Original: usd(3000)}, RefundedTotal: &ordersv1.Amount{Original: usd(3000)}}},
		},
	}
	tests := []struct {
		name       string
		args       []string
		reply      func(*ingestv1.GetOrderRequest) (*ingestv1.GetOrderResponse, error)
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{
			name:  "text",
			args:  []string{"orders", "get", "shop-us", "A-1"},
			reply: func(*ingestv1.GetOrderRequest) (*ingestv1.GetOrderResponse, error) { return order, nil },
			wantStdout: []string{
				"Order:", "shop-us/A-1", "partially refunded", "120.00 USD (base 108.00 EUR)", "30.00 USD (base 27.00 EUR)",
				"2026-11-01T10:00:00Z", "evt-1", "paid", "evt-2", "refunded", "refund R-1 30.00 USD (refunded so far 30.00 USD)",
			},
		},
		{
			name:       "json",
			args:       []string{"--output", "json", "orders", "get", "shop-us", "A-1"},
			reply:      func(*ingestv1.GetOrderRequest) (*ingestv1.GetOrderResponse, error) { return order, nil },
			wantStdout: []string{`"status": "ORDER_STATUS_PARTIALLY_REFUNDED"`, `"refundId": "R-1"`},
		},
		{
			name: "not found",
			args: []string{"orders", "get", "shop-us", "nope"},
			reply: func(*ingestv1.GetOrderRequest) (*ingestv1.GetOrderResponse, error) {
				return nil, status.Error(codes.NotFound, "no order shop-us/nope")
			},
			wantCode:   exitFailure,
			wantStderr: []string{"boomctl: GetOrder: NotFound: no order shop-us/nope"},
		},
		{
			name: "unauthenticated gives a hint",
			args: []string{"orders", "get", "shop-us", "A-1"},
			reply: func(*ingestv1.GetOrderRequest) (*ingestv1.GetOrderResponse, error) {
				return nil, status.Error(codes.Unauthenticated, "missing token")
			},
			wantCode:   exitFailure,
			wantStderr: []string{"Unauthenticated: missing token", "hint: pass --token"},
		},
		{
			name:       "wrong number of arguments",
			args:       []string{"orders", "get", "shop-us"},
			wantCode:   exitUsage,
			wantStderr: []string{"accepts 2 arg(s), received 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeIngest{getReply: tt.reply}
			addr := startFake(t, fake)
			got := boomctl(t, ctx, nil, "", append([]string{"--addr", addr}, tt.args...)...)
			if got.code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", got.code, tt.wantCode, got.stdout, got.stderr)
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(got.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, got.stdout)
				}
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(got.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, got.stderr)
				}
			}
			if tt.wantCode == exitOK {
				fake.mu.Lock()
				defer fake.mu.Unlock()
				want := &ingestv1.GetOrderRequest{Source: "shop-us", OrderId: tt.args[len(tt.args)-1]}
				if len(fake.get) != 1 || !proto.Equal(fake.get[0], want) {
					t.Errorf("requests %v, want [%v]", fake.get, want)
				}
			}
			if tt.name == "json" {
				back := &ingestv1.GetOrderResponse{}
				if err := protojson.Unmarshal([]byte(got.stdout), back); err != nil || !proto.Equal(back, order) {
					t.Errorf("json output does not round-trip (%v):\n%s", err, got.stdout)
				}
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	// Nothing listens on the port of a server that has stopped.
	s := grpc.NewServer()
	stopped := testkit.GRPC(t, s)
	s.Stop()
	got := boomctl(t, context.Background(), nil, "", "--addr", stopped, "--timeout", "2s", "orders", "get", "a", "b")
	if got.code != exitFailure || !strings.Contains(got.stderr, "Unavailable") || !strings.Contains(got.stderr, "is Boomerang running at "+stopped) {
		t.Errorf("code %d, stderr:\n%s", got.code, got.stderr)
	}
}

func TestEnvironmentDefaults(t *testing.T) {
	tests := []struct {
		name              string
		env               map[string]string
		wantAddr, wantURL string
	}{
		{name: "runner defaults", wantAddr: defaultAddr, wantURL: defaultNATSURL},
		{name: "from the environment", env: map[string]string{"BOOMCTL_ADDR": "boomerang:7443", "NATS_URL": "nats://nats:4222"},
			wantAddr: "boomerang:7443", wantURL: "nats://nats:4222"},
		{name: "blank values ignored", env: map[string]string{"BOOMCTL_ADDR": " ", "NATS_URL": ""}, wantAddr: defaultAddr, wantURL: defaultNATSURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newApp(config.Map(tt.env), &bytes.Buffer{}, &bytes.Buffer{})
			root := a.rootCommand()
			if got := root.PersistentFlags().Lookup("addr").DefValue; got != tt.wantAddr {
				t.Errorf("--addr default %q, want %q", got, tt.wantAddr)
			}
			follow, _, err := root.Find([]string{"events", "follow"})
			if err != nil {
				t.Fatal(err)
			}
			if got := follow.Flags().Lookup("nats").DefValue; got != tt.wantURL {
				t.Errorf("--nats default %q, want %q", got, tt.wantURL)
			}
		})
	}
}
