//go:build faults

package faults

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

const adminToken = "faults-admin-token"

// passwords of the bus users, given to the platform and to nats-server.
var passwords = map[string]string{
	"shop": "faults-shop-password", "admin": "faults-admin-password",
	"ingest": "faults-ingest-password", "ledger": "faults-ledger-password",
	"segmentation": "faults-segmentation-password", "feedback": "faults-feedback-password",
}

// baseEnv is what every run gives its processes: short ack waits so that
// in-flight messages of a killed process come back quickly, and waits for
// an order's missing predecessor far longer than any run.
func baseEnv(t testing.TB, dir string) []string {
	rates := filepath.Join(dir, "rates.csv")
	if err := os.WriteFile(rates, []byte("date,currency,rate\n2026-01-01,USD,"+usdRate+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"BOOMERANG_BASE_CURRENCY=EUR",
		"BOOMERANG_FX_RATES_FILE=" + rates,
		"BOOMERANG_LOG_LEVEL=warn",
		"BOOMERANG_API_TOKENS=" + adminToken + ":admin",
		"BOOMERANG_IDENTITY_SECRET=" + hex.EncodeToString([]byte("fault-suite-identity-secret-0001")),
		"LEDGER_PROGRAMME_FILE=",
		"INGEST_ACK_WAIT=2s", "INGEST_LATER_DELAY=500ms", "INGEST_WAIT_FOR_ORDER=30m", "INGEST_WEBHOOK_ADDR=127.0.0.1:0",
		"LEDGER_ACK_WAIT=2s", "LEDGER_LATER_DELAY=500ms", "LEDGER_WAIT_FOR_ORDER=30m",
		"SEGMENTATION_ACK_WAIT=2s", "SEGMENTATION_LATER_DELAY=500ms", "SEGMENTATION_WAIT_FOR_ORDER=30m",
		"FEEDBACK_ACK_WAIT=2s",
	}
	for user, pw := range passwords {
		env = append(env, "NATS_"+strings.ToUpper(user)+"_PASSWORD="+pw)
	}
	return env
}

func as(user string) []nats.Option {
	return []nats.Option{nats.UserInfo(user, passwords[user]), nats.CustomInboxPrefix("_INBOX." + user)}
}

// target is a platform under test: its bus and each service's gRPC address.
type target struct {
	natsURL string
	grpc    map[string]string // ingest, ledger, segmentation → host:port
	victims []*proc           // what the fault schedule kills
	// during, when set, runs once while the load is coming in (a NATS or
	// Redis restart).
	during func(t *testing.T)
}

// TestSingleProcess kills the single-process platform (embedded NATS,
// SQLite, in-process hot store) with SIGKILL again and again while a shop
// publishes the workload.
func TestSingleProcess(t *testing.T) {
	dir := workDir(t)
	grpcAddr, httpAddr, natsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	p := newProc(t, dir, "boomerang", binary(t, "boomerang"), append(baseEnv(t, dir),
		"BOOMERANG_DATA_DIR="+filepath.Join(dir, "data"),
		"BOOMERANG_GRPC_ADDR="+grpcAddr,
		"BOOMERANG_HTTP_ADDR="+httpAddr,
		"BOOMERANG_EMBEDDED_NATS_ADDR="+natsAddr,
	))
	p.healthz = "http://" + httpAddr + "/healthz"
	p.start()
	run(t, target{
		natsURL: "nats://" + natsAddr,
		grpc:    map[string]string{"ingest": grpcAddr, "ledger": grpcAddr, "segmentation": grpcAddr},
		victims: []*proc{p},
	})
}

// run publishes the workload while the fault schedule kills and restarts
// the victims, waits until everything is applied, and checks the result.
func run(t *testing.T, tg target) {
	ctx := context.Background()
	w := newWorkload(*flagSeed, *flagOrders, 0.05)
	t.Logf("workload: %d orders, %d customers, %d messages", len(w.Orders), len(w.Emails), len(w.Msgs))

	_, shop, err := connect(tg.natsURL, as("shop")...)
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	spread := time.Duration(*flagKills) * 2 * time.Second
	pubDone := make(chan error, 1)
	loadCtx, cancelLoad := context.WithTimeout(ctx, 20*time.Minute)
	defer cancelLoad()
	go func() { pubDone <- publish(loadCtx, shop, w.Msgs, spread, &sent) }()

	rng := rand.New(rand.NewPCG(*flagSeed, 7))
	began := time.Now()
	for k := 0; k < *flagKills; k++ {
		time.Sleep(time.Duration(300+rng.IntN(2200)) * time.Millisecond)
		v := tg.victims[rng.IntN(len(tg.victims))]
		t.Logf("kill %d: %s after %d of %d messages sent", k+1, v.name, sent.Load(), len(w.Msgs))
		v.kill()
		if tg.during != nil && k == *flagKills/2 {
			tg.during(t)
		}
		v.start()
	}
	if err := <-pubDone; err != nil {
		t.Fatalf("publishing: %v", err)
	}
	t.Logf("all %d messages acknowledged after %s", len(w.Msgs), time.Since(began).Round(time.Millisecond))

	_, admin, err := connect(tg.natsURL, as("admin")...)
	if err != nil {
		t.Fatal(err)
	}
	if err := drained(ctx, admin, 10*time.Minute); err != nil {
		t.Fatalf("the platform did not finish the load: %v", err)
	}
	t.Logf("everything applied after %s", time.Since(began).Round(time.Millisecond))
	checkStreams(t, admin, w)
	checkFigures(t, tg, w)
}

// checkStreams reads every stream: no stream holds one message id twice,
// ORDERS holds every (source, order, kind, refund) of the workload exactly
// once, and DEADLETTER holds nothing (the workload is all valid).
func checkStreams(t *testing.T, js jetstream.JetStream, w *workload) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{"INGEST", "ORDERS", "LEDGER", "SEGMENT", "DEADLETTER"} {
		msgs, err := readStream(ctx, js, name)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]uint64{}
		doubled := 0
		for _, m := range msgs {
			id := m.Header.Get(jetstream.MsgIDHeader)
			if id == "" {
				continue
			}
			if first, ok := ids[id]; ok {
				if doubled < 5 {
					t.Errorf("%s holds message id %s twice (seq %d and %d)", name, id, first, m.Seq)
				}
				doubled++
			}
			ids[id] = m.Seq
		}
		if doubled > 0 {
			t.Errorf("%s: %d message ids stored more than once", name, doubled)
		}
		switch name {
		case "ORDERS":
			want := w.canonicalKeys()
			got := map[string]int{}
			for _, m := range msgs {
				ev := &ordersv1.OrderEvent{}
				if err := proto.Unmarshal(m.Data, ev); err != nil {
					t.Fatalf("ORDERS seq %d: %v", m.Seq, err)
				}
				kind := strings.ToLower(strings.TrimPrefix(ev.GetKind().String(), "ORDER_EVENT_KIND_"))
				got[ev.GetSource()+"/"+ev.GetOrderId()+"/"+kind+"/"+ev.GetRefund().GetRefundId()]++
			}
			var problems []string
			for k := range want {
				if got[k] != 1 {
					problems = append(problems, fmt.Sprintf("%s ×%d", k, got[k]))
				}
			}
			for k := range got {
				if !want[k] {
					problems = append(problems, fmt.Sprintf("%s never sent", k))
				}
			}
			sort.Strings(problems)
			if len(problems) > 0 {
				t.Errorf("ORDERS: %d canonical events wrong, e.g. %s", len(problems), strings.Join(problems[:min(10, len(problems))], "; "))
			}
			t.Logf("ORDERS: %d events, %d expected", len(msgs), len(want))
		case "DEADLETTER":
			reasons := map[string]int{}
			for _, m := range msgs {
				reasons[m.Header.Get("Boomerang-Reason")+": "+m.Header.Get("Boomerang-Error")]++
			}
			if len(msgs) > 0 {
				t.Errorf("DEADLETTER holds %d messages of a valid workload: %v", len(msgs), reasons)
			}
		}
	}
}

// checkFigures asks the services, as a seller's system would, for every
// customer's balance and figures and compares them with what the workload
// says they must be.
func checkFigures(t *testing.T, tg target, w *workload) {
	t.Helper()
	ctx := context.Background()
	dial := func(service string) *grpcClient {
		conn, err := grpcx.Dial(tg.grpc[service], grpcx.ClientOptions{Token: adminToken})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return &grpcClient{conn}
	}
	ing := ingestv1.NewIngestServiceClient(dial("ingest").conn)
	led := ledgerv1.NewLedgerServiceClient(dial("ledger").conn)
	seg := segmentationv1.NewSegmentationServiceClient(dial("segmentation").conn)

	wrong := 0
	report := func(format string, args ...any) {
		if wrong < 10 {
			t.Errorf(format, args...)
		}
		wrong++
	}
	var points int64
	for email, e := range w.expect() {
		o, err := ing.GetOrder(ctx, &ingestv1.GetOrderRequest{Source: e.AnyOrder.Source, OrderId: e.AnyOrder.ID})
		if err != nil {
			report("GetOrder %s/%s: %v", e.AnyOrder.Source, e.AnyOrder.ID, err)
			continue
		}
		id := o.GetCustomerId()
		var balance int64
		a, err := led.GetAccount(ctx, &ledgerv1.GetAccountRequest{CustomerId: id})
		switch {
		case status.Code(err) == codes.NotFound:
		case err != nil:
			report("GetAccount %s: %v", id, err)
			continue
		default:
			balance = a.GetBalance()
		}
		points += balance
		if balance != e.Points {
			report("%s (%s): balance %d, want %d", email, id, balance, e.Points)
		}
		var f *segmentationv1.Features
		p, err := seg.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: id})
		switch {
		case status.Code(err) == codes.NotFound:
			f = &segmentationv1.Features{}
		case err != nil:
			report("GetProfile %s: %v", id, err)
			continue
		default:
			f = p.GetFeatures()
		}
		if f.GetOrders() != e.Orders || f.GetTotalValue().GetMinorUnits() != e.NetValue || f.GetRefunds() != e.Refunds {
			report("%s (%s): segmentation orders %d, net value %d, refunds %d; want %d, %d, %d", email, id,
				f.GetOrders(), f.GetTotalValue().GetMinorUnits(), f.GetRefunds(), e.Orders, e.NetValue, e.Refunds)
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d customers' figures are wrong", wrong, len(w.Emails))
	}
	t.Logf("checked %d customers, %d points outstanding", len(w.expect()), points)
}
