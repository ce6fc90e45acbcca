package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	ledger "github.com/boomerang-loyalty/boomerang/services/ledger/service"
)

// TestKilledMidStream kills the platform process (SIGKILL) while it is
// ingesting and the ledger is applying, several times, and restarts it on
// the same data directory: every order and refund yields exactly one
// canonical event, every refunded total is right, and every points
// balance is what the programme says. Then the ledger replays the whole
// ORDERS stream, and nothing changes.
func TestKilledMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the platform binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "boomerang")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	rates := filepath.Join(dir, "rates.csv")
	if err := os.WriteFile(rates, []byte("date,currency,rate\n2026-01-01,USD,0.9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	natsPort, httpPort := testkit.FreePort(t), testkit.FreePort(t)
	env := append(os.Environ(),
		"BOOMERANG_DATA_DIR="+filepath.Join(dir, "data"),
		"BOOMERANG_GRPC_ADDR=127.0.0.1:0",
		"BOOMERANG_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(httpPort),
		"BOOMERANG_EMBEDDED_NATS_ADDR=127.0.0.1:"+strconv.Itoa(natsPort),
		"BOOMERANG_BASE_CURRENCY=EUR",
		"BOOMERANG_FX_RATES_FILE="+rates,
		"BOOMERANG_LOG_LEVEL=error",
		"INGEST_WEBHOOK_ADDR=127.0.0.1:0",
		"INGEST_BATCH_SIZE=64",
		"INGEST_ACK_WAIT=2s",
		"INGEST_LATER_DELAY=500ms",
		"LEDGER_ACK_WAIT=2s",
		"LEDGER_LATER_DELAY=500ms",
	)
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return cmd
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Kill()
		t.Fatal("platform did not become healthy")
		return nil
	}
	kill := func(cmd *exec.Cmd) {
		_ = cmd.Process.Signal(os.Kill)
		_, _ = cmd.Process.Wait()
	}

	const orders, refundsPer = 1500, 2 // each refund 10.00 of a 100.00 order
	rng := rand.New(rand.NewPCG(1, 2))
	url := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	cmd := start()
	// The platform generated the operator's password on its first start.
	adminPassword, err := os.ReadFile(filepath.Join(dir, "data", "nats-admin.password"))
	if err != nil {
		t.Fatal(err)
	}
	admin := natsx.Credentials{User: busauth.Admin, Password: strings.TrimSpace(string(adminPassword))}.Options()
	for round := 0; round < 3; round++ {
		nc, err := nats.Connect(url, admin...)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		// Each round publishes a third of the orders and the refunds of the
		// previous round's orders, then the process dies mid-ingest.
		lo, hi := round*orders/3, (round+1)*orders/3
		for i := lo; i < hi; i++ {
			body := fmt.Sprintf(`{"order_id":"o-%d","occurred_at":"2026-11-01T10:00:00Z","currency":"USD","total":"100.00","customer":{"email":"c%d@example.com"}}`, i, i%50)
			if _, err := js.PublishAsync("boomerang.ingest.orders.shop", []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
		if round > 0 {
			for i := lo - orders/3; i < lo; i++ {
				for r := 0; r < refundsPer; r++ {
					body := fmt.Sprintf(`{"order_id":"o-%d","kind":"refunded","occurred_at":"2026-11-02T10:00:00Z","refund":{"id":"r%d","amount":"10.00","currency":"USD"}}`, i, r)
					if _, err := js.PublishAsync("boomerang.ingest.orders.shop", []byte(body)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatal("publishes not acknowledged")
		}
		nc.Close()
		time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
		kill(cmd)
		cmd = start()
	}
	// The last round's refunds, then let it finish.
	nc, err := nats.Connect(url, admin...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for i := 2 * orders / 3; i < orders; i++ {
		for r := 0; r < refundsPer; r++ {
			body := fmt.Sprintf(`{"order_id":"o-%d","kind":"refunded","occurred_at":"2026-11-02T10:00:00Z","refund":{"id":"r%d","amount":"10.00","currency":"USD"}}`, i, r)
			if _, err := js.PublishAsync("boomerang.ingest.orders.shop", []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	<-js.PublishAsyncComplete()
	defer kill(cmd)

	want := orders * (1 + refundsPer)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		info, err := js.Stream(ctx, "ORDERS")
		if err != nil {
			t.Fatal(err)
		}
		if int(info.CachedInfo().State.Msgs) >= want {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d canonical events after 60s, want %d", info.CachedInfo().State.Msgs, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // anything doubled would show up now
	cons, err := js.OrderedConsumer(ctx, "ORDERS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	refunded := map[string]int64{}
	for n := 0; n < want; n++ {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("event %d: %v", n, err)
		}
		ev := &ordersv1.OrderEvent{}
		if err := proto.Unmarshal(m.Data(), ev); err != nil {
			t.Fatal(err)
		}
		seen[ev.GetEventId()]++
		if ev.GetKind() == ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED {
			refunded[ev.GetOrderId()] = max(refunded[ev.GetOrderId()], ev.GetRefund().GetRefundedTotal().GetOriginal().GetMinorUnits())
		}
	}
	if _, err := cons.Next(jetstream.FetchMaxWait(time.Second)); err == nil {
		t.Fatal("more canonical events than inputs")
	}
	if len(seen) != want {
		t.Fatalf("%d distinct events, want %d", len(seen), want)
	}
	for i := 0; i < orders; i++ {
		if got := refunded[fmt.Sprintf("o-%d", i)]; got != refundsPer*1000 {
			t.Fatalf("order o-%d refunded %d, want %d", i, got, refundsPer*1000)
		}
	}

	// Points: the default programme earns 1 point per euro, rounded down.
	// Each order is USD 100.00 = EUR 90.00 (90 points); its two refunds of
	// USD 10.00 take back 18 of them. 50 customers of 30 orders each.
	const perOrder, perCustomer = 90 - 18, 30 * (90 - 18)
	waitLedger(t, js)
	kill(cmd)
	checkLedger(t, filepath.Join(dir, "data", "ledger.db"), orders*perOrder, 50, perCustomer)

	// Replay: drop the ledger's consumer; on restart it is created again
	// and reads ORDERS from the start.
	cmd = start()
	if err := js.DeleteConsumer(ctx, "ORDERS", "points-ledger"); err != nil {
		t.Fatal(err)
	}
	kill(cmd)
	cmd = start()
	waitLedger(t, js)
	kill(cmd)
	checkLedger(t, filepath.Join(dir, "data", "ledger.db"), orders*perOrder, 50, perCustomer)
}

// waitLedger waits until the ledger has applied every canonical event.
func waitLedger(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		c, err := js.Consumer(ctx, "ORDERS", "points-ledger")
		if err == nil {
			info := c.CachedInfo()
			if info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream > 0 {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("ledger did not catch up: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkLedger proves the ledger's invariants on its database and checks
// the balances.
func checkLedger(t *testing.T, path string, total int64, customers int, each int64) {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sum, err := ledger.Verify(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if sum != total {
		t.Errorf("points outstanding %d, want %d", sum, total)
	}
	rows, err := db.R.QueryContext(ctx, `SELECT balance, COUNT(*) FROM accounts GROUP BY balance`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int64]int{}
	for rows.Next() {
		var b int64
		var n int
		if err := rows.Scan(&b, &n); err != nil {
			t.Fatal(err)
		}
		got[b] = n
	}
	if len(got) != 1 || got[each] != customers {
		t.Errorf("balances %v, want %d accounts of %d", got, customers, each)
	}
}
