package host_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	outboxv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/outbox/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox/outboxgrpc"
)

// ownerService is an outbox service that offers its outbox to the host.
type ownerService struct {
	*outboxService
	short string
}

func (s ownerService) Outbox() outboxgrpc.Outbox {
	return outboxgrpc.Outbox{Service: s.short, DB: s.db, Notify: s.relay.Notify}
}

var _ host.OutboxOwner = ownerService{}

// park puts one message in s's parked table, as its relay would.
func (s ownerService) park(tb testing.TB, id string) {
	tb.Helper()
	now := time.Now().UnixMicro()
	if _, err := s.db.W.Exec(`INSERT INTO outbox_parked (msg_id, subject, headers, payload, created_at, parked_at, reason, detail)
		VALUES ($1, 't.1', NULL, $2, $3, $3, 'no_stream', 'no stream')`, id, []byte(id), now); err != nil {
		tb.Fatal(err)
	}
}

// adminClient runs a host of services and returns an admin client of its
// OutboxAdminService.
func adminClient(tb testing.TB, services ...host.Service) outboxv1.OutboxAdminServiceClient {
	tb.Helper()
	tokens := &grpcx.Tokens{}
	tokens.Add("admin-token-0123456789", grpcx.ScopeAdmin)
	h, err := host.New(host.Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Tokens: tokens,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, services...)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	conn, err := grpcx.Dial(h.GRPCAddr(), grpcx.ClientOptions{Token: "admin-token-0123456789"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return outboxv1.NewOutboxAdminServiceClient(conn)
}

// parkedIDs lists the ids parked in the named service's outbox.
func parkedIDs(tb testing.TB, c outboxv1.OutboxAdminServiceClient, service string) ([]string, error) {
	tb.Helper()
	resp, err := c.ListParked(context.Background(), &outboxv1.ListParkedRequest{Service: service})
	var ids []string
	for _, m := range resp.GetMessages() {
		ids = append(ids, m.GetId())
	}
	return ids, err
}

// TestOutboxAdminRouting: one host serves the outboxes of all its services
// (the single process), each request reaching the one it names; a host of
// one service (the distributed deployment) refuses another's name.
func TestOutboxAdminRouting(t *testing.T) {
	ledger := ownerService{newOutboxService(t, "points-ledger", -1), "ledger"}
	ingest := ownerService{newOutboxService(t, "order-ingest", -1), "ingest"}
	ledger.park(t, "l1")
	ingest.park(t, "i1")

	both := adminClient(t, ingest, ledger)
	for service, want := range map[string]string{"ledger": "l1", "ingest": "i1"} {
		if ids, err := parkedIDs(t, both, service); err != nil || len(ids) != 1 || ids[0] != want {
			t.Errorf("%s in the shared host: %v, %v; want [%s]", service, ids, err, want)
		}
	}

	alone := adminClient(t, ledger)
	if ids, err := parkedIDs(t, alone, "ledger"); err != nil || len(ids) != 1 || ids[0] != "l1" {
		t.Errorf("ledger alone: %v, %v; want [l1]", ids, err)
	}
	if _, err := parkedIDs(t, alone, "ingest"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ingest asked of the ledger alone: %v, want InvalidArgument", err)
	}

	// A host without outboxes does not offer the service at all.
	none := adminClient(t, newOutboxService(t, "plain", -1))
	if _, err := parkedIDs(t, none, "ledger"); status.Code(err) != codes.Unimplemented {
		t.Errorf("host without outboxes: %v, want Unimplemented", err)
	}
}
