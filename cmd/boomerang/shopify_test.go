package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"
)

// shopifyTestdata is where order-ingest keeps Shopify's payloads, written
// for this project from Shopify's published formats.
const shopifyTestdata = "../../services/ingest/internal/webhook/testdata/shopify"

// TestShopifyEndToEnd: Shopify's signed webhooks reach the running process
// over HTTP and become canonical events in the customer's currency with
// the shop money the seller received, points and a profile; a refund that
// an order update repeats claws back once; a privacy request is taken and
// makes no event; a forged delivery is refused.
func TestShopifyEndToEnd(t *testing.T) {
	const secret = "shpss_end-to-end-0123456789abcdef"
	p, base := startWebhooks(t, "ledger:read,segmentation:read", "northwind", "shopify", secret)
	orders := p.reader(t, "ORDERS")
	url := base + "/webhooks/shopify/northwind"
	post := func(topic, id string, body []byte, key string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write(body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Shopify-Topic", topic)
		req.Header.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		req.Header.Set("X-Shopify-Shop-Domain", "northwind-eu.myshopify.com")
		req.Header.Set("X-Shopify-Webhook-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(shopifyTestdata, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	paid := read("orders-paid-multicurrency.json")
	if got := post("orders/paid", "wh-1", paid, "not-the-app-secret-0123456789"); got != http.StatusUnauthorized {
		t.Fatalf("forged delivery: status %d, want 401", got)
	}
	if got := post("orders/paid", "wh-1", paid, secret); got != http.StatusAccepted {
		t.Fatalf("orders/paid: status %d, want 202", got)
	}
	// The customer paid 110.00 USD; the EUR shop received 99.00, which is
	// the order's base value, not the table's 0.9 × 110.00.
	if ev := decodeEvent(t, orders.next(t)); ev.GetKind() != ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED {
		t.Fatalf("first event %v, want placed", ev.GetKind())
	}
	ev := decodeEvent(t, orders.next(t))
	if ev.GetKind() != ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID || ev.GetSource() != "northwind" || ev.GetOrderId() != "5678901234567890123" ||
		ev.GetTotal().GetMinorUnits() != 110_00 || ev.GetTotal().GetCurrency() != "USD" ||
		ev.GetBaseTotal().GetMinorUnits() != 99_00 || ev.GetSettledTotal().GetMinorUnits() != 99_00 || ev.GetShipping().GetBase().GetMinorUnits() != 9_00 {
		t.Fatalf("paid event: %v", ev)
	}
	customer := ev.GetCustomerId()

	// Shipping is excluded: 99.00 − 9.00 = 90 points, and 20 for the
	// first order.
	client := ledgerv1.NewLedgerServiceClient(p.conn)
	waitBalance(t, client, customer, 90+20)

	// One tee returned: 30.00 USD of 110.00, so 27.00 EUR of the 99.00,
	// and 90 × 27 / 99 = 24.5 of the proportional points, rounded down.
	if got := post("refunds/create", "wh-2", read("refunds-create.json"), secret); got != http.StatusAccepted {
		t.Fatalf("refunds/create: status %d, want 202", got)
	}
	ev = decodeEvent(t, orders.next(t))
	if ev.GetKind() != ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED || ev.GetRefund().GetAmount().GetBase().GetMinorUnits() != 27_00 {
		t.Fatalf("refund event: %v", ev)
	}
	acct := waitBalance(t, client, customer, 90+20-24)

	// Shopify's order update repeats the refund: nothing new.
	updated := strings.NewReplacer(
		`"financial_status": "paid"`, `"financial_status": "partially_refunded"`,
		`"current_total_price_set": {"shop_money": {"amount": "99.00", "currency_code": "EUR"}, "presentment_money": {"amount": "110.00", "currency_code": "USD"}}`,
		`"current_total_price_set": {"shop_money": {"amount": "72.00", "currency_code": "EUR"}, "presentment_money": {"amount": "80.00", "currency_code": "USD"}}`,
		`"refunds": []`, `"refunds": [`+string(read("refunds-create.json"))+`]`,
	).Replace(string(paid))
	if got := post("orders/updated", "wh-3", []byte(updated), secret); got != http.StatusAccepted {
		t.Fatalf("orders/updated: status %d, want 202", got)
	}
	// A privacy request is captured and makes no order event.
	if got := post("customers/redact", "wh-4", read("customers-redact.json"), secret); got != http.StatusAccepted {
		t.Fatalf("customers/redact: status %d, want 202", got)
	}
	orders.none(t, 2*time.Second)
	if again := waitBalance(t, client, customer, 90+20-24); again.GetBalance() != acct.GetBalance() {
		t.Fatalf("balance %d after the update, want %d", again.GetBalance(), acct.GetBalance())
	}

	// Segmentation sees one order of 99.00 EUR, 27.00 of it refunded.
	seg := segmentationv1.NewSegmentationServiceClient(p.conn)
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		prof, err := seg.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: customer})
		if err == nil && prof.GetFeatures().GetRefunds() == 1 {
			if f := prof.GetFeatures(); f.GetOrders() != 1 || f.GetTotalValue().GetMinorUnits() != 72_00 {
				t.Errorf("profile: %d orders worth %v, want 1 worth 72.00 EUR", f.GetOrders(), f.GetTotalValue())
			}
			break
		}
		if err != nil && status.Code(err) != codes.NotFound {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("profile not ready within 20s: %v, %v", prof, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
