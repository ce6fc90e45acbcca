package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// quoteProgramme excludes everything it can and has a campaign on a
// category and one on a channel, so that every part of an order's facts
// counts.
const quoteProgramme = `
base_currency: EUR
earn: {exclude: [shipping, tax, gift_cards]}
tiers:
  levels:
    - {name: Bronze, min_spend: "0"}
    - {name: Silver, min_spend: "90.00", multiplier: "2"}
campaigns:
  - {id: shoes, categories: [shoes], multiplier: "1.5"}
  - {id: app, channels: [app], bonus: 15}
bonuses: {first_order: 20}
`

// TestQuoteAgreesWithEarnedPoints: what QuoteOrder says an order earns is
// what the ledger awards once the same order has gone through order-ingest
// over gRPC, for orders in other currencies than the base, with discounts,
// shipping, tax and gift-card lines.
func TestQuoteAgreesWithEarnedPoints(t *testing.T) {
	file := filepath.Join(t.TempDir(), "programme.yaml")
	if err := os.WriteFile(file, []byte(quoteProgramme), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPlatform(t, t.TempDir(), map[string]string{
		"LEDGER_PROGRAMME_FILE": file,
		"BOOMERANG_API_TOKENS":  writerToken + ":ingest:write,ingest:read,ledger:read",
	})
	ledgerEvents := p.reader(t, "LEDGER")
	ctx := context.Background()
	ledger, ingest := ledgerv1.NewLedgerServiceClient(p.conn), ingestv1.NewIngestServiceClient(p.conn)

	at := timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	money := func(minor int64, currency string) *commonv1.Money {
		return &commonv1.Money{MinorUnits: minor, Currency: currency}
	}
	item := func(sku, category string, quantity, price int64, currency string, giftCard bool) *ingestv1.LineItemInput {
		return &ingestv1.LineItemInput{Sku: sku, Category: category, Quantity: quantity, UnitPrice: money(price, currency), GiftCard: giftCard}
	}
	orders := []*ingestv1.Order{{
		// USD at 0.9, amounts that do not convert to whole cents.
		OrderId: "Q-USD", Total: money(123_45, "USD"), Shipping: money(7_77, "USD"), Tax: money(9_99, "USD"),
		Items: []*ingestv1.LineItemInput{item("S1", "shoes", 2, 33_33, "USD", false), item("T1", "tops", 1, 39_33, "USD", false)},
	}, {
		// JPY (no minor unit) in the app, a gift card and a discount.
		OrderId: "Q-JPY", Channel: "app", Total: money(18_500, "JPY"), Shipping: money(500, "JPY"),
		Discount: &ingestv1.DiscountInput{Codes: []string{"AUTUMN"}, Amount: money(2_000, "JPY")},
		Items:    []*ingestv1.LineItemInput{item("G1", "gift", 1, 5_000, "JPY", true), item("S2", "shoes", 1, 15_000, "JPY", false)},
	}, {
		// Base currency: a discount that leaves less than the shoe lines
		// are worth, and a gift card of shoes.
		OrderId: "Q-EUR", Total: money(60_00, "EUR"), Tax: money(10_00, "EUR"),
		Discount: &ingestv1.DiscountInput{Codes: []string{"HALF"}, Amount: money(60_00, "EUR")},
		Items:    []*ingestv1.LineItemInput{item("S3", "shoes", 2, 50_00, "EUR", false), item("G2", "shoes", 1, 20_00, "EUR", true)},
	}}
	for i, o := range orders {
		o.Source, o.Kind, o.OccurredAt = "shop", ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, at
		o.Customer = &ingestv1.CustomerInput{Email: strings.ToLower(o.OrderId) + "@example.com"}
		t.Run(o.OrderId, func(t *testing.T) {
			// A new customer: no id to quote for, Bronze and a first order
			// for the ledger too.
			q, err := ledger.QuoteOrder(ctx, &ledgerv1.QuoteOrderRequest{Order: o})
			if err != nil {
				t.Fatal(err)
			}
			if q.GetPoints() <= 20 {
				t.Fatalf("quote %d (%v): the order should earn more than the first-order bonus", q.GetPoints(), q.GetBreakdown())
			}
			res, err := ingest.SubmitOrders(ctx, &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{o}})
			if err != nil {
				t.Fatal(err)
			}
			r := res.GetResults()[0]
			if r.GetOutcome() != ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED {
				t.Fatalf("order %d: %v, want accepted", i, r)
			}
			for {
				m := ledgerEvents.next(t)
				if !strings.HasPrefix(m.Subject(), "boomerang.ledger.v1.earned."+r.GetCustomerId()) {
					continue
				}
				ev := &ledgerv1.LedgerEvent{}
				if err := proto.Unmarshal(m.Data(), ev); err != nil {
					t.Fatal(err)
				}
				if got := ev.GetEarned().GetPoints(); got != q.GetPoints() {
					t.Errorf("earned %d, quoted %d (%v)", got, q.GetPoints(), q.GetBreakdown())
				}
				break
			}
		})
	}
}
