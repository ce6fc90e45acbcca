package httpapi_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/httpapi"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/webhook"
)

const (
	wooSource = "shop-woo"
	wooSecret = "f3b1c2d4e5a6978899aabbccddeeff00"
	wooOrder  = `{"id":1042,"status":"processing","currency":"EUR","date_created_gmt":"2026-10-03T09:14:07",` +
		`"date_paid_gmt":"2026-10-03T09:14:12","total":"157.08","customer_id":17,` +
		`"billing":{"email":"marie.dupont@example.com","country":"FR"},"line_items":[],"refunds":[]}`
)

// wooPost sends body to the WooCommerce source as WooCommerce does: signed
// with key unless key is empty, with the headers of an order.updated
// delivery unless ping.
func (h *harness) wooPost(t *testing.T, body, key, deliveryID string, ping bool) int {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/webhooks/woocommerce/"+wooSource, strings.NewReader(body))
	r.Header.Set("User-Agent", "WooCommerce/9.3.3 Hookshot (WordPress/6.6.2)")
	if ping {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	} else {
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-WC-Webhook-Source", "https://shop.example.com/")
		r.Header.Set("X-WC-Webhook-Topic", "order.updated")
		r.Header.Set("X-WC-Webhook-Resource", "order")
		r.Header.Set("X-WC-Webhook-Event", "updated")
		r.Header.Set("X-WC-Webhook-ID", "12")
		r.Header.Set("X-WC-Webhook-Delivery-ID", deliveryID)
		r.Header.Set("X-Unrelated", "dropped")
	}
	if key != "" {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(body))
		r.Header.Set("X-WC-Webhook-Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	w := httptest.NewRecorder()
	h.handler.ServeHTTP(w, r)
	return w.Code
}

// TestWooCommerceDelivery: the ping WooCommerce sends when a webhook is
// saved is answered 200 and captures nothing; a signed delivery is
// captured once, with the headers the consumer maps it by, however often
// it is sent; a forged or unsigned one is refused.
func TestWooCommerceDelivery(t *testing.T) {
	h := startWith(t, false, httpapi.Source{Name: wooSource, Platform: webhook.WooCommerce, Secret: []byte(wooSecret)})

	if code := h.wooPost(t, "webhook_id=12", "", "", true); code != http.StatusOK {
		t.Fatalf("ping: status %d, want 200", code)
	}
	if msgs := h.captured(t); len(msgs) != 0 {
		t.Fatalf("the ping captured %d messages, want none", len(msgs))
	}

	const delivery = "0f3a9c5e7b21d4e68a0c2f4b6d8e1a3c"
	if code := h.wooPost(t, wooOrder, "another-secret-0123456789abcdef", delivery, false); code != http.StatusUnauthorized {
		t.Fatalf("forged: status %d, want 401", code)
	}
	if code := h.wooPost(t, wooOrder, "", delivery, false); code != http.StatusUnauthorized {
		t.Fatalf("unsigned: status %d, want 401", code)
	}
	for i := range 3 {
		if code := h.wooPost(t, wooOrder, wooSecret, delivery, false); code != http.StatusAccepted {
			t.Fatalf("delivery %d: status %d, want 202", i, code)
		}
	}
	msgs := h.captured(t)
	if len(msgs) != 1 {
		t.Fatalf("captured %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject() != "boomerang.ingest.orders."+wooSource || string(m.Data()) != wooOrder {
		t.Errorf("captured %s %q, want the raw body on boomerang.ingest.orders.%s", m.Subject(), m.Data(), wooSource)
	}
	sum := sha256.Sum256([]byte(wooOrder))
	for k, want := range map[string]string{
		"Nats-Msg-Id":              "woocommerce:" + wooSource + ":" + delivery + "." + hex.EncodeToString(sum[:8]),
		webhook.HeaderPlatform:     "woocommerce",
		"Content-Type":             "application/json",
		"X-WC-Webhook-Topic":       "order.updated",
		"X-WC-Webhook-Resource":    "order",
		"X-WC-Webhook-Event":       "updated",
		"X-WC-Webhook-Source":      "https://shop.example.com/",
		"X-WC-Webhook-ID":          "12",
		"X-WC-Webhook-Delivery-ID": delivery,
		"X-WC-Webhook-Signature":   "",
		"X-Unrelated":              "",
	} {
		if got := m.Headers().Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	// The handler's clock is the harness's now.
	if got := m.Headers().Get(webhook.HeaderReceivedAt); got != now.UTC().Format(time.RFC3339) {
		t.Errorf("%s = %q, want the time of receipt, %s", webhook.HeaderReceivedAt, got, now.UTC().Format(time.RFC3339))
	}

	// WooCommerce gives two deliveries of one webhook in the same second
	// the same delivery id: another order under it is captured too.
	other := strings.Replace(wooOrder, `"id":1042`, `"id":1043`, 1)
	if code := h.wooPost(t, other, wooSecret, delivery, false); code != http.StatusAccepted {
		t.Fatalf("another order, same delivery id: status %d, want 202", code)
	}
	if msgs := h.captured(t); len(msgs) != 2 {
		t.Errorf("captured %d messages, want 2", len(msgs))
	}

	got := testkit.Counter(t, h.reader, "boomerang.ingest.webhooks", "source", "status")
	if got[wooSource+"/200"] != 1 || got[wooSource+"/401"] != 2 || got[wooSource+"/202"] != 4 {
		t.Errorf("boomerang.ingest.webhooks = %v", got)
	}
}
