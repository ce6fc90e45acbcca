package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform"
	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform/platformtest"
	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
)

// violations collects the permission violations the server reports to a
// connection.
type violations struct {
	mu   sync.Mutex
	seen []string
}

func (v *violations) handler() nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.seen = append(v.seen, err.Error())
	})
}

func (v *violations) saw(subject string) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		v.mu.Lock()
		for _, s := range v.seen {
			if strings.Contains(s, `Permissions Violation for Publish to "`+subject+`"`) {
				v.mu.Unlock()
				return true
			}
		}
		v.mu.Unlock()
	}
	return false
}

// TestBusAuthorisation: the platform's NATS lets no anonymous client in;
// a shop publishes orders that are ingested, and cannot publish canonical
// events.
func TestBusAuthorisation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the platform")
	}
	p := startPlatform(t, t.TempDir(), nil)
	orders := p.reader(t, "ORDERS")

	if nc, err := nats.Connect(p.m.NATSURL()); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous: %v, want an authorization violation", err)
	}
	for _, user := range busauth.Names() {
		if c := p.m.NATSCredentials(user); c.User != user || len(c.Password) < 32 {
			t.Errorf("user %s: credentials %q with a password of %d characters", user, c.User, len(c.Password))
		}
	}
	// Each service is connected as its own user, not as one for all.
	connz, err := p.m.EmbeddedNATS().Connz(&server.ConnzOptions{Username: true})
	if err != nil {
		t.Fatal(err)
	}
	connected := map[string]string{}
	for _, c := range connz.Conns {
		connected[c.Name] = c.AuthorizedUser
	}
	for _, svc := range []string{"ingest", "ledger", "segmentation", "feedback"} {
		if got := connected["boomerang-"+svc]; got != svc {
			t.Errorf("%s connected as %q; connections %v", svc, got, connected)
		}
	}

	var v violations
	shop, shopJS := platformtest.Connect(t, p.m, busauth.Shop, v.handler())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := shopJS.Publish(ctx, "boomerang.ingest.orders.shop-eu", []byte(`{"order_id": "S-1", "kind": "paid", "occurred_at": "2026-11-01T10:00:00Z",
	  "currency": "EUR", "total": "10.00", "customer": {"email": "sam@example.com"}}`)); err != nil {
		t.Fatalf("shop publishes an order: %v", err)
	}
	if ev := decodeEvent(t, orders.next(t)); ev.GetOrderId() != "S-1" {
		t.Fatalf("canonical event of order %q, want S-1", ev.GetOrderId())
	}
	forged := "boomerang.orders.v1.paid.cus_victim"
	if err := shop.Publish(forged, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if !v.saw(forged) {
		t.Fatalf("shop published to %s", forged)
	}
	orders.none(t, 500*time.Millisecond)
}

// TestForgedCanonicalEventCreditsNothing: a canonical event that credits
// a victim from another customer's subject, published by a user that may
// publish canonical events, is dead-lettered by the ledger and credits
// no one; a genuine event behind it is applied.
func TestForgedCanonicalEventCreditsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the platform")
	}
	p := startPlatform(t, t.TempDir(), map[string]string{
		"BOOMERANG_API_TOKENS": writerToken + ":ingest:write,ingest:read,ledger:read",
	})
	dead := p.reader(t, "DEADLETTER")
	_, ingestJS := platformtest.Connect(t, p.m, busauth.Ingest)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	at := timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	publish := func(subject string, ev *ordersv1.OrderEvent) {
		t.Helper()
		data, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ingestJS.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: natsx.ProtoHeader(ctx, ev.GetEventId(), ev)}); err != nil {
			t.Fatal(err)
		}
	}
	paid := func(id, customer string, euros int64) *ordersv1.OrderEvent {
		return &ordersv1.OrderEvent{EventId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, Source: "shop", OrderId: id,
			CustomerId: customer, OccurredAt: at, IngestedAt: at,
			Total: &commonv1.Money{MinorUnits: euros * 100, Currency: "EUR"}, BaseTotal: &commonv1.Money{MinorUnits: euros * 100, Currency: "EUR"}}
	}
	publish("boomerang.orders.v1.paid.cus_attacker", paid("evt-forged", "cus_victim", 2_000_000))
	publish("boomerang.orders.v1.paid.cus_control", paid("evt-control", "cus_control", 10))

	client := ledgerv1.NewLedgerServiceClient(p.conn)
	waitBalance(t, client, "cus_control", 10)
	for _, customer := range []string{"cus_victim", "cus_attacker"} {
		a, err := client.GetAccount(ctx, &ledgerv1.GetAccountRequest{CustomerId: customer})
		if status.Code(err) != codes.NotFound && (err != nil || a.GetBalance() != 0) {
			t.Errorf("%s: %v %v, want no points", customer, a, err)
		}
	}
	var ledgerDead bool
	for i := 0; i < 2 && !ledgerDead; i++ { // the ledger's and segmentation's, in either order
		m := dead.next(t)
		if m.Headers().Get("Boomerang-Original-Subject") != "boomerang.orders.v1.paid.cus_attacker" {
			t.Fatalf("dead letter of %s", m.Headers().Get("Boomerang-Original-Subject"))
		}
		ledgerDead = strings.HasPrefix(m.Subject(), "boomerang.deadletter.ledger.")
		if ledgerDead && !strings.Contains(m.Headers().Get("Boomerang-Error"), "subject") {
			t.Errorf("ledger dead letter: %s: %s", m.Headers().Get("Boomerang-Reason"), m.Headers().Get("Boomerang-Error"))
		}
	}
	if !ledgerDead {
		t.Fatal("the ledger did not dead-letter the forged event")
	}
}

// TestEmbeddedNATSOnEveryInterface: listening beyond loopback needs the
// shops' password set; with it, a shop on the network connects with it.
func TestEmbeddedNATSOnEveryInterface(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the platform")
	}
	dir := t.TempDir()
	vars := map[string]string{
		"BOOMERANG_DATA_DIR":           dir,
		"BOOMERANG_GRPC_ADDR":          "127.0.0.1:0",
		"BOOMERANG_HTTP_ADDR":          "127.0.0.1:0",
		"BOOMERANG_EMBEDDED_NATS_ADDR": "0.0.0.0:-1",
	}
	m := platform.New()
	m.Logs = io.Discard
	err := m.Open(context.Background(), config.Map(vars))
	if err == nil {
		_ = m.Close()
		t.Fatal("the platform started on 0.0.0.0 without a shop password")
	}
	for _, want := range []string{"BOOMERANG_EMBEDDED_NATS_ADDR 0.0.0.0:-1", "NATS_SHOP_PASSWORD"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}

	const shopPassword = "shops-know-this-0123456789"
	p := platformtest.Start(t, dir, map[string]string{"BOOMERANG_EMBEDDED_NATS_ADDR": "0.0.0.0:-1", "NATS_SHOP_PASSWORD": shopPassword})
	if _, err := os.Stat(filepath.Join(dir, "nats-shop.password")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a shop password file was written: %v", err)
	}
	nc, err := nats.Connect(p.NATSURL(), natsx.Credentials{User: busauth.Shop, Password: shopPassword}.Options()...)
	if err != nil {
		t.Fatalf("shop: %v", err)
	}
	nc.Close()
	var banner strings.Builder
	p.PrintAddresses(&banner)
	if !strings.Contains(banner.String(), "NATS_SHOP_PASSWORD") || !strings.Contains(banner.String(), filepath.Join(dir, "nats-admin.password")) {
		t.Errorf("banner does not tell where the NATS passwords are:\n%s", banner.String())
	}
	if want := "http://" + p.Ingest.WebhookAddr() + "/webhooks/"; p.Ingest.WebhookAddr() == "" || !strings.Contains(banner.String(), want) {
		t.Errorf("banner does not tell where webhooks go (%s):\n%s", want, banner.String())
	}
}

// TestExternalNATS: a platform on another platform's NATS signs each of
// its services in as that service's user (NATS_<SERVICE>_USER and
// _PASSWORD); with a user that may not do a service's work it does not
// start, and a NATS_URL on another machine without credentials is refused
// before anything is dialled.
func TestExternalNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the platform")
	}
	first := platformtest.Start(t, t.TempDir(), map[string]string{"BOOMERANG_SERVICES": "ingest"})
	ledgerUser := first.NATSCredentials(busauth.Ledger)
	shopUser := first.NATSCredentials(busauth.Shop)
	open := func(env map[string]string) (*platform.Main, error) {
		vars := map[string]string{
			"BOOMERANG_DATA_DIR":  t.TempDir(),
			"BOOMERANG_GRPC_ADDR": "127.0.0.1:0",
			"BOOMERANG_HTTP_ADDR": "127.0.0.1:0",
			"BOOMERANG_SERVICES":  "ledger",
			"NATS_URL":            first.NATSURL(),
		}
		for k, v := range env {
			vars[k] = v
		}
		m := platform.New()
		m.Logs = io.Discard
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return m, m.Open(ctx, config.Map(vars))
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string // in the error; "" to start
	}{
		{name: "as the ledger", env: map[string]string{"NATS_LEDGER_USER": ledgerUser.User, "NATS_LEDGER_PASSWORD": ledgerUser.Password}},
		{name: "common variables", env: map[string]string{"NATS_USER": ledgerUser.User, "NATS_PASSWORD": ledgerUser.Password}},
		{name: "anonymous", want: "Authorization Violation"},
		{name: "as a shop", env: map[string]string{"NATS_USER": shopUser.User, "NATS_PASSWORD": shopUser.Password}, want: "stream ORDERS"}, // its API requests are refused
		{name: "remote server without credentials", env: map[string]string{"NATS_URL": "nats://nats.example.com:4222"}, want: "NATS_URL: ledger: nats://nats.example.com:4222 is not on this machine"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := open(tt.env)
			if err == nil {
				defer m.Close()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("open: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("open: %v, want an error with %q", err, tt.want)
			}
		})
	}
}
