// Package grpcapi is points-ledger's gRPC port: it translates between
// boomerang.ledger.v1 and the use cases (internal/app), and maps domain
// errors to gRPC codes in one place. Requests arrive already validated against
// their .proto rules.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/fx"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderevent"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// Scopes are the token scopes each method needs; Adjust needs admin.
var Scopes = grpcx.MethodScopes{
	ledgerv1.LedgerService_GetAccount_FullMethodName:        "ledger:read",
	ledgerv1.LedgerService_ListEntries_FullMethodName:       "ledger:read",
	ledgerv1.LedgerService_QuoteOrder_FullMethodName:        "ledger:read",
	ledgerv1.LedgerService_ListRewards_FullMethodName:       "ledger:read",
	ledgerv1.LedgerService_GetProgrammeStats_FullMethodName: "ledger:read",
	ledgerv1.LedgerService_Redeem_FullMethodName:            "ledger:write",
	ledgerv1.LedgerService_Adjust_FullMethodName:            grpcx.ScopeAdmin,
}

// Ledger is what the port needs of the use cases (*app.App).
type Ledger interface {
	Account(ctx context.Context, p *ledger.Programme, customerID string, within time.Duration) (*app.View, error)
	Entries(ctx context.Context, customerID string, before int64, n int) ([]*ledger.Entry, int64, error)
	QuoteOrder(ctx context.Context, p *ledger.Programme, customerID string, f ledger.OrderFacts) ([]ledger.Award, error)
	Redeem(ctx context.Context, p *ledger.Programme, customerID string, r ledger.Redemption) (*ledger.Entry, error)
	Adjust(ctx context.Context, p *ledger.Programme, customerID, key string, points int64, actor, reason string) (*ledger.Entry, error)
	ListRewards(ctx context.Context, p *ledger.Programme) ([]app.RewardStock, error)
	Stats(ctx context.Context, from, to time.Time) ([]ledger.DayStats, int64, error)
}

var _ Ledger = (*app.App)(nil)

// Server implements ledgerv1.LedgerServiceServer.
type Server struct {
	ledgerv1.UnimplementedLedgerServiceServer
	ledger    Ledger
	programme func() *ledger.Programme
	rates     *fx.Table
	notify    func()
	log       *slog.Logger
	now       func() time.Time
}

var _ ledgerv1.LedgerServiceServer = (*Server)(nil)

// New returns the gRPC server; notify wakes the outbox relay after a
// change.
func New(l Ledger, programme func() *ledger.Programme, rates *fx.Table, notify func(), log *slog.Logger, now func() time.Time) *Server {
	return &Server{ledger: l, programme: programme, rates: rates, notify: notify, log: log, now: now}
}

// errStatus maps domain errors to gRPC codes.
func (s *Server) errStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, ledger.ErrInsufficientPoints), errors.Is(err, ledger.ErrTierRequired), errors.Is(err, ledger.ErrOutOfStock):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ledger.ErrUnknownReward), errors.Is(err, ledger.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ledger.ErrIdempotencyReuse):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	}
	s.log.ErrorContext(ctx, "ledger call failed", "error", err)
	return status.Error(codes.Internal, "internal error")
}

func (s *Server) base(minor int64) *commonv1.Money {
	return &commonv1.Money{MinorUnits: minor, Currency: s.programme().BaseCurrency}
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// GetAccount returns balance, tier, progress and points expiring soon.
func (s *Server) GetAccount(ctx context.Context, req *ledgerv1.GetAccountRequest) (*ledgerv1.GetAccountResponse, error) {
	p := s.programme()
	days := req.GetExpiringWithinDays()
	if days == 0 {
		days = 30
	}
	v, err := s.ledger.Account(ctx, p, req.GetCustomerId(), time.Duration(days)*24*time.Hour)
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	a := v.Account
	resp := &ledgerv1.GetAccountResponse{
		CustomerId: a.CustomerID, Balance: a.Balance,
		Tier:           &ledgerv1.Tier{Name: a.Tier, QualifyingSpend: s.base(v.Spend)},
		PointsExpiring: v.Expiring, NextExpiryAt: ts(v.NextExp),
		ReferralCode: a.ReferralCode, Shortfall: a.Shortfall, LifetimeEarned: a.LifetimeEarned,
	}
	tiers := p.Tiers()
	if i := p.TierIndex(a.Tier); i+1 < len(tiers) {
		next := tiers[i+1]
		resp.NextTier = next.Name
		resp.SpendToNextTier = s.base(max(next.MinSpend-v.Spend, 0))
	}
	return resp, nil
}

// ListEntries pages through an account's entries, newest first.
func (s *Server) ListEntries(ctx context.Context, req *ledgerv1.ListEntriesRequest) (*ledgerv1.ListEntriesResponse, error) {
	size := int(req.GetPage().GetPageSize())
	if size == 0 {
		size = 50
	}
	var before int64
	if tok := req.GetPage().GetPageToken(); tok != "" {
		n, err := strconv.ParseInt(tok, 10, 64)
		if err != nil || n <= 0 {
			return nil, grpcx.InvalidArgument("invalid page token", []grpcx.FieldViolation{{Field: "page.page_token", Description: "not a token this service issued"}})
		}
		before = n
	}
	es, next, err := s.ledger.Entries(ctx, req.GetCustomerId(), before, size)
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	resp := &ledgerv1.ListEntriesResponse{Page: &commonv1.PageResponse{}}
	if next > 0 {
		resp.Page.NextPageToken = strconv.FormatInt(next, 10)
	}
	for _, e := range es {
		resp.Entries = append(resp.Entries, EntryProto(e))
	}
	return resp, nil
}

// EntryProto is the protobuf form of an entry.
func EntryProto(e *ledger.Entry) *ledgerv1.Entry {
	out := &ledgerv1.Entry{
		EntryId: e.ID, CustomerId: e.CustomerID, Kind: ledgerv1.EntryKind(e.Kind), Points: e.Points,
		SourceRef: e.SourceRef, Actor: e.Actor, Reason: e.Reason, CreatedAt: ts(e.OccurredAt), ExpiresAt: ts(e.ExpiresAt),
		Shortfall: e.Shortfall, Rule: e.Rule,
	}
	for _, u := range e.Uses {
		out.Lots = append(out.Lots, &ledgerv1.LotUse{LotEntryId: u.LotID, Points: u.Points})
	}
	return out
}

// QuoteOrder tells how many points an order would earn now.
func (s *Server) QuoteOrder(ctx context.Context, req *ledgerv1.QuoteOrderRequest) (*ledgerv1.QuoteOrderResponse, error) {
	p := s.programme()
	f, err := s.facts(req.GetOrder())
	if err != nil {
		return nil, grpcx.InvalidArgument(err.Error(), []grpcx.FieldViolation{{Field: "order", Description: err.Error()}})
	}
	awards, err := s.ledger.QuoteOrder(ctx, p, req.GetCustomerId(), f)
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	resp := &ledgerv1.QuoteOrderResponse{}
	for _, a := range awards {
		resp.Points += a.Points
		resp.Breakdown = append(resp.Breakdown, &ledgerv1.QuoteLine{Rule: a.Rule, Points: a.Points})
	}
	return resp, nil
}

// facts are the facts of the canonical event order-ingest would publish
// for o.
func (s *Server) facts(o *ingestv1.Order) (ledger.OrderFacts, error) {
	if o.GetTotal() == nil {
		return ledger.OrderFacts{}, errors.New("order.total is required for a quote")
	}
	ev, err := orderevent.Build(s.rates, o)
	if err != nil {
		return ledger.OrderFacts{}, err
	}
	return ledger.FactsOf(ev), nil
}

// Redeem spends points; a retry with the same key returns the first
// result.
func (s *Server) Redeem(ctx context.Context, req *ledgerv1.RedeemRequest) (*ledgerv1.RedeemResponse, error) {
	e, err := s.ledger.Redeem(ctx, s.programme(), req.GetCustomerId(), ledger.Redemption{
		Key: req.GetIdempotencyKey(), RewardID: req.GetRewardId(), Points: req.GetPoints(),
	})
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	s.notify()
	return &ledgerv1.RedeemResponse{RedemptionId: e.ID, Points: -e.Points, Balance: e.BalanceAfter, Entry: EntryProto(e)}, nil
}

// Adjust adds or removes points by hand.
func (s *Server) Adjust(ctx context.Context, req *ledgerv1.AdjustRequest) (*ledgerv1.AdjustResponse, error) {
	e, err := s.ledger.Adjust(ctx, s.programme(), req.GetCustomerId(), req.GetIdempotencyKey(), req.GetPoints(), req.GetActor(), req.GetReason())
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	s.notify()
	s.log.InfoContext(ctx, "points adjusted", "entry_id", e.ID, "points", e.Points)
	return &ledgerv1.AdjustResponse{Entry: EntryProto(e), Balance: e.BalanceAfter}, nil
}

// ListRewards lists the catalogue with the stock left.
func (s *Server) ListRewards(ctx context.Context, _ *ledgerv1.ListRewardsRequest) (*ledgerv1.ListRewardsResponse, error) {
	rewards, err := s.ledger.ListRewards(ctx, s.programme())
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	resp := &ledgerv1.ListRewardsResponse{}
	for _, r := range rewards {
		resp.Rewards = append(resp.Rewards, &ledgerv1.Reward{RewardId: r.ID, Name: r.Name, PointCost: r.Cost, RequiredTier: r.RequiredTier, Stock: r.Left})
	}
	return resp, nil
}

// GetProgrammeStats sums the movements per period (UTC) in [from, to).
func (s *Server) GetProgrammeStats(ctx context.Context, req *ledgerv1.GetProgrammeStatsRequest) (*ledgerv1.GetProgrammeStatsResponse, error) {
	to := s.now()
	if req.GetTo() != nil {
		to = req.GetTo().AsTime()
	}
	from := to.AddDate(0, 0, -30)
	if req.GetFrom() != nil {
		from = req.GetFrom().AsTime()
	}
	if !from.Before(to) || to.Sub(from) > 20*366*24*time.Hour {
		return nil, grpcx.InvalidArgument("invalid period", []grpcx.FieldViolation{{Field: "from", Description: "must be before to, at most 20 years apart"}})
	}
	days, outstanding, err := s.ledger.Stats(ctx, from, to)
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	resp := &ledgerv1.GetProgrammeStatsResponse{}
	var row *ledgerv1.ProgrammeStatsRow
	var start time.Time
	for _, d := range days {
		if ps := PeriodStart(d.Day, req.GetPeriod()); row == nil || !ps.Equal(start) {
			start = ps
			row = &ledgerv1.ProgrammeStatsRow{PeriodStart: timestamppb.New(ps)}
			resp.Rows = append(resp.Rows, row)
		}
		row.Issued += d.ByKind[ledger.KindEarn] + d.ByKind[ledger.KindBonus]
		row.Redeemed += -d.ByKind[ledger.KindRedeem]
		row.Expired += -d.ByKind[ledger.KindExpiry]
		row.Reversed += -d.ByKind[ledger.KindReversal]
		row.Adjusted += d.ByKind[ledger.KindAdjustment]
		row.Shortfall += d.Shortfall
		for _, v := range d.ByKind {
			outstanding += v
		}
		row.Outstanding = outstanding
	}
	resp.Outstanding = outstanding
	return resp, nil
}

// PeriodStart is the UTC start of the day, ISO week (Monday) or month of
// t.
func PeriodStart(t time.Time, p ledgerv1.Period) time.Time {
	y, m, d := t.UTC().Date()
	switch p {
	case ledgerv1.Period_PERIOD_WEEK:
		day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	case ledgerv1.Period_PERIOD_MONTH:
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
