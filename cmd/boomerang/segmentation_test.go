package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

// TestSegmentationEndToEnd sends orders in through order-ingest's gRPC API
// and reads the customers' profiles out of segmentation's: features in the
// base currency across shops and currencies, a refund, a discount, and the
// segment from the first scoring run.
func TestSegmentationEndToEnd(t *testing.T) {
	const segReader = "segment-reader-0123456789abcdef"
	p := startPlatform(t, t.TempDir(), map[string]string{
		"BOOMERANG_API_TOKENS":            writerToken + ":ingest:write,ingest:read;" + segReader + ":segmentation:read",
		"SEGMENTATION_MIN_SCORE_INTERVAL": "0s",
	})
	ctx := context.Background()
	ingest := ingestv1.NewIngestServiceClient(p.conn)
	rc, err := grpcx.Dial(p.m.GRPCAddr(), grpcx.ClientOptions{Token: segReader})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	seg := segmentationv1.NewSegmentationServiceClient(rc)

	day := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Hour)
	order := func(source, id string, kind ordersv1.OrderEventKind, at time.Time, minor int64, currency, email string) *ingestv1.Order {
		return &ingestv1.Order{
			Source: source, OrderId: id, Kind: kind, OccurredAt: timestamppb.New(at), Channel: "web",
			Total:    &commonv1.Money{MinorUnits: minor, Currency: currency},
			Customer: &ingestv1.CustomerInput{Email: email},
		}
	}
	paid := ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
	ann := order("shop-eu", "A-1", paid, day.AddDate(0, 0, -20), 5000, "EUR", "ann@example.com")
	ann.Discount = &ingestv1.DiscountInput{Codes: []string{"WELCOME"}}
	// The same person on another shop, in dollars: one customer by e-mail.
	annUS := order("shop-us", "U-7", paid, day, 10000, "USD", "Ann@Example.com")
	bob := order("shop-eu", "B-1", paid, day.AddDate(0, 0, -3), 2500, "EUR", "bob@example.com")
	refund := order("shop-us", "U-7", ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, day.Add(time.Hour), 0, "USD", "")
	refund.Total = nil
	refund.Customer = nil
	refund.Refund = &ingestv1.RefundInput{RefundId: "R-1", Amount: &commonv1.Money{MinorUnits: 2000, Currency: "USD"}}

	resp, err := ingest.SubmitOrders(ctx, &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{ann, annUS, bob, refund}})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.GetResults() {
		if r.GetOutcome() != ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED {
			t.Fatalf("order %d: %v", i, r)
		}
	}
	annID, bobID := resp.GetResults()[0].GetCustomerId(), resp.GetResults()[2].GetCustomerId()
	if resp.GetResults()[1].GetCustomerId() != annID {
		t.Fatalf("Ann's orders went to two customers")
	}

	// 50.00 EUR + 100.00 USD at 0.9 − 18.00 EUR refunded = 122.00 EUR.
	var prof *segmentationv1.GetProfileResponse
	deadline := time.Now().Add(20 * time.Second)
	for {
		prof, err = seg.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: annID})
		// Runs start as the base grows; the one that saw both customers
		// scores them against each other.
		if err == nil && prof.GetFeatures().GetRefunds() == 1 && scored(ctx, t, seg, 2) && prof.GetRfm().GetFrequency() == 3 {
			break
		}
		if err != nil && status.Code(err) != codes.NotFound {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("profile not ready within 20s: %v, %v", prof, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f := prof.GetFeatures()
	checks := []struct {
		name      string
		got, want any
	}{
		{"orders", f.GetOrders(), int64(2)},
		{"total value", f.GetTotalValue().GetMinorUnits(), int64(12200)},
		{"currency", f.GetTotalValue().GetCurrency(), "EUR"},
		{"average order value", f.GetAverageOrderValue().GetMinorUnits(), int64(6100)},
		{"discounted orders", f.GetDiscountedOrders(), int64(1)},
		{"discounted share", f.GetDiscountedShare(), 0.5},
		{"refunds", f.GetRefunds(), int64(1)},
		{"channels", len(f.GetChannels()), 1},
		{"first order", f.GetFirstOrderAt().AsTime(), day.AddDate(0, 0, -20)},
		{"last order", f.GetLastOrderAt().AsTime(), day},
		// Of two customers, the better one ranks above half the base:
		// 1 + ⌊5·1/2⌋ = 3.
		{"frequency score", prof.GetRfm().GetFrequency(), int32(3)},
		{"recency score", prof.GetRfm().GetRecency(), int32(3)},
		{"monetary score", prof.GetRfm().GetMonetary(), int32(3)},
		{"segment", prof.GetSegment(), segmentationv1.Segment_SEGMENT_NEED_ATTENTION},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	hasNew := false
	for _, fl := range prof.GetFlags() {
		hasNew = hasNew || fl == segmentationv1.Flag_FLAG_NEW
	}
	if !hasNew {
		t.Errorf("flags %v: a customer since 20 days is new", prof.GetFlags())
	}
	top, err := seg.TopCustomers(ctx, &segmentationv1.TopCustomersRequest{By: segmentationv1.Ranking_RANKING_SPEND, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(top.GetCustomers()) != 2 || top.GetCustomers()[0].GetCustomerId() != annID || top.GetCustomers()[1].GetCustomerId() != bobID {
		t.Errorf("top by spend %v", top)
	}
	// Refit needs the admin scope.
	if _, err := seg.Refit(ctx, &segmentationv1.RefitRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("refit with a read token: %v", err)
	}
}

// scored reports whether a scoring run has counted n customers into
// segments.
func scored(ctx context.Context, tb testing.TB, seg segmentationv1.SegmentationServiceClient, n int64) bool {
	tb.Helper()
	st, err := seg.GetSegmentStats(ctx, &segmentationv1.GetSegmentStatsRequest{})
	if err != nil {
		tb.Fatal(err)
	}
	var c int64
	for _, s := range st.GetSegments() {
		c += s.GetCustomers()
	}
	return c == n && st.GetScoredAt() != nil
}
