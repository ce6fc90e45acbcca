package app_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/fx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/store"
)

// The peers as the read sees them: each answers for the customer it
// knows, fails with err, or, with hang, waits until the caller gives up.
type fakeLedger struct {
	known string
	err   error
	hang  bool
}

func (f fakeLedger) GetAccount(ctx context.Context, in *ledgerv1.GetAccountRequest, _ ...grpc.CallOption) (*ledgerv1.GetAccountResponse, error) {
	if f.hang {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	if in.GetCustomerId() != f.known {
		return nil, status.Error(codes.NotFound, "no account")
	}
	return &ledgerv1.GetAccountResponse{CustomerId: in.GetCustomerId(), Balance: 42}, nil
}

type fakeSegmentation struct {
	known string
	err   error
}

func (f fakeSegmentation) GetProfile(_ context.Context, in *segmentationv1.GetProfileRequest, _ ...grpc.CallOption) (*segmentationv1.GetProfileResponse, error) {
	if f.err != nil {
		return nil, f.err
	}
	if in.GetCustomerId() != f.known {
		return nil, status.Error(codes.NotFound, "no profile")
	}
	return &segmentationv1.GetProfileResponse{CustomerId: in.GetCustomerId(), Segment: segmentationv1.Segment_SEGMENT_NEW}, nil
}

type fakeFeedback struct{ err error }

func (f fakeFeedback) ListRecoveryQueue(_ context.Context, in *feedbackv1.ListRecoveryQueueRequest, _ ...grpc.CallOption) (*feedbackv1.ListRecoveryQueueResponse, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &feedbackv1.ListRecoveryQueueResponse{Cases: []*feedbackv1.RecoveryCase{{CaseId: "nps:x/1", CustomerId: in.GetCustomerId()}}}, nil
}

type nopNotifier struct{}

func (nopNotifier) Notify() {}

const secret = "0123456789abcdef0123456789abcdef"

// ingested returns a store holding one customer's paid order, the
// customer's id, and the hasher ingestion used.
func ingested(t *testing.T) (*store.Store, string, *ingest.Hasher) {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "ingest.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := store.Open(ctx, db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rates, err := fx.NewTable("EUR", nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ingest.NewHasher([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(ingest.NewPreparer(rates, h), st, nopNotifier{}, time.Now, noop.NewMeterProvider().Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.IngestOrders(ctx, []app.Item{{Order: &ingestv1.Order{
		Source: "shop-eu", OrderId: "A-1", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
		OccurredAt: timestamppb.New(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)),
		Total:      &commonv1.Money{MinorUnits: 2500, Currency: "EUR"},
		Customer:   &ingestv1.CustomerInput{PlatformCustomerId: "P-77", Email: "Ann.Secret@example.com"},
	}}}, nil)
	if err != nil || res[0].Outcome != ingest.Accepted {
		t.Fatalf("ingest: %v %v", res, err)
	}
	return st, res[0].CustomerID, h
}

func TestGetCustomer(t *testing.T) {
	st, id, h := ingested(t)
	down := status.Error(codes.Unavailable, "connection refused")
	all := app.Peers{Ledger: fakeLedger{known: id}, Segmentation: fakeSegmentation{known: id}, Feedback: fakeFeedback{}}
	tests := []struct {
		name            string
		ref             app.CustomerRef
		peers           app.Peers
		wantErr         error
		wantUnavailable []string
		wantKeySource   string
	}{
		{name: "by id, every peer answers", ref: app.CustomerRef{ID: id}, peers: all},
		{name: "by e-mail, as ingestion normalises it", ref: app.CustomerRef{Email: "  ann.secret@EXAMPLE.com "}, peers: all},
		{name: "by platform id", ref: app.CustomerRef{Source: "shop-eu", PlatformID: "P-77"}, peers: all, wantKeySource: "shop-eu"},
		{name: "the ledger down", ref: app.CustomerRef{ID: id},
			peers:           app.Peers{Ledger: fakeLedger{err: down}, Segmentation: fakeSegmentation{known: id}, Feedback: fakeFeedback{}},
			wantUnavailable: []string{app.PeerLedger}},
		{name: "the ledger too slow, feedback down", ref: app.CustomerRef{ID: id},
			peers:           app.Peers{Ledger: fakeLedger{hang: true}, Segmentation: fakeSegmentation{known: id}, Feedback: fakeFeedback{err: down}},
			wantUnavailable: []string{app.PeerLedger, app.PeerFeedback}},
		{name: "no peer reachable", ref: app.CustomerRef{ID: id}, peers: app.Peers{},
			wantUnavailable: []string{app.PeerLedger, app.PeerSegmentation, app.PeerFeedback}},
		{name: "segmentation does not know the customer yet", ref: app.CustomerRef{ID: id},
			peers: app.Peers{Ledger: fakeLedger{known: id}, Segmentation: fakeSegmentation{known: "cus_other"}, Feedback: fakeFeedback{}}},
		{name: "an unknown e-mail", ref: app.CustomerRef{Email: "nobody@example.com"}, peers: all, wantErr: ingest.ErrCustomerNotFound},
		{name: "the platform id on another source", ref: app.CustomerRef{Source: "shop-us", PlatformID: "P-77"}, peers: all, wantErr: ingest.ErrCustomerNotFound},
		{name: "an unknown id", ref: app.CustomerRef{ID: "cus_none"}, peers: all, wantErr: ingest.ErrCustomerNotFound},
		{name: "no key", ref: app.CustomerRef{}, peers: all, wantErr: app.ErrNoCustomerKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			c := app.NewCustomers(h, st, tt.peers, 100*time.Millisecond, slog.New(slog.NewJSONHandler(&logs, nil)))
			start := time.Now()
			v, err := c.GetCustomer(context.Background(), tt.ref, 20)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v: a slow peer must not hold the read past its deadline", took)
			}
			if tt.wantErr != nil || err != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if v.ID != id || len(v.Orders) != 1 || v.Orders[0].OrderID != "A-1" || v.OrderCount != 1 || len(v.Keys) != 2 {
				t.Errorf("customer %+v, want %s with order A-1 and two keys", v.Customer, id)
			}
			if !slices.Equal(v.Unavailable, tt.wantUnavailable) {
				t.Errorf("unavailable %v, want %v", v.Unavailable, tt.wantUnavailable)
			}
			if got := v.KeySource; got != tt.wantKeySource {
				t.Errorf("key source %q, want %q", got, tt.wantKeySource)
			}
			answered := func(peer string) bool { return !slices.Contains(tt.wantUnavailable, peer) }
			knownProfile := tt.peers.Segmentation != nil && tt.peers.Segmentation.(fakeSegmentation).known == id
			if got := v.Account.GetBalance() == 42; got != answered(app.PeerLedger) {
				t.Errorf("account %v, want one: %v", v.Account, answered(app.PeerLedger))
			}
			if got := v.Profile != nil; got != (answered(app.PeerSegmentation) && knownProfile) {
				t.Errorf("profile %v", v.Profile)
			}
			if got := len(v.Cases) == 1 && v.Cases[0].GetCustomerId() == id; got != answered(app.PeerFeedback) {
				t.Errorf("cases %v", v.Cases)
			}
			if strings.Contains(strings.ToLower(logs.String()), "ann.secret") || strings.Contains(logs.String(), "P-77") {
				t.Errorf("a clear key in the logs: %s", logs.String())
			}
		})
	}
}
