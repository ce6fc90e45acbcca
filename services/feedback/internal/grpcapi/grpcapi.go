// Package grpcapi is the feedback service's gRPC port: it translates
// between boomerang.feedback.v1 and the use cases, and maps domain errors
// to gRPC codes in one place. Requests arrive already
// validated against their .proto rules.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// Scope names.
const (
	ScopeRead  = "feedback:read"
	ScopeWrite = "feedback:write"
	// ScopeRecovery works the recovery queue. Apart from ScopeWrite so that
	// the survey tools and help desks that send intake cannot claim or
	// resolve cases: a request names its agent, tokens carry no identity.
	ScopeRecovery = "feedback:recovery"
)

// Scopes are the token scopes each method needs: intake writes, working
// the recovery queue needs its own scope, the measures and queues read.
var Scopes = grpcx.MethodScopes{
	feedbackv1.FeedbackService_SubmitSurveyResponse_FullMethodName:  ScopeWrite,
	feedbackv1.FeedbackService_SubmitReview_FullMethodName:          ScopeWrite,
	feedbackv1.FeedbackService_RespondToReview_FullMethodName:       ScopeWrite,
	feedbackv1.FeedbackService_RecordTicketEvent_FullMethodName:     ScopeWrite,
	feedbackv1.FeedbackService_ClaimRecovery_FullMethodName:         ScopeRecovery,
	feedbackv1.FeedbackService_ResolveRecovery_FullMethodName:       ScopeRecovery,
	feedbackv1.FeedbackService_GetScores_FullMethodName:             ScopeRead,
	feedbackv1.FeedbackService_GetTicketStats_FullMethodName:        ScopeRead,
	feedbackv1.FeedbackService_ListRecoveryQueue_FullMethodName:     ScopeRead,
	feedbackv1.FeedbackService_ListUnansweredReviews_FullMethodName: ScopeRead,
}

// Server implements feedbackv1.FeedbackServiceServer.
type Server struct {
	feedbackv1.UnimplementedFeedbackServiceServer
	app    UseCases
	notify func()
	log    *slog.Logger
	now    func() time.Time
}

var _ feedbackv1.FeedbackServiceServer = (*Server)(nil)

// UseCases are the use cases the port calls (app.App).
type UseCases interface {
	Record(ctx context.Context, in []feedback.Input, dead []outbox.Message) (app.Result, error)
	RespondToReview(ctx context.Context, r *feedback.ReviewResponse) error
	ClaimCase(ctx context.Context, id, agent string) (feedback.Case, error)
	ResolveCase(ctx context.Context, id, agent string, o feedback.Outcome, note string) (feedback.Case, error)
	Scores(ctx context.Context, loc *time.Location, g feedback.Granularity, from, to time.Time, segment int) ([]feedback.Bucket, error)
	TicketStats(ctx context.Context, from, to time.Time) (tickets int64, firstResponse, resolution []time.Duration, err error)
	RecoveryQueue(ctx context.Context, limit int) ([]feedback.Case, error)
	CustomerCases(ctx context.Context, customerID string, limit int) ([]feedback.Case, error)
	UnansweredReviews(ctx context.Context, limit int) ([]feedback.Review, error)
}

// New returns the gRPC server; notify wakes the outbox relay after a
// change.
func New(uc UseCases, notify func(), log *slog.Logger, now func() time.Time) *Server {
	return &Server{app: uc, notify: notify, log: log, now: now}
}

// errStatus maps domain errors to gRPC codes.
func (s *Server) errStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, feedback.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, feedback.ErrClaimed), errors.Is(err, feedback.ErrResolved):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, feedback.ErrScoreOutOfRange), errors.Is(err, feedback.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	}
	s.log.ErrorContext(ctx, "feedback call failed", "error", err)
	return status.Error(codes.Internal, "internal error")
}

// submit stores one input and tells whether it was a duplicate.
func (s *Server) submit(ctx context.Context, x feedback.Input) (bool, error) {
	x.Ctx = ctx
	res, err := s.app.Record(ctx, []feedback.Input{x}, nil)
	if err != nil {
		return false, s.errStatus(ctx, err)
	}
	if len(res.Cases) > 0 {
		s.notify()
	}
	return res.Outcomes[0] == feedback.Duplicate, nil
}

// SubmitSurveyResponse stores an NPS, CSAT or CES answer.
func (s *Server) SubmitSurveyResponse(ctx context.Context, req *feedbackv1.SubmitSurveyResponseRequest) (*feedbackv1.SubmitSurveyResponseResponse, error) {
	if err := checked(req); err != nil {
		return nil, err
	}
	r := app.FromSurvey(req)
	if err := r.Kind.Check(r.Score); err != nil {
		return nil, s.errStatus(ctx, err)
	}
	dup, err := s.submit(ctx, feedback.Input{Response: r})
	if err != nil {
		return nil, err
	}
	return &feedbackv1.SubmitSurveyResponseResponse{Duplicate: dup}, nil
}

// SubmitReview stores a review.
func (s *Server) SubmitReview(ctx context.Context, req *feedbackv1.SubmitReviewRequest) (*feedbackv1.SubmitReviewResponse, error) {
	if err := checked(req); err != nil {
		return nil, err
	}
	dup, err := s.submit(ctx, feedback.Input{Review: app.FromReview(req)})
	if err != nil {
		return nil, err
	}
	return &feedbackv1.SubmitReviewResponse{Duplicate: dup}, nil
}

// RespondToReview records the seller's response to a stored review.
func (s *Server) RespondToReview(ctx context.Context, req *feedbackv1.RespondToReviewRequest) (*feedbackv1.RespondToReviewResponse, error) {
	if err := checked(req); err != nil {
		return nil, err
	}
	if err := s.app.RespondToReview(ctx, app.FromReviewResponse(req)); err != nil {
		return nil, s.errStatus(ctx, err)
	}
	return &feedbackv1.RespondToReviewResponse{}, nil
}

// RecordTicketEvent stores a step of a support ticket.
func (s *Server) RecordTicketEvent(ctx context.Context, req *feedbackv1.RecordTicketEventRequest) (*feedbackv1.RecordTicketEventResponse, error) {
	if err := checked(req); err != nil {
		return nil, err
	}
	dup, err := s.submit(ctx, feedback.Input{Ticket: app.FromTicketEvent(req)})
	if err != nil {
		return nil, err
	}
	return &feedbackv1.RecordTicketEventResponse{Duplicate: dup}, nil
}

// checked applies app.Check, the rules beyond the .proto ones.
func checked(req proto.Message) error {
	if v := app.Check(req); len(v) > 0 {
		return grpcx.InvalidArgument("invalid request: "+grpcx.Summary(v), v)
	}
	return nil
}

func invalid(field, desc string) error {
	return grpcx.InvalidArgument("invalid request: "+field+": "+desc, []grpcx.FieldViolation{{Field: field, Description: desc}})
}

// maxRange bounds a query's period.
const maxRange = 10 * 366 * 24 * time.Hour

// GetScores returns NPS, CSAT and CES per local period, overall or per
// segment.
func (s *Server) GetScores(ctx context.Context, req *feedbackv1.GetScoresRequest) (*feedbackv1.GetScoresResponse, error) {
	loc := time.UTC
	if tz := req.GetTimeZone(); tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return nil, invalid("time_zone", "not an IANA time zone name")
		}
		loc = l
	}
	from, to := req.GetFrom().AsTime(), req.GetTo().AsTime()
	if !from.Before(to) || to.Sub(from) > maxRange {
		return nil, invalid("from", "must be before to, at most 10 years apart")
	}
	g := feedback.Granularity(req.GetGranularity())
	buckets, err := s.app.Scores(ctx, loc, g, from, to, int(req.GetSegment()))
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	type key struct {
		start   int64
		segment int
	}
	tallies := map[key]*feedback.Tally{}
	for _, b := range buckets {
		k := key{feedback.PeriodStart(b.Start, g, loc).Unix(), 0}
		if req.GetBySegment() {
			k.segment = b.Segment
		}
		t := tallies[k]
		if t == nil {
			t = &feedback.Tally{}
			tallies[k] = t
		}
		b.Tally(t)
	}
	keys := make([]key, 0, len(tallies))
	for k := range tallies {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].start != keys[j].start {
			return keys[i].start < keys[j].start
		}
		return keys[i].segment < keys[j].segment
	})
	resp := &feedbackv1.GetScoresResponse{}
	for _, k := range keys {
		t := tallies[k]
		row := &feedbackv1.ScoreRow{PeriodStart: timestamppb.New(time.Unix(k.start, 0)), Segment: segmentationv1.Segment(k.segment),
			NpsResponses: t.NPS, CsatResponses: t.CSAT, CesResponses: t.CES}
		row.Nps, _ = t.NetPromoterScore()
		row.CsatShareSatisfied, _ = t.CSATShare()
		row.CsatMean, _ = t.CSATMean()
		row.CesMean, _ = t.CESMean()
		resp.Rows = append(resp.Rows, row)
	}
	return resp, nil
}

// GetTicketStats returns the percentiles of the time to first response and
// to resolution of the tickets opened in the period.
func (s *Server) GetTicketStats(ctx context.Context, req *feedbackv1.GetTicketStatsRequest) (*feedbackv1.GetTicketStatsResponse, error) {
	from, to := req.GetFrom().AsTime(), req.GetTo().AsTime()
	if !from.Before(to) || to.Sub(from) > maxRange {
		return nil, invalid("from", "must be before to, at most 10 years apart")
	}
	n, first, resolution, err := s.app.TicketStats(ctx, from, to)
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	pct := func(ds []time.Duration) *feedbackv1.DurationPercentiles {
		p := feedback.Percentiles(ds, 50, 90, 99)
		return &feedbackv1.DurationPercentiles{P50: durationpb.New(p[0]), P90: durationpb.New(p[1]), P99: durationpb.New(p[2])}
	}
	return &feedbackv1.GetTicketStatsResponse{Tickets: n, FirstResponse: pct(first), Resolution: pct(resolution)}, nil
}

// CaseProto is a recovery case's protobuf form at now.
func CaseProto(c feedback.Case, now time.Time) *feedbackv1.RecoveryCase {
	pc := &feedbackv1.RecoveryCase{CaseId: c.ID, CustomerId: c.CustomerID, Reason: feedbackv1.AgonyReason(c.Reason),
		OpenedAt: timestamppb.New(c.OpenedAt), ClaimedBy: c.ClaimedBy, SourceRef: c.SourceRef,
		Age: durationpb.New(max(now.Sub(c.OpenedAt), 0))}
	if !c.ClaimedAt.IsZero() {
		pc.ClaimedAt = timestamppb.New(c.ClaimedAt)
	}
	if !c.CLVAsOf.IsZero() {
		pc.ClvAsOf = timestamppb.New(c.CLVAsOf)
	}
	if c.Currency != "" {
		pc.ClvValue = &commonv1.Money{MinorUnits: c.CLV, Currency: c.Currency}
		if exp, err := money.Exponent(c.Currency); err == nil {
			pc.Clv = float64(c.CLV) / math.Pow10(exp)
		}
	}
	return pc
}

func limit(n int32) int {
	if n == 0 {
		return 50
	}
	return int(n)
}

// ListRecoveryQueue lists open cases, the most valuable customers first,
// or one customer's, the oldest first.
func (s *Server) ListRecoveryQueue(ctx context.Context, req *feedbackv1.ListRecoveryQueueRequest) (*feedbackv1.ListRecoveryQueueResponse, error) {
	var cs []feedback.Case
	var err error
	if id := req.GetCustomerId(); id != "" {
		cs, err = s.app.CustomerCases(ctx, id, limit(req.GetLimit()))
	} else {
		cs, err = s.app.RecoveryQueue(ctx, limit(req.GetLimit()))
	}
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	now := s.now()
	resp := &feedbackv1.ListRecoveryQueueResponse{}
	for _, c := range cs {
		resp.Cases = append(resp.Cases, CaseProto(c, now))
	}
	return resp, nil
}

// ClaimRecovery gives a case to an agent.
func (s *Server) ClaimRecovery(ctx context.Context, req *feedbackv1.ClaimRecoveryRequest) (*feedbackv1.ClaimRecoveryResponse, error) {
	if err := checked(req); err != nil {
		return nil, err
	}
	c, err := s.app.ClaimCase(ctx, req.GetCaseId(), req.GetAgent())
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	return &feedbackv1.ClaimRecoveryResponse{Case: CaseProto(c, s.now())}, nil
}

// ResolveRecovery closes a case with its outcome, by the agent holding
// its claim (or anyone once the claim has lapsed).
func (s *Server) ResolveRecovery(ctx context.Context, req *feedbackv1.ResolveRecoveryRequest) (*feedbackv1.ResolveRecoveryResponse, error) {
	if err := checked(req); err != nil {
		return nil, err
	}
	c, err := s.app.ResolveCase(ctx, req.GetCaseId(), req.GetAgent(), feedback.Outcome(req.GetOutcome()), req.GetNote())
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	s.notify()
	return &feedbackv1.ResolveRecoveryResponse{Case: CaseProto(c, s.now())}, nil
}

// ListUnansweredReviews lists reviews still needing a response, negative
// and oldest first.
func (s *Server) ListUnansweredReviews(ctx context.Context, req *feedbackv1.ListUnansweredReviewsRequest) (*feedbackv1.ListUnansweredReviewsResponse, error) {
	rs, err := s.app.UnansweredReviews(ctx, limit(req.GetLimit()))
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	resp := &feedbackv1.ListUnansweredReviewsResponse{}
	for _, r := range rs {
		resp.Reviews = append(resp.Reviews, &feedbackv1.Review{ReviewId: r.ID, Platform: r.Platform, CustomerId: r.CustomerID,
			Rating: int32(r.Rating), Product: r.Product, CreatedAt: timestamppb.New(r.CreatedAt)})
	}
	return resp, nil
}
