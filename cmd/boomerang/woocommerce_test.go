package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"strings"
	"testing"

	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// TestWooCommerceEndToEnd: WooCommerce's ping is answered without an
// order; a signed order webhook earns its points in the running process;
// deleting the order voids them.
func TestWooCommerceEndToEnd(t *testing.T) {
	const secret = "wc-end-to-end-secret-0123456789"
	p, base := startWebhooks(t, "ledger:read", "atelier", "woocommerce", secret)
	orders := p.reader(t, "ORDERS")
	post := func(topic, delivery, contentType, body string, sign bool) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+"/webhooks/woocommerce/atelier", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		if topic != "" {
			req.Header.Set("X-WC-Webhook-Topic", topic)
			req.Header.Set("X-WC-Webhook-Delivery-ID", delivery)
			req.Header.Set("X-WC-Webhook-Source", "https://atelier.example.com/")
		}
		if sign {
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write([]byte(body))
			req.Header.Set("X-WC-Webhook-Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// Saving the webhook in WooCommerce pings the URL, unsigned.
	if got := post("", "", "application/x-www-form-urlencoded", "webhook_id=12", false); got != http.StatusOK {
		t.Fatalf("ping: status %d, want 200", got)
	}
	body, err := os.ReadFile("../../services/ingest/internal/webhook/testdata/woocommerce/processing-coupon.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := post("order.created", "d-1", "application/json", string(body), false); got != http.StatusUnauthorized {
		t.Fatalf("unsigned order: status %d, want 401", got)
	}
	if got := post("order.created", "d-1", "application/json", string(body), true); got != http.StatusAccepted {
		t.Fatalf("order.created: status %d, want 202", got)
	}
	// The ping made no event: the first is the order's.
	customer := ""
	for _, want := range []ordersv1.OrderEventKind{ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED, ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID} {
		ev := decodeEvent(t, orders.next(t))
		if ev.GetKind() != want || ev.GetSource() != "atelier" || ev.GetOrderId() != "1042" {
			t.Fatalf("event %v of %s order %s, want %v of atelier order 1042", ev.GetKind(), ev.GetSource(), ev.GetOrderId(), want)
		}
		customer = ev.GetCustomerId()
	}
	// EUR 157.08 with 4.90 shipping, which earns nothing: 152 points, and
	// 20 for the first order.
	client := ledgerv1.NewLedgerServiceClient(p.conn)
	waitBalance(t, client, customer, 152+20)

	// Moved to the trash: the order is cancelled and its points void.
	if got := post("order.deleted", "d-2", "application/json", `{"id":1042}`, true); got != http.StatusAccepted {
		t.Fatalf("order.deleted: status %d, want 202", got)
	}
	if ev := decodeEvent(t, orders.next(t)); ev.GetKind() != ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED {
		t.Fatalf("event %v, want cancelled", ev.GetKind())
	}
	waitBalance(t, client, customer, 0)
}
