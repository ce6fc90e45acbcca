package grpcapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/grpcapi"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/hot"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	readToken  = "reader-token-0123456789"
	adminToken = "admin-token-0123456789"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T) (reader, admin segmentationv1.SegmentationServiceClient, sc *app.App) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "seg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := store.Open(ctx, db, log)
	if err != nil {
		t.Fatal(err)
	}
	h := hot.NewMemory()
	sc, err = app.New(ctx, st, h, app.Options{Rules: segment.DefaultFlagRules, HorizonDays: 365, Now: func() time.Time { return now }}, log)
	if err != nil {
		t.Fatal(err)
	}
	tokens := &grpcx.Tokens{}
	tokens.Add(readToken, grpcapi.ScopeRead)
	tokens.Add(adminToken, grpcx.ScopeAdmin)
	srv, err := grpcx.NewServer(grpcx.ServerOptions{Tokens: tokens, Scopes: grpcapi.Scopes, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	segmentationv1.RegisterSegmentationServiceServer(srv.Server, grpcapi.New(sc, "EUR", log))
	addr := testkit.GRPC(t, srv.Server)
	dial := func(tok string) segmentationv1.SegmentationServiceClient {
		cc, err := grpcx.Dial(addr, grpcx.ClientOptions{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return segmentationv1.NewSegmentationServiceClient(cc)
	}
	return dial(readToken), dial(adminToken), sc
}

// history draws customers from the BG/NBD story (gamma purchase rates,
// beta dropout after each purchase) over the 180 days before now.
func history(customers int) []segment.Event {
	src := rand.New(rand.NewPCG(3, 4))
	lambda := distuv.Gamma{Alpha: 0.6, Beta: 6, Src: src}
	drop := distuv.Beta{Alpha: 1, Beta: 4, Src: src}
	var evs []segment.Event
	for i := 0; i < customers; i++ {
		day, rate, p := src.IntN(90), lambda.Rand(), drop.Rand()
		for k := 0; day < 180; k++ {
			evs = append(evs, segment.Event{
				ID: fmt.Sprintf("e%d-%d", i, k), Kind: segment.Paid, CustomerID: fmt.Sprintf("c%03d", i), Source: "shop",
				OrderID: fmt.Sprintf("o%d-%d", i, k), Channel: "web", Currency: "EUR", Discounted: k%2 == 0,
				OccurredAt: now.AddDate(0, 0, day-180), BaseTotal: int64(1000 + src.IntN(6000)),
			})
			if src.Float64() < p {
				break
			}
			day += 1 + int(src.ExpFloat64()/math.Max(rate, 1e-3))
		}
	}
	return evs
}

func code(err error) codes.Code { return status.Code(err) }

func TestAPI(t *testing.T) {
	ctx := context.Background()
	reader, admin, sc := setup(t)
	if _, err := reader.GetModel(ctx, &segmentationv1.GetModelRequest{}); code(err) != codes.FailedPrecondition {
		t.Errorf("model before a fit: %v", err)
	}
	evs := history(120)
	// The expected features of the busiest customer, and how many
	// customers have each number of orders.
	perCustomer := map[string][]segment.Event{}
	for _, ev := range evs {
		perCustomer[ev.CustomerID] = append(perCustomer[ev.CustomerID], ev)
	}
	busiest := "c000"
	withOrders := map[int]int{}
	for id, es := range perCustomer {
		withOrders[len(es)]++
		if len(es) > len(perCustomer[busiest]) || (len(es) == len(perCustomer[busiest]) && id < busiest) {
			busiest = id
		}
	}
	var value, discounted int64
	for _, ev := range perCustomer[busiest] {
		value += ev.BaseTotal
		if ev.Discounted {
			discounted++
		}
	}
	orders := int64(len(perCustomer[busiest]))
	if _, _, err := sc.ApplyOrders(ctx, evs, nil, time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Refit(ctx, &segmentationv1.RefitRequest{}); code(err) != codes.PermissionDenied {
		t.Errorf("refit with a read token: %v", err)
	}
	rr, err := admin.Refit(ctx, &segmentationv1.RefitRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rr.GetModel().GetBgNbd().GetR() <= 0 || rr.GetModel().GetCustomers() != 120 || !rr.GetModel().GetFittedAt().AsTime().Equal(now) {
		t.Errorf("refit %v", rr)
	}
	m, err := reader.GetModel(ctx, &segmentationv1.GetModelRequest{})
	if err != nil || m.GetGammaGamma().GetP() != rr.GetModel().GetGammaGamma().GetP() {
		t.Errorf("model %v, %v", m, err)
	}
	if se := m.GetBgNbd().GetStandardErrors(); se.GetR() <= 0 || se.GetAlpha() <= 0 || se.GetA() <= 0 || se.GetB() <= 0 ||
		m.GetGammaGamma().GetStandardErrors().GetGamma() <= 0 || m.GetUnit() != "day" || m.GetRepeatCustomers() <= 0 {
		t.Errorf("model without standard errors: %v", m)
	}

	p, err := reader.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: busiest})
	if err != nil {
		t.Fatal(err)
	}
	if pr := p.GetPrediction(); pr.GetClvInterval().GetLow().GetMinorUnits() >= pr.GetClv().GetMinorUnits() ||
		pr.GetClvInterval().GetHigh().GetMinorUnits() <= pr.GetClv().GetMinorUnits() || pr.GetClvInterval().GetLow().GetCurrency() != "EUR" ||
		!(pr.GetExpectedPurchasesInterval().GetLow() < pr.GetExpectedPurchases() && pr.GetExpectedPurchases() < pr.GetExpectedPurchasesInterval().GetHigh()) ||
		p.GetPredictionWithheld() != segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_UNSPECIFIED {
		t.Errorf("prediction %v (withheld %v): want intervals around the values", pr, p.GetPredictionWithheld())
	}
	f := p.GetFeatures()
	last := perCustomer[busiest][orders-1].OccurredAt
	if f.GetOrders() != orders || f.GetTotalValue().GetMinorUnits() != value || f.GetTotalValue().GetCurrency() != "EUR" ||
		f.GetAverageOrderValue().GetMinorUnits() != value/orders || f.GetDiscountedOrders() != discounted ||
		f.GetDiscountedShare() != float64(discounted)/float64(orders) || len(f.GetChannels()) != 1 ||
		!f.GetLastOrderAt().AsTime().Equal(last) || p.GetSegment() == segmentationv1.Segment_SEGMENT_UNSPECIFIED ||
		p.GetPrediction().GetPAlive() <= 0 || p.GetPrediction().GetClv().GetMinorUnits() <= 0 || p.GetRfm().GetFrequency() != 5 {
		t.Errorf("profile %v", p)
	}
	if _, err := reader.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: "nobody"}); code(err) != codes.NotFound {
		t.Errorf("unknown customer: %v", err)
	}
	if _, err := reader.GetProfile(ctx, &segmentationv1.GetProfileRequest{}); code(err) != codes.InvalidArgument {
		t.Errorf("empty customer id: %v", err)
	}

	// Paging through every segment lists every customer once.
	seen := map[string]bool{}
	stats, err := reader.GetSegmentStats(ctx, &segmentationv1.GetSegmentStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, s := range stats.GetSegments() {
		total += s.GetCustomers()
		token, n := "", int64(0)
		for {
			page, err := reader.ListSegmentMembers(ctx, &segmentationv1.ListSegmentMembersRequest{
				Segment: s.GetSegment(), Page: &commonv1.PageRequest{PageSize: 7, PageToken: token}})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range page.GetCustomerIds() {
				if seen[id] {
					t.Fatalf("%s listed twice", id)
				}
				seen[id] = true
				n++
			}
			if token = page.GetPage().GetNextPageToken(); token == "" {
				break
			}
		}
		if n != s.GetCustomers() {
			t.Errorf("segment %v: listed %d, stats say %d", s.GetSegment(), n, s.GetCustomers())
		}
	}
	if total != 120 || len(seen) != 120 || len(stats.GetClvDistribution()) == 0 || stats.GetScoredAt() == nil {
		t.Errorf("stats total %d, listed %d, %v", total, len(seen), stats)
	}
	if _, err := reader.ListSegmentMembers(ctx, &segmentationv1.ListSegmentMembersRequest{}); code(err) != codes.InvalidArgument {
		t.Errorf("no segment: %v", err)
	}

	for _, by := range []segmentationv1.Ranking{segmentationv1.Ranking_RANKING_CLV, segmentationv1.Ranking_RANKING_SPEND} {
		top, err := reader.TopCustomers(ctx, &segmentationv1.TopCustomersRequest{By: by, Limit: 10})
		if err != nil || len(top.GetCustomers()) != 10 {
			t.Fatalf("top %v: %v %v", by, top, err)
		}
		vals := make([]int64, 10)
		for i, c := range top.GetCustomers() {
			vals[i] = c.GetValue().GetMinorUnits()
		}
		if !sort.SliceIsSorted(vals, func(i, j int) bool { return vals[i] > vals[j] }) {
			t.Errorf("top %v not descending: %v", by, vals)
		}
	}

	if _, err := reader.RebuildHotStore(ctx, &segmentationv1.RebuildHotStoreRequest{}); code(err) != codes.PermissionDenied {
		t.Errorf("rebuild with a read token: %v", err)
	}
	rb, err := admin.RebuildHotStore(ctx, &segmentationv1.RebuildHotStoreRequest{})
	if err != nil || rb.GetCustomers() != 120 {
		t.Fatalf("rebuild: %v, %v", rb, err)
	}
	if again, err := reader.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: busiest}); err != nil || !proto.Equal(again, p) {
		t.Errorf("profile after rebuild:\n%v\nbefore:\n%v", again, p)
	}

	curve, err := reader.GetRepeatPurchaseCurve(ctx, &segmentationv1.GetRepeatPurchaseCurveRequest{})
	if err != nil {
		t.Fatal(err)
	}
	atLeast := func(n int) (c int64) {
		for k, v := range withOrders {
			if k >= n {
				c += int64(v)
			}
		}
		return c
	}
	if len(curve.GetPoints()) == 0 || len(curve.GetPoints()) > 10 {
		t.Fatalf("curve %v", curve)
	}
	for _, pt := range curve.GetPoints() {
		n := int(pt.GetOrders())
		want := float64(atLeast(n+1)) / float64(atLeast(n))
		if pt.GetCustomers() != atLeast(n) || pt.GetRepeatProbability() != want {
			t.Errorf("point %v, want %d customers, probability %v", pt, atLeast(n), want)
		}
	}
}

// TestScopesCoverEveryMethod keeps new methods from going out unguarded.
func TestScopesCoverEveryMethod(t *testing.T) {
	for _, m := range segmentationv1.SegmentationService_ServiceDesc.Methods {
		full := "/" + segmentationv1.SegmentationService_ServiceDesc.ServiceName + "/" + m.MethodName
		if grpcapi.Scopes[full] == "" {
			t.Errorf("%s has no scope", full)
		}
	}
}

// TestRefitSmallShop is the new shop: five customers, one of them
// with a single 60 EUR order. Refit rescores them and succeeds with a
// warning; no prediction is shown and the model says how much history is
// missing, instead of a CLV extrapolated from nothing.
func TestRefitSmallShop(t *testing.T) {
	ctx := context.Background()
	reader, admin, sc := setup(t)
	var evs []segment.Event
	for i, orders := range []int{1, 1, 2, 3, 1} {
		for k := range orders {
			evs = append(evs, segment.Event{
				ID: fmt.Sprintf("e%d-%d", i, k), Kind: segment.Paid, CustomerID: fmt.Sprintf("c%d", i), Source: "shop",
				OrderID: fmt.Sprintf("o%d-%d", i, k), Channel: "web", Currency: "EUR",
				OccurredAt: now.AddDate(0, 0, -40+10*k), BaseTotal: 6000,
			})
		}
	}
	if _, _, err := sc.ApplyOrders(ctx, evs, nil, time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	var trailer metadata.MD
	rr, err := admin.Refit(ctx, &segmentationv1.RefitRequest{}, grpc.Trailer(&trailer))
	if err != nil || rr.GetModel() != nil {
		t.Fatalf("refit: %v, %v", rr, err)
	}
	warn := trailer.Get(grpcapi.WarningTrailer)
	if len(warn) != 1 || !strings.Contains(warn[0], "not enough history: 2 repeat customers, need 50") {
		t.Errorf("warning %q", warn)
	}
	for i := range 5 {
		p, err := reader.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: fmt.Sprintf("c%d", i)})
		if err != nil || p.GetPrediction() != nil || p.GetPredictionWithheld() != segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_NOT_ENOUGH_HISTORY {
			t.Errorf("c%d: prediction %v (withheld %v), %v; want none, not enough history", i, p.GetPrediction(), p.GetPredictionWithheld(), err)
		}
	}
	_, err = admin.ValidateModel(ctx, &segmentationv1.ValidateModelRequest{CalibrationEnd: now.AddDate(0, 0, -35).Format(time.DateOnly)})
	if code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "not enough history") {
		t.Errorf("validate a small shop: %v", err)
	}
	_, err = reader.GetModel(ctx, &segmentationv1.GetModelRequest{})
	if code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "not enough history: 2 customers with more than one order") {
		t.Errorf("model: %v", err)
	}
}

// TestValidateModel runs a holdout validation over the API and checks it
// against the offline route: the same purchases as transactions through
// clv.SplitHoldout and clv.Validate must give the same comparison.
func TestValidateModel(t *testing.T) {
	ctx := context.Background()
	reader, admin, sc := setup(t)
	evs := history(600)
	if _, _, err := sc.ApplyOrders(ctx, evs, nil, time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	calEnd := now.AddDate(0, 0, -45)
	req := &segmentationv1.ValidateModelRequest{CalibrationEnd: calEnd.Format(time.DateOnly)}
	if _, err := reader.ValidateModel(ctx, req); code(err) != codes.PermissionDenied {
		t.Errorf("validate with a read token: %v", err)
	}
	got, err := admin.ValidateModel(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	txs := make([]clv.Transaction, len(evs))
	for i, ev := range evs {
		txs[i] = clv.Transaction{CustomerID: ev.CustomerID, Date: ev.OccurredAt, Amount: float64(ev.BaseTotal)}
	}
	last, _ := clv.LastDate(txs)
	cs, hold, err := clv.SplitHoldout(txs, calEnd, last, clv.Day)
	if err != nil {
		t.Fatal(err)
	}
	days := int(last.Sub(calEnd.Truncate(24*time.Hour)).Hours() / 24)
	want, err := clv.Validate(ctx, cs, hold, clv.ValidateOptions{Unit: clv.Day, Length: float64(days)})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetHoldoutEnd() != last.Format(time.DateOnly) || int(got.GetHoldoutDays()) != days || got.GetCustomers() != int64(len(cs)) {
		t.Errorf("got holdout to %s (%d days), %d customers; want %s, %d, %d", got.GetHoldoutEnd(), got.GetHoldoutDays(), got.GetCustomers(),
			last.Format(time.DateOnly), days, len(cs))
	}
	if got.GetActual() != want.Actual || math.Abs(got.GetPredicted()-want.Predicted) > 1e-9 || math.Abs(got.GetMae()-want.MAE) > 1e-12 ||
		math.Abs(got.GetCorrelation()-want.Correlation) > 1e-12 || len(got.GetByFrequency()) != len(want.Bins) {
		t.Errorf("got actual %v, predicted %v, MAE %v, correlation %v, %d bins; want %v, %v, %v, %v, %d",
			got.GetActual(), got.GetPredicted(), got.GetMae(), got.GetCorrelation(), len(got.GetByFrequency()),
			want.Actual, want.Predicted, want.MAE, want.Correlation, len(want.Bins))
	}
	for i, b := range got.GetByFrequency() {
		if w := want.Bins[min(i, len(want.Bins)-1)]; b.GetCustomers() != int64(w.Customers) || b.GetActual() != w.Actual || math.Abs(b.GetPredicted()-w.Predicted) > 1e-12 {
			t.Errorf("bin %d: got %v, want %+v", i, b, w)
		}
	}
	if got.GetModel().GetUnit() != "day" || got.GetModel().GetBgNbd().GetStandardErrors().GetR() <= 0 || got.GetSpend().GetActualRevenue().GetCurrency() != "EUR" {
		t.Errorf("model %v, spend %v", got.GetModel(), got.GetSpend())
	}
	if got.GetActual() == 0 {
		t.Error("no purchase in the holdout: the test compares nothing")
	}

	// The model in use is untouched; bad periods are the caller's mistake.
	if _, err := reader.GetModel(ctx, &segmentationv1.GetModelRequest{}); code(err) != codes.FailedPrecondition {
		t.Errorf("model after a validation: %v, want none fitted", err)
	}
	for _, bad := range []*segmentationv1.ValidateModelRequest{
		{},
		{CalibrationEnd: "2026-02-30"},
		{CalibrationEnd: calEnd.Format(time.DateOnly), HoldoutEnd: calEnd.Format(time.DateOnly)},
		{CalibrationEnd: now.Format(time.DateOnly)},
	} {
		if _, err := admin.ValidateModel(ctx, bad); code(err) != codes.InvalidArgument {
			t.Errorf("validate %v: %v, want InvalidArgument", bad, err)
		}
	}
}
