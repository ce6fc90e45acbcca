package grpcapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/grpcapi"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const programme = `
base_currency: EUR
tiers:
  levels:
    - {name: Bronze, min_spend: "0"}
    - {name: Silver, min_spend: "500.00", multiplier: "2"}
bonuses: {first_order: 10}
expiry: {after_days: 365, warn_days: 30}
`

// BenchmarkGetAccount measures GetAccount over a loopback gRPC connection
// through the service's server (authentication, validation, tracing)
// against 2,000 accounts of ten paid orders each, one call at a time, and
// reports the latency percentiles of the calls.
func BenchmarkGetAccount(b *testing.B) {
	for _, be := range testkit.Databases("ledger.db") {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			db, err := sqldb.Open(ctx, be.URL(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			t0 := time.Now().UTC().Add(-24 * time.Hour)
			st, err := store.Open(ctx, db, bus.Encode, log)
			if err != nil {
				b.Fatal(err)
			}
			p, err := ledger.ParseProgramme([]byte(programme))
			if err != nil {
				b.Fatal(err)
			}
			a := app.New(st, nil)
			const customers = 2000
			var in []app.Input
			for n := range customers * 10 {
				eur := &commonv1.Money{MinorUnits: 42_50, Currency: "EUR"}
				in = append(in, app.Input{Ctx: ctx, Event: &ordersv1.OrderEvent{EventId: fmt.Sprint("e", n),
					Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, Source: "shop", OrderId: fmt.Sprint("o", n),
					CustomerId: fmt.Sprint("c", n%customers), OccurredAt: timestamppb.New(t0.Add(time.Duration(n) * time.Second)),
					Total: eur, BaseTotal: eur, OrderSequence: 1}})
				if len(in) == 500 {
					if _, err := a.ApplyOrders(ctx, p, in, nil); err != nil {
						b.Fatal(err)
					}
					in = in[:0]
				}
			}

			tokens := &grpcx.Tokens{}
			tokens.Add("bench", "ledger:read")
			srv, err := grpcx.NewServer(grpcx.ServerOptions{Tokens: tokens, Scopes: grpcapi.Scopes, Log: log})
			if err != nil {
				b.Fatal(err)
			}
			ledgerv1.RegisterLedgerServiceServer(srv.Server, grpcapi.New(a, func() *ledger.Programme { return p }, nil, func() {}, log, time.Now))
			cc, err := grpcx.Dial(testkit.GRPC(b, srv.Server), grpcx.ClientOptions{Token: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			client := ledgerv1.NewLedgerServiceClient(cc)
			testkit.TimeCalls(b, func(i int) error {
				resp, err := client.GetAccount(ctx, &ledgerv1.GetAccountRequest{CustomerId: fmt.Sprint("c", (i*7919)%customers)})
				if err == nil && resp.GetBalance() == 0 {
					err = fmt.Errorf("no balance: %v", resp)
				}
				return err
			})
		})
	}
}
