// Package grpcapi is the feedback service's gRPC port: it translates
// between boomerang.feedback.v1 and the use cases, store and domain, and maps
// domain errors to gRPC codes in one place. Requests arrive already
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
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/store"
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
	store  *store.Store
	intake Recorder
	notify func()
	log    *slog.Logger
	now    func() time.Time
}

var _ feedbackv1.FeedbackServiceServer = (*Server)(nil)

// Recorder records intake (app.App).
type Recorder interface {
	Record(ctx context.Context, in []feedback.Input, dead []outbox.Message) (app.Result, error)
}

// New returns the gRPC server; notify wakes the outbox relay after a
// change.
func New(st *store.Store, in Recorder, notify func(), log *slog.Logger, now func() time.Time) *Server {
	return &Server{store: st, intake: in, notify: notify, log: log, now: now}
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
	res, err := s.intake.Record(ctx, []feedback.Input{x}, nil)
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
	ok, err := s.store.ReviewExists(ctx, req.GetPlatform(), req.GetReviewId())
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	if !ok {
		return nil, status.Error(codes.NotFound, "review not found")
	}
	if _, err := s.submit(ctx, feedback.Input{ReviewResponse: app.FromReviewResponse(req)}); err != nil {
		return nil, err
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
	buckets, err := s.buckets(ctx, loc, g, from, to, int(req.GetSegment()))
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

// buckets reads the rollups for [from, to) in loc: whole local days from
// the day rollup when loc is a reporting zone, everything else from the
// quarter hours.
func (s *Server) buckets(ctx context.Context, loc *time.Location, g feedback.Granularity, from, to time.Time, segment int) ([]store.Bucket, error) {
	quarters := func(from, to time.Time) ([]store.Bucket, error) {
		origin, width := Plan(loc, g, from, to)
		return s.store.Scores(ctx, from, to, origin, width, segment)
	}
	zone, ok, err := s.store.ScoreZone(ctx, loc.String())
	if err != nil {
		return nil, err
	}
	if !ok {
		return quarters(from, to)
	}
	midnight := func(day int64) time.Time {
		y, m, d := time.Unix(day*86400, 0).UTC().Date()
		return time.Date(y, m, d, 0, 0, 0, 0, zone)
	}
	first := feedback.DayNumber(from, zone)
	if !midnight(first).Equal(from) {
		first++
	}
	last := feedback.DayNumber(to, zone)
	if first >= last {
		return quarters(from, to)
	}
	out, err := s.store.ScoreDays(ctx, zone, first, last, segment)
	if err != nil {
		return nil, err
	}
	for _, part := range [][2]time.Time{{from, midnight(first)}, {midnight(last), to}} {
		if !part[0].Before(part[1]) {
			continue
		}
		bs, err := quarters(part[0], part[1])
		if err != nil {
			return nil, err
		}
		out = append(out, bs...)
	}
	return out, nil
}

// Plan is how the quarter-hour rollup is summed in SQL for periods of g in
// loc between from and to: while the zone keeps one offset (no daylight
// saving change in between), a day or week is a fixed number of quarter
// hours counted from the first period's start, so SQL sums whole periods;
// otherwise it sums the widest stretch that never crosses a period
// boundary (Width) and the periods are summed from those.
func Plan(loc *time.Location, g feedback.Granularity, from, to time.Time) (origin time.Time, width time.Duration) {
	if g == feedback.Day || g == feedback.Week {
		start := feedback.PeriodStart(from, g, loc)
		_, end := start.ZoneBounds()
		if end.IsZero() || !end.Before(to) {
			if g == feedback.Week {
				return start, 7 * 24 * time.Hour
			}
			return start, 24 * time.Hour
		}
	}
	return time.Unix(0, 0), Width(loc, from, to)
}

// Width is the widest stretch the rollup can be summed over in SQL
// without crossing a local period boundary of loc between from and to: an
// hour when every offset of the zone in that time is whole hours, a
// quarter hour otherwise (India, Nepal, Newfoundland...).
func Width(loc *time.Location, from, to time.Time) time.Duration {
	t := from.In(loc)
	for range 1000 { // a zone changes offset at most a few times a year
		_, off := t.Zone()
		if off%3600 != 0 {
			return feedback.BucketMS * time.Millisecond
		}
		_, end := t.ZoneBounds()
		if end.IsZero() || !end.Before(to) {
			return time.Hour
		}
		t = end
	}
	return feedback.BucketMS * time.Millisecond
}

// GetTicketStats returns the percentiles of the time to first response and
// to resolution of the tickets opened in the period.
func (s *Server) GetTicketStats(ctx context.Context, req *feedbackv1.GetTicketStatsRequest) (*feedbackv1.GetTicketStatsResponse, error) {
	from, to := req.GetFrom().AsTime(), req.GetTo().AsTime()
	if !from.Before(to) || to.Sub(from) > maxRange {
		return nil, invalid("from", "must be before to, at most 10 years apart")
	}
	n, first, resolution, err := s.store.TicketStats(ctx, from, to)
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

// ListRecoveryQueue lists open cases, the most valuable customers first.
func (s *Server) ListRecoveryQueue(ctx context.Context, req *feedbackv1.ListRecoveryQueueRequest) (*feedbackv1.ListRecoveryQueueResponse, error) {
	cs, err := s.store.Queue(ctx, limit(req.GetLimit()))
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
	c, err := s.store.Claim(ctx, req.GetCaseId(), req.GetAgent())
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
	c, err := s.store.Resolve(ctx, req.GetCaseId(), req.GetAgent(), feedback.Outcome(req.GetOutcome()), req.GetNote())
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	s.notify()
	return &feedbackv1.ResolveRecoveryResponse{Case: CaseProto(c, s.now())}, nil
}

// ListUnansweredReviews lists reviews still needing a response, negative
// and oldest first.
func (s *Server) ListUnansweredReviews(ctx context.Context, req *feedbackv1.ListUnansweredReviewsRequest) (*feedbackv1.ListUnansweredReviewsResponse, error) {
	rs, err := s.store.UnansweredReviews(ctx, limit(req.GetLimit()))
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
