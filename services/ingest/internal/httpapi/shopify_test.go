package httpapi_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/httpapi"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/webhook"
)

// TestShopifyDelivery: a Shopify delivery is captured with the headers
// the consumer maps it by, once per webhook id; a forged one is refused
// and captures nothing.
func TestShopifyDelivery(t *testing.T) {
	const shopSecret = "shpss_0123456789abcdef0123456789"
	h := startWith(t, false, httpapi.Source{Name: "northwind", Platform: webhook.Shopify, Secret: []byte(shopSecret)})
	body := `{"id": 5678901234567890123, "financial_status": "paid"}`
	post := func(key, webhookID string) int {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(body))
		r := httptest.NewRequest(http.MethodPost, "/webhooks/shopify/northwind", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(webhook.ShopifyHMAC, base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		r.Header.Set(webhook.ShopifyTopic, "orders/paid")
		r.Header.Set(webhook.ShopifyWebhookID, webhookID)
		r.Header.Set(webhook.ShopifyShopDomain, "northwind-eu.myshopify.com")
		r.Header.Set("X-Unrelated", "dropped")
		w := httptest.NewRecorder()
		h.handler.ServeHTTP(w, r)
		return w.Code
	}
	if code := post("another-secret-0123456789abcdef", "w-1"); code != http.StatusUnauthorized {
		t.Fatalf("forged: status %d, want 401", code)
	}
	for range 2 {
		if code := post(shopSecret, "w-1"); code != http.StatusAccepted {
			t.Fatalf("signed: status %d, want 202", code)
		}
	}
	msgs := h.captured(t)
	if len(msgs) != 1 {
		t.Fatalf("captured %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	for k, want := range map[string]string{
		"Nats-Msg-Id": "shopify:northwind:w-1", webhook.HeaderPlatform: "shopify",
		webhook.ShopifyTopic: "orders/paid", webhook.ShopifyShopDomain: "northwind-eu.myshopify.com", "X-Unrelated": "",
	} {
		if got := m.Headers().Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if m.Subject() != "boomerang.ingest.orders.northwind" || string(m.Data()) != body {
		t.Errorf("captured %s %q, want the raw body on boomerang.ingest.orders.northwind", m.Subject(), m.Data())
	}
}
