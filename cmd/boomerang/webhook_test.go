package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// startWebhooks starts the platform with ledgerProgramme, a writer token
// with the ingest scopes and scopes, and one webhook source of platform
// signed with secret; it returns the intake's base URL.
func startWebhooks(t *testing.T, scopes, source, platform, secret string) (*running, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "programme.yaml")
	if err := os.WriteFile(file, []byte(ledgerProgramme), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	p := startPlatform(t, t.TempDir(), map[string]string{
		"LEDGER_PROGRAMME_FILE":  file,
		"BOOMERANG_API_TOKENS":   writerToken + ":ingest:write,ingest:read," + scopes,
		"INGEST_WEBHOOK_ADDR":    addr,
		"INGEST_WEBHOOK_SOURCES": source + ":" + platform,
		"INGEST_WEBHOOK_SECRET_" + strings.ToUpper(strings.ReplaceAll(source, "-", "_")): secret,
	})
	return p, "http://" + addr
}

// TestWebhookEndToEnd: a shop's signed webhook reaches the running
// process over HTTP and earns points; the shop's retry of the same
// delivery earns nothing more, and an unsigned one is refused.
func TestWebhookEndToEnd(t *testing.T) {
	const secret = "web-shop-secret-0123456789"
	p, base := startWebhooks(t, "ledger:read", "web-shop", "generic", secret)
	orders := p.reader(t, "ORDERS")
	url := base + "/webhooks/generic/web-shop"

	post := func(id, body, signature string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Boomerang-Delivery-Id", id)
		req.Header.Set("Boomerang-Signature", signature)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sign := func(body string) string {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts + "." + body))
		return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
	}

	// EUR 80.00, no shipping, no items, a new customer, Bronze: 80 points
	// and the first-order bonus of 20.
	paid := `{"order_id": "W-1", "kind": "paid", "occurred_at": "2026-11-01T10:00:00Z", "currency": "EUR",
	  "total": "80.00", "customer": {"email": "wes@example.com"}}`
	if got := post("dlv-1", paid, "t=1,v1=00"); got != http.StatusUnauthorized {
		t.Fatalf("unsigned delivery: status %d, want 401", got)
	}
	if got := post("dlv-1", paid, sign(paid)); got != http.StatusAccepted {
		t.Fatalf("signed delivery: status %d, want 202", got)
	}
	ev := decodeEvent(t, orders.next(t))
	if ev.GetSource() != "web-shop" || ev.GetOrderId() != "W-1" {
		t.Fatalf("canonical event from %s order %s, want web-shop W-1", ev.GetSource(), ev.GetOrderId())
	}
	customer := ev.GetCustomerId()
	client := ledgerv1.NewLedgerServiceClient(p.conn)
	waitBalance(t, client, customer, 80+20)

	// The shop retries the delivery (signed again, same id), then sends
	// the next order: EUR 5.00, a repeat customer still below Silver's
	// 90.00, 5 points. The balance shows the retry earned nothing.
	if got := post("dlv-1", paid, sign(paid)); got != http.StatusAccepted {
		t.Fatalf("retried delivery: status %d, want 202", got)
	}
	next := `{"order_id": "W-2", "kind": "paid", "occurred_at": "2026-11-02T10:00:00Z", "currency": "EUR",
	  "total": "5.00", "customer": {"email": "wes@example.com"}}`
	if got := post("dlv-2", next, sign(next)); got != http.StatusAccepted {
		t.Fatalf("second delivery: status %d, want 202", got)
	}
	if ev := decodeEvent(t, orders.next(t)); ev.GetOrderId() != "W-2" {
		t.Fatalf("next canonical event is order %s, want W-2", ev.GetOrderId())
	}
	waitBalance(t, client, customer, 80+20+5)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in, err := p.js.Stream(ctx, "INGEST")
	if err != nil {
		t.Fatal(err)
	}
	info, err := in.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("INGEST holds %d messages, want 2 (one per delivery)", info.State.Msgs)
	}
}
