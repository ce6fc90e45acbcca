package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform"
	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform/platformtest"
	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// startPlatform runs the single-process Boomerang on free ports with its
// defaults otherwise: no BOOMERANG_API_TOKENS, so it writes the admin token
// to dataDir/admin.token as `make run` does.
func startPlatform(tb testing.TB, dataDir string) *platform.Main {
	tb.Helper()
	return platformtest.Start(tb, dataDir, map[string]string{"INGEST_WAIT_FOR_ORDER": "0s"})
}

// TestAgainstPlatform drives boomctl against the real single-process
// Boomerang: submit, duplicates, rejections, validation errors, get, and
// following the canonical events it published.
func TestAgainstPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole platform")
	}
	dataDir := t.TempDir()
	m := startPlatform(t, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := []string{"--addr", m.GRPCAddr(), "--token-file", filepath.Join(dataDir, "admin.token")}
	cli := func(args ...string) result {
		t.Helper()
		return boomctl(t, ctx, nil, "", append(append([]string{}, conn...), args...)...)
	}
	submitted := func(r result) *ingestv1.OrderResult {
		t.Helper()
		resp := &ingestv1.SubmitOrdersResponse{}
		if err := protojson.Unmarshal([]byte(r.stdout), resp); err != nil || len(resp.GetResults()) != 1 {
			t.Fatalf("submit output (%v):\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
		}
		return resp.GetResults()[0]
	}
	paid := []string{"-o", "json", "orders", "submit", "--source", "shop-us", "--order-id", "A-1",
		"--occurred-at", "2026-11-01T10:00:00Z", "--currency", "USD", "--total", "120.00", "--shipping", "10.00",
		"--discount-code", "BF20", "--discount", "20.00", "--email", "ann@example.com", "--channel", "web",
		"--item", "SHOE-1:shoes:2:55.00"}

	r := cli(paid...)
	first := submitted(r)
	if r.code != exitOK || first.GetOutcome() != ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED || first.GetEventId() == "" || first.GetCustomerId() == "" {
		t.Fatalf("paid: code %d, %v\n%s", r.code, first, r.stderr)
	}

	r = cli(paid...)
	if again := submitted(r); r.code != exitOK || again.GetOutcome() != ingestv1.OrderOutcome_ORDER_OUTCOME_DUPLICATE || again.GetEventId() != first.GetEventId() {
		t.Errorf("same order again: code %d, %v; want a duplicate of %s", r.code, again, first.GetEventId())
	}

	r = cli("orders", "submit", "--source", "shop-us", "--order-id", "A-1", "--kind", "refunded",
		"--occurred-at", "2026-11-03T10:00:00Z", "--currency", "USD", "--refund-id", "R-1", "--refund", "30.00")
	if r.code != exitOK || !strings.Contains(r.stdout, "accepted") {
		t.Errorf("refund: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = cli("orders", "submit", "--source", "shop-us", "--order-id", "A-1", "--kind", "refunded",
		"--occurred-at", "2026-11-04T10:00:00Z", "--currency", "USD", "--refund-id", "R-2", "--refund", "500.00")
	if r.code != exitFailure || !strings.Contains(r.stdout, "rejected") || !strings.Contains(r.stdout, "refund_exceeds_remaining") ||
		!strings.Contains(r.stderr, "1 of 1 orders rejected") {
		t.Errorf("refund beyond the rest: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A paid order without a total or customer breaks the .proto rules:
	// the whole call fails with field violations, one per line.
	r = cli("orders", "submit", "--source", "shop-us", "--order-id", "A-2")
	if r.code != exitFailure || !strings.Contains(r.stderr, "SubmitOrders: InvalidArgument:") ||
		!strings.Contains(r.stderr, "\n  orders[0]: total is required for placed and paid events\n") {
		t.Errorf("invalid order: code %d\nstderr:\n%s", r.code, r.stderr)
	}

	r = cli("orders", "get", "shop-us", "A-1")
	for _, want := range []string{
		"shop-us/A-1", first.GetCustomerId(), "partially refunded", "120.00 USD (base 108.00 EUR)", "30.00 USD (base 27.00 EUR)",
		first.GetEventId(), "refund R-1 30.00 USD (refunded so far 30.00 USD)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get lacks %q:\n%s%s", want, r.stdout, r.stderr)
		}
	}

	r = cli("orders", "get", "shop-us", "nope")
	if r.code != exitFailure || !strings.Contains(r.stderr, "GetOrder: NotFound") {
		t.Errorf("unknown order: code %d\n%s", r.code, r.stderr)
	}

	r = boomctl(t, ctx, nil, "", "--addr", m.GRPCAddr(), "--token", "wrong", "orders", "get", "shop-us", "A-1")
	if r.code != exitFailure || !strings.Contains(r.stderr, "Unauthenticated") {
		t.Errorf("wrong token: code %d\n%s", r.code, r.stderr)
	}

	// The canonical events reach the ORDERS stream through the outbox
	// relay; follow finds the stream by subject and decodes them.
	// The bus asks for a user: an anonymous follow is refused, the
	// operator's password (here from NATS_PASSWORD) lets it in.
	r = boomctl(t, ctx, nil, "", "events", "follow", "boomerang.orders.v1.>", "--from", "all", "--limit", "2", "--nats", m.NATSURL())
	if r.code != exitFailure || !strings.Contains(r.stderr, "Authorization Violation") {
		t.Errorf("anonymous follow: code %d\n%s", r.code, r.stderr)
	}
	natsEnv := map[string]string{"NATS_PASSWORD": m.NATSCredentials(busauth.Admin).Password}
	r = boomctl(t, ctx, natsEnv, "", "-o", "json", "events", "follow", "boomerang.orders.v1.>", "--from", "all", "--limit", "2", "--nats", m.NATSURL())
	if r.code != exitOK {
		t.Fatalf("follow: code %d\n%s", r.code, r.stderr)
	}
	var kinds []ordersv1.OrderEventKind
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var fm followedMessage
		if err := json.Unmarshal([]byte(line), &fm); err != nil {
			t.Fatalf("follow line %q: %v", line, err)
		}
		ev := &ordersv1.OrderEvent{}
		if err := protojson.Unmarshal(fm.Payload, ev); err != nil {
			t.Fatalf("payload of %s: %v", fm.Subject, err)
		}
		if ev.GetCustomerId() != first.GetCustomerId() || fm.Headers["Nats-Msg-Id"] != ev.GetEventId() {
			t.Errorf("event %v with headers %v", ev, fm.Headers)
		}
		kinds = append(kinds, ev.GetKind())
	}
	want := []ordersv1.OrderEventKind{ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED}
	if len(kinds) != 2 || kinds[0] != want[0] || kinds[1] != want[1] {
		t.Errorf("followed %v, want %v", kinds, want)
	}
}
