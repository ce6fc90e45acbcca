//go:build faults

package faults

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

// TestHostileMessages sends what an attacker or a broken shop would: an
// anonymous client, a shop publishing canonical events, an order of the
// largest size the bus accepts, ids with odd bytes, and a canonical event
// whose subject names another customer than its payload. Each is refused
// or dead-lettered with its reason, nothing is credited, nothing is
// parked, and a good order sent after them all is applied.
func TestHostileMessages(t *testing.T) {
	dir := workDir(t)
	grpcAddr, httpAddr, natsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	p := newProc(t, dir, "boomerang", binary(t, "boomerang"), append(baseEnv(t, dir),
		"BOOMERANG_DATA_DIR="+filepath.Join(dir, "data"),
		"BOOMERANG_GRPC_ADDR="+grpcAddr, "BOOMERANG_HTTP_ADDR="+httpAddr, "BOOMERANG_EMBEDDED_NATS_ADDR="+natsAddr,
	))
	p.healthz = "http://" + httpAddr + "/healthz"
	p.start()
	url := "nats://" + natsAddr
	ctx := context.Background()

	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("an anonymous client was let in")
	}
	shopNC, shop, err := connect(url, as("shop")...)
	if err != nil {
		t.Fatal(err)
	}
	_, admin, err := connect(url, as("admin")...)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpcx.Dial(grpcAddr, grpcx.ClientOptions{Token: adminToken})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ing, led := ingestv1.NewIngestServiceClient(conn), ledgerv1.NewLedgerServiceClient(conn)

	// A victim with a known balance.
	send := func(js jetstream.JetStream, subject string, body []byte) error {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := js.PublishMsg(pctx, &nats.Msg{Subject: subject, Data: body, Header: nats.Header{"Content-Type": []string{"application/json"}}})
		return err
	}
	order := func(id, email, currency, total string) []byte {
		return []byte(fmt.Sprintf(`{"order_id":%q,"occurred_at":"2026-11-01T10:00:00Z","currency":%q,"total":%q,"customer":{"email":%q}}`, id, currency, total, email))
	}
	if err := send(shop, "boomerang.ingest.orders.shop-eu", order("victim-1", "victim@faults.example", "EUR", "100.00")); err != nil {
		t.Fatal(err)
	}
	victim := waitOrder(t, ing, "shop-eu", "victim-1")
	balance := func(id string) int64 {
		a, err := led.GetAccount(ctx, &ledgerv1.GetAccountRequest{CustomerId: id})
		if err != nil {
			return -1
		}
		return a.GetBalance()
	}
	if err := waitFor(ctx, 30*time.Second, 100*time.Millisecond, func(context.Context) (bool, error) { return balance(victim) == 100, nil }); err != nil {
		t.Fatalf("victim's balance %d, want 100", balance(victim))
	}

	// A shop may not publish canonical events.
	forged := &ordersv1.OrderEvent{EventId: "forged-1", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, Source: "shop-eu",
		OrderId: "forged-1", CustomerId: victim, OccurredAt: timestamppb.Now(), OrderSequence: 1,
		Total:     &commonv1.Money{MinorUnits: 2_000_000_00, Currency: "EUR"},
		BaseTotal: &commonv1.Money{MinorUnits: 2_000_000_00, Currency: "EUR"}}
	data, _ := proto.Marshal(forged)
	if _, err := shop.Publish(ctx, "boomerang.orders.v1.paid."+victim, data); err == nil {
		t.Error("a shop published a canonical event")
	}
	// A service that may publish canonical events still cannot credit a
	// customer other than its subject names: the subject is the attacker's.
	_, ingestJS, err := connect(url, as("ingest")...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ingestJS.Publish(ctx, "boomerang.orders.v1.paid.attacker", data); err != nil {
		t.Fatalf("publish as ingest: %v", err)
	}

	// The largest JSON order the bus accepts, and ~max payload of garbage on
	// a canonical subject.
	max := int(shopNC.MaxPayload())
	big := []byte(`{"order_id":"big-1","occurred_at":"2026-11-01T10:00:00Z","currency":"EUR","total":"1.00","customer":{"email":"big@faults.example"},"channel":"`)
	pad := max - len(big) - len(`"}`) - 64 // room for the Content-Type header
	big = append(append(big, []byte(strings.Repeat("x", pad))...), `"}`...)
	if err := send(shop, "boomerang.ingest.orders.shop-eu", big); err != nil {
		t.Fatalf("publishing %d bytes: %v", len(big), err)
	}
	if _, err := ingestJS.Publish(ctx, "boomerang.orders.v1.paid.x", []byte(strings.Repeat("\xff", max-256))); err != nil {
		t.Fatalf("publishing garbage: %v", err)
	}

	// Odd bytes and a lower-case currency.
	for i, body := range [][]byte{
		[]byte("{\"order_id\":\"bad\xffutf8\",\"occurred_at\":\"2026-11-01T10:00:00Z\",\"currency\":\"EUR\",\"total\":\"10.00\",\"customer\":{\"email\":\"odd@faults.example\"}}"),
		[]byte(`{"order_id":"nul\u0000id","occurred_at":"2026-11-01T10:00:00Z","currency":"EUR","total":"10.00","customer":{"email":"odd@faults.example"}}`),
		order("lower-currency", "odd@faults.example", "eur", "10.00"),
	} {
		if err := send(shop, "boomerang.ingest.orders.shop-eu", body); err != nil {
			t.Fatalf("odd message %d: %v", i, err)
		}
	}

	// A good order after all of it is applied.
	if err := send(shop, "boomerang.ingest.orders.shop-eu", order("after-1", "after@faults.example", "EUR", "42.00")); err != nil {
		t.Fatal(err)
	}
	after := waitOrder(t, ing, "shop-eu", "after-1")
	if err := waitFor(ctx, 60*time.Second, 100*time.Millisecond, func(context.Context) (bool, error) { return balance(after) == 42, nil }); err != nil {
		t.Fatalf("the order sent after the hostile ones: balance %d, want 42", balance(after))
	}
	if err := drained(ctx, admin, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if b := balance(victim); b != 100 {
		t.Errorf("victim's balance %d after the forgeries, want 100", b)
	}

	// Every hostile message is on DEADLETTER with its reason.
	dead, err := readStream(ctx, admin, "DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range dead {
		got[strings.TrimPrefix(m.Subject, "boomerang.deadletter.")+" "+m.Header.Get("Boomerang-Reason")]++
	}
	t.Logf("dead letters: %v", got)
	for _, want := range []string{"ingest.shop-eu too_large", "ingest.shop-eu invalid"} {
		if got[want] == 0 {
			t.Errorf("no dead letter %q", want)
		}
	}
	if got["ingest.shop-eu invalid"] != 3 {
		t.Errorf("%d invalid dead letters from ingest, want 3 (odd UTF-8, NUL, lower-case currency)", got["ingest.shop-eu invalid"])
	}
	ledgerDead, segDead := 0, 0
	for k, n := range got {
		if strings.HasPrefix(k, "ledger.") {
			ledgerDead += n
		}
		if strings.HasPrefix(k, "segmentation.") {
			segDead += n
		}
	}
	if ledgerDead != 2 || segDead != 2 {
		t.Errorf("ledger dead-lettered %d and segmentation %d canonical messages, want 2 each (the forgery and the garbage)", ledgerDead, segDead)
	}

	// Nothing parked, no outbox stuck.
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "boomerang_outbox_parked_rows") && !strings.HasSuffix(line, " 0") {
			t.Errorf("parked: %s", line)
		}
	}
	if !strings.Contains(string(body), "boomerang_outbox_parked_rows") {
		t.Error("/metrics has no boomerang_outbox_parked_rows")
	}
}

func waitOrder(t *testing.T, ing ingestv1.IngestServiceClient, source, id string) string {
	t.Helper()
	var customer string
	err := waitFor(context.Background(), 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		o, err := ing.GetOrder(ctx, &ingestv1.GetOrderRequest{Source: source, OrderId: id})
		if err != nil {
			return false, err
		}
		customer = o.GetCustomerId()
		return true, nil
	})
	if err != nil {
		t.Fatalf("order %s/%s: %v", source, id, err)
	}
	return customer
}
