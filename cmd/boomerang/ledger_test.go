package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

// ledgerProgramme's orders are dated November 2026 at fixed rates: the
// history setting keeps them live (not historic) for ten years after.
const ledgerProgramme = `
base_currency: EUR
history: {historic_after_days: 3650}
earn: {exclude: [shipping]}
tiers:
  levels:
    - {name: Bronze, min_spend: "0"}
    - {name: Silver, min_spend: "90.00", multiplier: "2"}
campaigns:
  - {id: shoes, categories: [shoes], multiplier: "1.5"}
bonuses: {first_order: 20}
rewards:
  - {id: mug, name: Mug, cost: 50}
`

// TestLedgerEndToEnd: a shop's order goes in through NATS, its points come
// out of the ledger over gRPC and as events on the LEDGER stream, in the
// order's trace; a refund claws back; QuoteOrder agrees with the rules.
func TestLedgerEndToEnd(t *testing.T) {
	file := filepath.Join(t.TempDir(), "programme.yaml")
	if err := os.WriteFile(file, []byte(ledgerProgramme), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPlatform(t, t.TempDir(), map[string]string{
		"LEDGER_PROGRAMME_FILE": file,
		"BOOMERANG_API_TOKENS":  writerToken + ":ingest:write,ingest:read,ledger:read,ledger:write;" + readerToken + ":ingest:read",
	})
	orders, ledgerEvents := p.reader(t, "ORDERS"), p.reader(t, "LEDGER")
	ctx := context.Background()
	client := ledgerv1.NewLedgerServiceClient(p.conn)

	// USD 120.00 with 10.00 shipping = EUR 99.00 eligible (rate 0.9), of
	// which EUR 45.00 of shoes: 99 base + 22 shoe campaign + 20 first order.
	traceID := "0af7651916cd43dd8448eb211c80319c"
	h := nats.Header{}
	h.Set("traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	p.publish(t, "boomerang.ingest.orders.shop", `{"order_id": "L-1", "occurred_at": "2026-11-01T10:00:00Z",
	  "currency": "USD", "total": "120.00", "shipping": "10.00", "customer": {"email": "lee@example.com"},
	  "items": [{"sku": "S1", "category": "shoes", "quantity": 1, "price": "50.00"}, {"sku": "T1", "category": "tops", "quantity": 1, "price": "60.00"}]}`, h)
	customer := decodeEvent(t, orders.next(t)).GetCustomerId()

	m := ledgerEvents.next(t)
	ev := &ledgerv1.LedgerEvent{}
	if err := proto.Unmarshal(m.Data(), ev); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Subject(), "boomerang.ledger.v1.earned."+customer) || ev.GetEarned().GetPoints() != 141 {
		t.Fatalf("first ledger event %s %v, want 141 points earned", m.Subject(), ev)
	}
	if got := m.Headers().Get("traceparent"); !strings.Contains(got, traceID) {
		t.Errorf("ledger event traceparent %q does not continue the order's trace %s", got, traceID)
	}
	// Qualifying spend is the eligible value, EUR 99.00: Silver at once
	// (the order itself earned at Bronze).
	if m := ledgerEvents.next(t); !strings.HasPrefix(m.Subject(), "boomerang.ledger.v1.tier_changed.") {
		t.Errorf("second ledger event on %s, want the upgrade to Silver", m.Subject())
	}
	acct := waitBalance(t, client, customer, 141)
	if acct.GetTier().GetName() != "Silver" || acct.GetTier().GetQualifyingSpend().GetMinorUnits() != 99_00 {
		t.Errorf("tier %s, qualifying spend %v; want Silver, 99.00", acct.GetTier().GetName(), acct.GetTier().GetQualifyingSpend())
	}

	// QuoteOrder: EUR 100.00 for this (now Silver, repeat) customer.
	q, err := client.QuoteOrder(ctx, &ledgerv1.QuoteOrderRequest{CustomerId: customer, Order: &ingestv1.Order{
		Source: "shop", OrderId: "Q-1", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
		OccurredAt: timestamppb.New(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)),
		Total:      &commonv1.Money{MinorUnits: 100_00, Currency: "EUR"},
		Customer:   &ingestv1.CustomerInput{Email: "lee@example.com"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if q.GetPoints() != 200 {
		t.Errorf("quote %d (%v), want 200", q.GetPoints(), q.GetBreakdown())
	}

	// A refund of half the order (EUR 54.00 of 108.00) claws back half of
	// the proportional points: (99 + 22) / 2 = 60.5, rounded down; the
	// first-order bonus stays until the order is refunded in full.
	p.publish(t, "boomerang.ingest.orders.shop", `{"order_id": "L-1", "kind": "refunded", "occurred_at": "2026-11-03T10:00:00Z",
	  "refund": {"id": "R-1", "amount": "60.00", "currency": "USD"}}`, nil)
	waitBalance(t, client, customer, 141-60)

	// Redeeming more than the balance changes nothing.
	_, err = client.Redeem(ctx, &ledgerv1.RedeemRequest{CustomerId: customer, IdempotencyKey: "k1", Points: 1000})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("overdraw: %v, want FailedPrecondition", err)
	}
	// A reader token may not redeem.
	reader, err := grpcx.Dial(p.m.GRPCAddr(), grpcx.ClientOptions{Token: readerToken})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	_, err = ledgerv1.NewLedgerServiceClient(reader).Redeem(ctx, &ledgerv1.RedeemRequest{CustomerId: customer, IdempotencyKey: "k2", RewardId: "mug"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("redeem with a read token: %v, want PermissionDenied", err)
	}
	r, err := client.Redeem(ctx, &ledgerv1.RedeemRequest{CustomerId: customer, IdempotencyKey: "k3", RewardId: "mug"})
	if err != nil || r.GetBalance() != 81-50 {
		t.Fatalf("redeem a mug: %v %v", r, err)
	}
	if err := p.m.Ledger.Store().Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitBalance(tb testing.TB, c ledgerv1.LedgerServiceClient, customer string, want int64) *ledgerv1.GetAccountResponse {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		a, err := c.GetAccount(context.Background(), &ledgerv1.GetAccountRequest{CustomerId: customer})
		if err == nil && a.GetBalance() == want {
			return a
		}
		if time.Now().After(deadline) {
			tb.Fatalf("balance of %s: %v %v, want %d", customer, a, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
