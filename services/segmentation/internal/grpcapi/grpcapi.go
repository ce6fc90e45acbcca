// Package grpcapi is segmentation's gRPC port: it translates
// boomerang.segmentation.v1 to the use cases of internal/app (whose reads
// come from the hot store, so that they never touch SQL) and back. Errors
// map to gRPC codes in one place. Requests arrive already validated
// against their .proto rules.
package grpcapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/hot"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// ScopeRead is the token scope of segmentation's reads.
const ScopeRead = "segmentation:read"

// Scopes are the token scopes each method needs: reads need
// segmentation:read; Refit (expensive, changes scores), RebuildHotStore
// and ValidateModel (a fit over the whole base) admin.
var Scopes = grpcx.MethodScopes{
	segmentationv1.SegmentationService_GetProfile_FullMethodName:             ScopeRead,
	segmentationv1.SegmentationService_ListSegmentMembers_FullMethodName:     ScopeRead,
	segmentationv1.SegmentationService_TopCustomers_FullMethodName:           ScopeRead,
	segmentationv1.SegmentationService_GetSegmentStats_FullMethodName:        ScopeRead,
	segmentationv1.SegmentationService_GetRepeatPurchaseCurve_FullMethodName: ScopeRead,
	segmentationv1.SegmentationService_GetModel_FullMethodName:               ScopeRead,
	segmentationv1.SegmentationService_Refit_FullMethodName:                  grpcx.ScopeAdmin,
	segmentationv1.SegmentationService_RebuildHotStore_FullMethodName:        grpcx.ScopeAdmin,
	segmentationv1.SegmentationService_ValidateModel_FullMethodName:          grpcx.ScopeAdmin,
}

// App is what the port needs of the use cases: the reads, a scoring run
// and a rebuild of the hot store on demand.
type App interface {
	Profile(ctx context.Context, customerID string) (segment.Profile, error)
	Members(ctx context.Context, seg segment.Segment, after string, n int) ([]string, error)
	Top(ctx context.Context, by hot.Ranking, n int) ([]hot.Ranked, error)
	Population(ctx context.Context) (*segment.Population, error)
	Summary(ctx context.Context) (hot.Summary, error)
	Refit(ctx context.Context) (app.Result, error)
	Rebuild(ctx context.Context) (int, error)
	Validate(ctx context.Context, calibrationEnd, holdoutEnd time.Time) (app.Validation, error)
}

var _ App = (*app.App)(nil)

// Server implements segmentationv1.SegmentationServiceServer.
type Server struct {
	segmentationv1.UnimplementedSegmentationServiceServer
	app      App
	currency string
	log      *slog.Logger
}

var _ segmentationv1.SegmentationServiceServer = (*Server)(nil)

// New returns the server; currency is the seller's base currency, in which
// every value is.
func New(a App, currency string, log *slog.Logger) *Server {
	return &Server{app: a, currency: currency, log: log}
}

// Page sizes of ListSegmentMembers.
const (
	defaultPageSize = 100
	defaultMaxOrder = 10
)

func (s *Server) money(v int64) *commonv1.Money {
	return &commonv1.Money{MinorUnits: v, Currency: s.currency}
}

// GetProfile returns one customer's profile.
func (s *Server) GetProfile(ctx context.Context, req *segmentationv1.GetProfileRequest) (*segmentationv1.GetProfileResponse, error) {
	p, err := s.app.Profile(ctx, req.GetCustomerId())
	if err != nil {
		return nil, s.status(ctx, "get profile", err)
	}
	cur := p.Currency
	if cur == "" {
		cur = s.currency
	}
	m := func(v int64) *commonv1.Money { return &commonv1.Money{MinorUnits: v, Currency: cur} }
	resp := &segmentationv1.GetProfileResponse{
		CustomerId: p.CustomerID,
		Features: &segmentationv1.Features{
			Orders: p.Orders, TotalValue: m(p.TotalValue), AverageOrderValue: m(p.AverageOrderValue),
			DiscountedOrders: p.DiscountedOrders, DiscountedShare: p.DiscountedShare, Refunds: p.Refunds,
			Channels: p.Channels,
		},
		Rfm:     &segmentationv1.Rfm{Recency: int32(p.RFM.R), Frequency: int32(p.RFM.F), Monetary: int32(p.RFM.M)},
		Segment: bus.Segment(p.Segment),
		Flags:   bus.Flags(p.Flags),
	}
	if !p.FirstOrderAt.IsZero() {
		resp.Features.FirstOrderAt, resp.Features.LastOrderAt = timestamppb.New(p.FirstOrderAt), timestamppb.New(p.LastOrderAt)
	}
	if pr := p.Prediction; pr != nil {
		resp.Prediction = &segmentationv1.Prediction{
			ExpectedPurchases: pr.ExpectedPurchases, HorizonDays: int32(pr.HorizonDays), PAlive: pr.PAlive,
			ExpectedOrderValue: m(pr.ExpectedOrderValue), Clv: m(pr.CLV),
		}
		if pr.Interval {
			resp.Prediction.ExpectedPurchasesInterval = &segmentationv1.Interval{Low: pr.PurchasesLow, High: pr.PurchasesHigh}
			resp.Prediction.ClvInterval = &segmentationv1.MoneyInterval{Low: m(pr.CLVLow), High: m(pr.CLVHigh)}
		}
	} else {
		resp.PredictionWithheld = withheld(p.Withheld)
	}
	return resp, nil
}

// withheld maps why a prediction is missing to the API; a profile written
// before reasons were kept has none and reads as no model yet.
func withheld(w segment.Withheld) segmentationv1.PredictionWithheld {
	switch w {
	case segment.WithheldNotEnoughHistory:
		return segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_NOT_ENOUGH_HISTORY
	case segment.WithheldUnvalued:
		return segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_UNVALUED
	case segment.WithheldNoOrders:
		return segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_NO_ORDERS
	}
	return segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_NO_MODEL
}

// ListSegmentMembers pages through a segment in customer id order; the
// page token is the last id of the page before, encoded.
func (s *Server) ListSegmentMembers(ctx context.Context, req *segmentationv1.ListSegmentMembersRequest) (*segmentationv1.ListSegmentMembersResponse, error) {
	seg := bus.FromSegment(req.GetSegment())
	if seg == segment.Unscored {
		return nil, grpcx.InvalidArgument("invalid request: segment: unknown", []grpcx.FieldViolation{{Field: "segment", Description: "unknown segment"}})
	}
	size := int(req.GetPage().GetPageSize())
	if size == 0 {
		size = defaultPageSize
	}
	after, err := base64.RawURLEncoding.DecodeString(req.GetPage().GetPageToken())
	if err != nil {
		return nil, grpcx.InvalidArgument("invalid request: page.page_token: not a token from a previous page",
			[]grpcx.FieldViolation{{Field: "page.page_token", Description: "not a token from a previous page"}})
	}
	ids, err := s.app.Members(ctx, seg, string(after), size+1)
	if err != nil {
		return nil, s.status(ctx, "list segment members", err)
	}
	resp := &segmentationv1.ListSegmentMembersResponse{Page: &commonv1.PageResponse{}}
	if len(ids) > size {
		ids = ids[:size]
		resp.Page.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(ids[size-1]))
	}
	resp.CustomerIds = ids
	return resp, nil
}

// TopCustomers lists the leaders by CLV or by net spend.
func (s *Server) TopCustomers(ctx context.Context, req *segmentationv1.TopCustomersRequest) (*segmentationv1.TopCustomersResponse, error) {
	by := hot.ByCLV
	if req.GetBy() == segmentationv1.Ranking_RANKING_SPEND {
		by = hot.BySpend
	}
	top, err := s.app.Top(ctx, by, int(req.GetLimit()))
	if err != nil {
		return nil, s.status(ctx, "top customers", err)
	}
	resp := &segmentationv1.TopCustomersResponse{Customers: make([]*segmentationv1.RankedCustomer, len(top))}
	for i, r := range top {
		resp.Customers[i] = &segmentationv1.RankedCustomer{CustomerId: r.CustomerID, Value: s.money(r.Value)}
	}
	return resp, nil
}

// GetSegmentStats returns every segment's size and value, and the CLV
// distribution.
func (s *Server) GetSegmentStats(ctx context.Context, _ *segmentationv1.GetSegmentStatsRequest) (*segmentationv1.GetSegmentStatsResponse, error) {
	pop, err := s.app.Population(ctx)
	if err != nil {
		return nil, s.status(ctx, "segment stats", err)
	}
	sum, err := s.app.Summary(ctx)
	if err != nil {
		return nil, s.status(ctx, "segment stats", err)
	}
	resp := &segmentationv1.GetSegmentStatsResponse{}
	for _, seg := range segment.Segments {
		st := pop.Segments[seg]
		resp.Segments = append(resp.Segments, &segmentationv1.SegmentStats{
			Segment: bus.Segment(seg), Customers: st.Customers, TotalValue: s.money(st.Value), TotalClv: s.money(st.CLV),
		})
	}
	for _, q := range sum.CLV {
		resp.ClvDistribution = append(resp.ClvDistribution, &segmentationv1.ClvQuantile{Q: q.Q, Clv: s.money(q.Value)})
	}
	if !sum.ScoredAt.IsZero() {
		resp.ScoredAt = timestamppb.New(sum.ScoredAt)
	}
	return resp, nil
}

// GetRepeatPurchaseCurve returns the chance of an (n+1)-th order after the
// n-th, for n up to max_orders (10 when 0).
func (s *Server) GetRepeatPurchaseCurve(ctx context.Context, req *segmentationv1.GetRepeatPurchaseCurveRequest) (*segmentationv1.GetRepeatPurchaseCurveResponse, error) {
	pop, err := s.app.Population(ctx)
	if err != nil {
		return nil, s.status(ctx, "repeat purchase curve", err)
	}
	n := int(req.GetMaxOrders())
	if n == 0 {
		n = defaultMaxOrder
	}
	resp := &segmentationv1.GetRepeatPurchaseCurveResponse{}
	for _, p := range segment.RepeatCurve(pop.Orders, n) {
		resp.Points = append(resp.Points, &segmentationv1.RepeatPurchasePoint{
			Orders: int32(p.Orders), Customers: p.Customers, RepeatProbability: p.Probability,
		})
	}
	return resp, nil
}

// errNoModel is returned while no model has been fitted.
var errNoModel = errors.New("no model fitted yet")

// GetModel returns the model in use. Without one it says how far the base
// is from the evidence a fit needs, counted as customers with more than
// one order: the fit counts only orders on a later day, worth something,
// so it may find fewer.
func (s *Server) GetModel(ctx context.Context, _ *segmentationv1.GetModelRequest) (*segmentationv1.GetModelResponse, error) {
	sum, err := s.app.Summary(ctx)
	if err != nil {
		return nil, s.status(ctx, "get model", err)
	}
	if sum.Model == nil {
		pop, err := s.app.Population(ctx)
		if err != nil {
			return nil, s.status(ctx, "get model", err)
		}
		var repeat int64
		for orders, n := range pop.Orders {
			if orders > 1 {
				repeat += n
			}
		}
		return nil, s.status(ctx, "get model", fmt.Errorf("%w: %w: %d customers with more than one order; a fit needs %d repeat customers (an order on a later day) over %d days, predictions are withheld until then",
			errNoModel, clv.ErrNotEnoughHistory, repeat, clv.MinRepeatCustomers, clv.MinHistoryDays))
	}
	return modelResponse(sum.Model), nil
}

func modelResponse(m *clv.Model) *segmentationv1.GetModelResponse {
	resp := &segmentationv1.GetModelResponse{
		BgNbd: &segmentationv1.BgNbdParameters{R: m.BGNBD.R, Alpha: m.BGNBD.Alpha, A: m.BGNBD.A, B: m.BGNBD.B,
			LogLikelihood: m.BGNBDLogLikelihood},
		GammaGamma: &segmentationv1.GammaGammaParameters{P: m.GammaGamma.P, Q: m.GammaGamma.Q, Gamma: m.GammaGamma.Gamma,
			LogLikelihood: m.GammaGammaLogLikelihood},
		FittedAt:        timestamppb.New(m.FittedAt),
		Customers:       int64(m.Customers),
		RepeatCustomers: int64(m.RepeatCustomers),
		Unit:            m.Unit.String(),
	}
	if se, ok := m.BGNBDStdErrors(); ok {
		resp.BgNbd.StandardErrors = &segmentationv1.BgNbdStandardErrors{R: se.R, Alpha: se.Alpha, A: se.A, B: se.B}
	}
	if se, ok := m.GammaGammaStdErrors(); ok {
		resp.GammaGamma.StandardErrors = &segmentationv1.GammaGammaStandardErrors{P: se.P, Q: se.Q, Gamma: se.Gamma}
	}
	return resp
}

// WarningTrailer is the trailer in which Refit says that it rescored the
// customers but could not fit the models: the call succeeded, with the
// previous model (or none, predictions withheld).
const WarningTrailer = "boomerang-warning"

// Refit scores the base now and returns the model in use, none when no fit
// has succeeded yet.
func (s *Server) Refit(ctx context.Context, _ *segmentationv1.RefitRequest) (*segmentationv1.RefitResponse, error) {
	res, err := s.app.Refit(ctx)
	if err != nil {
		return nil, s.status(ctx, "refit", err)
	}
	resp := &segmentationv1.RefitResponse{}
	if res.Model != nil {
		resp.Model = modelResponse(res.Model)
	}
	if res.FitErr != nil {
		kept := "previous model kept"
		if res.Model == nil {
			kept = "no model yet, predictions withheld"
		}
		msg := fmt.Sprintf("customers rescored, but the models could not be fitted (%s): %v", kept, res.FitErr)
		if err := grpc.SetTrailer(ctx, metadata.Pairs(WarningTrailer, msg)); err != nil {
			s.log.WarnContext(ctx, "refit warning not sent", "error", err)
		}
	}
	return resp, nil
}

// ValidateModel runs a holdout validation on the live customers.
func (s *Server) ValidateModel(ctx context.Context, req *segmentationv1.ValidateModelRequest) (*segmentationv1.ValidateModelResponse, error) {
	calEnd, err := time.Parse(time.DateOnly, req.GetCalibrationEnd())
	if err != nil {
		return nil, grpcx.InvalidArgument("invalid request: calibration_end: not a date",
			[]grpcx.FieldViolation{{Field: "calibration_end", Description: "not a date (YYYY-MM-DD)"}})
	}
	var holdEnd time.Time
	if req.GetHoldoutEnd() != "" {
		if holdEnd, err = time.Parse(time.DateOnly, req.GetHoldoutEnd()); err != nil {
			return nil, grpcx.InvalidArgument("invalid request: holdout_end: not a date",
				[]grpcx.FieldViolation{{Field: "holdout_end", Description: "not a date (YYYY-MM-DD)"}})
		}
	}
	v, err := s.app.Validate(ctx, calEnd, holdEnd)
	if err != nil {
		return nil, s.status(ctx, "validate model", err)
	}
	resp := &segmentationv1.ValidateModelResponse{
		CalibrationEnd: v.CalibrationEnd.Format(time.DateOnly),
		HoldoutEnd:     v.HoldoutEnd.Format(time.DateOnly),
		HoldoutDays:    int32(v.HoldoutDays),
		Customers:      int64(v.Customers),
		Model:          modelResponse(v.Model),
		Actual:         v.Actual,
		Predicted:      v.Predicted,
		AggregateError: v.AggregateError,
		Mae:            v.MAE,
		Rmse:           v.RMSE,
		Correlation:    v.Correlation,
		Tracking: &segmentationv1.HoldoutTracking{
			CalibrationActual: v.Tracking.CalibrationActual, CalibrationExpected: v.Tracking.CalibrationExpected,
			HoldoutActual: v.Tracking.HoldoutActual, HoldoutExpected: v.Tracking.HoldoutExpected,
			CumulativeError: v.Tracking.CumulativeError,
		},
	}
	for _, b := range v.Bins {
		resp.ByFrequency = append(resp.ByFrequency, &segmentationv1.HoldoutBin{
			Frequency: int32(b.Frequency), Open: b.Open, Customers: int64(b.Customers), Actual: b.Actual, Predicted: b.Predicted,
		})
	}
	if sp := v.Spend; sp != nil {
		m := func(v float64) *commonv1.Money { return s.money(int64(math.Round(v))) }
		resp.Spend = &segmentationv1.HoldoutSpend{
			Customers: int64(sp.Customers), ActualOrderValue: m(sp.ActualOrderValue), PredictedOrderValue: m(sp.PredictedOrderValue),
			ActualRevenue: m(sp.ActualRevenue), PredictedRevenue: m(sp.PredictedRevenue),
		}
	}
	return resp, nil
}

// RebuildHotStore restores the hot store from SQL.
func (s *Server) RebuildHotStore(ctx context.Context, _ *segmentationv1.RebuildHotStoreRequest) (*segmentationv1.RebuildHotStoreResponse, error) {
	n, err := s.app.Rebuild(ctx)
	if err != nil {
		return nil, s.status(ctx, "rebuild hot store", err)
	}
	return &segmentationv1.RebuildHotStoreResponse{Customers: int64(n)}, nil
}

// status maps an error to a gRPC status, in one place.
func (s *Server) status(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, hot.ErrNotFound):
		return status.Error(codes.NotFound, "customer not found: segmentation has seen no order of theirs")
	case errors.Is(err, errNoModel):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, clv.ErrBadHoldout):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, clv.ErrNotEnoughHistory), errors.Is(err, clv.ErrNotConverged), errors.Is(err, clv.ErrNoRepeatCustomers),
		errors.Is(err, clv.ErrUndefinedSpend), errors.Is(err, clv.ErrNoCustomers):
		// The calibration period's customers cannot be fitted: a fact
		// about the data, said as it is.
		return status.Error(codes.FailedPrecondition, what+": "+err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return status.FromContextError(err).Err()
	}
	s.log.ErrorContext(ctx, "segmentation request failed", "method", what, "error", err)
	return status.Error(codes.Unavailable, what+" failed; retry")
}
