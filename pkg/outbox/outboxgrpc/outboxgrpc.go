// Package outboxgrpc serves boomerang.outbox.v1.OutboxAdminService: the
// parked messages of the outboxes of the services a process runs, for
// operators to list, count, requeue and drop. A process registers one
// server for all its services; each request names the service whose
// outbox it means.
package outboxgrpc

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	outboxv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/outbox/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
)

// Scopes are the token scopes of the methods: every one needs admin.
var Scopes = grpcx.MethodScopes{
	outboxv1.OutboxAdminService_ListParked_FullMethodName:     grpcx.ScopeAdmin,
	outboxv1.OutboxAdminService_GetParkedStats_FullMethodName: grpcx.ScopeAdmin,
	outboxv1.OutboxAdminService_RequeueParked_FullMethodName:  grpcx.ScopeAdmin,
	outboxv1.OutboxAdminService_DropParked_FullMethodName:     grpcx.ScopeAdmin,
}

// Outbox is one service's outbox.
type Outbox struct {
	// Service names it in requests: ingest, ledger, segmentation or
	// feedback.
	Service string
	DB      *sqldb.DB
	// Notify wakes the service's relay after a requeue; nil leaves the
	// requeued messages to its next poll.
	Notify func()
}

// defaultPageSize is ListParked's page without a page_size.
const defaultPageSize = 50

// Server implements outboxv1.OutboxAdminServiceServer.
type Server struct {
	outboxv1.UnimplementedOutboxAdminServiceServer
	outboxes map[string]Outbox
	log      *slog.Logger
	now      func() time.Time
}

var _ outboxv1.OutboxAdminServiceServer = (*Server)(nil)

// New returns a server for outboxes, which must have distinct names.
func New(log *slog.Logger, outboxes ...Outbox) (*Server, error) {
	s := &Server{outboxes: map[string]Outbox{}, log: log, now: time.Now}
	for _, o := range outboxes {
		if o.Service == "" || o.DB == nil {
			return nil, fmt.Errorf("outbox admin: outbox %q without a name or database", o.Service)
		}
		if _, dup := s.outboxes[o.Service]; dup {
			return nil, fmt.Errorf("outbox admin: two outboxes named %q", o.Service)
		}
		s.outboxes[o.Service] = o
	}
	return s, nil
}

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { outboxv1.RegisterOutboxAdminServiceServer(g, s) }

// outbox returns the named service's outbox, or InvalidArgument when this
// process does not run that service.
func (s *Server) outbox(name string) (Outbox, error) {
	if o, ok := s.outboxes[name]; ok {
		return o, nil
	}
	served := make([]string, 0, len(s.outboxes))
	for n := range s.outboxes {
		served = append(served, n)
	}
	slices.Sort(served)
	desc := fmt.Sprintf("%q is not served here; this server runs %s", name, strings.Join(served, ", "))
	return Outbox{}, grpcx.InvalidArgument("invalid request: service: "+desc, []grpcx.FieldViolation{{Field: "service", Description: desc}})
}

// ListParked pages through a service's parked messages, oldest first.
func (s *Server) ListParked(ctx context.Context, req *outboxv1.ListParkedRequest) (*outboxv1.ListParkedResponse, error) {
	o, err := s.outbox(req.GetService())
	if err != nil {
		return nil, err
	}
	after, err := decodeToken(req.GetPage().GetPageToken())
	if err != nil {
		return nil, grpcx.InvalidArgument("invalid request: page.page_token: not a token from a previous page",
			[]grpcx.FieldViolation{{Field: "page.page_token", Description: "not a token from a previous page"}})
	}
	size := int(req.GetPage().GetPageSize())
	if size == 0 {
		size = defaultPageSize
	}
	// One more than the page tells whether another page follows.
	entries, err := outbox.ListParkedPage(ctx, o.DB, outbox.ParkedQuery{Reason: req.GetReason(), After: after, Limit: size + 1})
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	resp := &outboxv1.ListParkedResponse{Page: &commonv1.PageResponse{}}
	if len(entries) > size {
		entries = entries[:size]
		last := entries[size-1]
		resp.Page.NextPageToken = encodeToken(outbox.ParkedCursor{ParkedAt: last.ParkedAt, ID: last.ID})
	}
	for _, e := range entries {
		resp.Messages = append(resp.Messages, parkedMessage(e))
	}
	return resp, nil
}

// GetParkedStats counts a service's parked messages by reason.
func (s *Server) GetParkedStats(ctx context.Context, req *outboxv1.GetParkedStatsRequest) (*outboxv1.GetParkedStatsResponse, error) {
	o, err := s.outbox(req.GetService())
	if err != nil {
		return nil, err
	}
	counts, err := outbox.CountParkedByReason(ctx, o.DB)
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	resp := &outboxv1.GetParkedStatsResponse{}
	var oldest time.Time
	for _, c := range counts {
		resp.Total += int64(c.Count)
		resp.Reasons = append(resp.Reasons, &outboxv1.ReasonStats{
			Reason: c.Reason, Count: int64(c.Count), OldestParkedAt: timestamppb.New(c.Oldest),
		})
		if oldest.IsZero() || c.Oldest.Before(oldest) {
			oldest = c.Oldest
		}
	}
	if !oldest.IsZero() {
		resp.OldestParkedAt = timestamppb.New(oldest)
		resp.OldestAge = durationpb.New(max(s.now().Sub(oldest), 0))
	}
	return resp, nil
}

// RequeueParked moves parked messages back to the outbox and wakes the
// relay.
func (s *Server) RequeueParked(ctx context.Context, req *outboxv1.RequeueParkedRequest) (*outboxv1.RequeueParkedResponse, error) {
	o, err := s.outbox(req.GetService())
	if err != nil {
		return nil, err
	}
	resp := &outboxv1.RequeueParkedResponse{}
	if reason := req.GetReason(); reason != "" {
		n, err := outbox.RequeueReason(ctx, o.DB, reason, s.now())
		// What moved before a failure stays moved: the relay must know.
		s.notify(o, n)
		if err != nil {
			return nil, s.errStatus(ctx, fmt.Errorf("requeue %s after %d moved: %w", reason, n, err))
		}
		resp.Requeued = int64(n)
		s.log.InfoContext(ctx, "parked outbox messages requeued", "service", o.Service, "reason", reason, "count", n)
		return resp, nil
	}
	moved, err := outbox.RequeueIDs(ctx, o.DB, req.GetIds(), s.now())
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	s.notify(o, len(moved))
	resp.Requeued = int64(len(moved))
	resp.NotParked = missing(req.GetIds(), moved)
	s.log.InfoContext(ctx, "parked outbox messages requeued", "service", o.Service, "msg_ids", moved, "count", len(moved),
		"not_parked", len(resp.NotParked))
	return resp, nil
}

func (s *Server) notify(o Outbox, moved int) {
	if moved > 0 && o.Notify != nil {
		o.Notify()
	}
}

// DropParked deletes parked messages and logs each with who dropped it
// and why.
func (s *Server) DropParked(ctx context.Context, req *outboxv1.DropParkedRequest) (*outboxv1.DropParkedResponse, error) {
	o, err := s.outbox(req.GetService())
	if err != nil {
		return nil, err
	}
	dropped, err := outbox.DropIDs(ctx, o.DB, req.GetIds())
	if err != nil {
		return nil, s.errStatus(ctx, err)
	}
	ids := make([]string, len(dropped))
	for i, d := range dropped {
		ids[i] = d.ID
		// One line per message: the only record left of it.
		s.log.WarnContext(ctx, "parked outbox message dropped", "service", o.Service, "msg_id", d.ID, "subject", d.Subject,
			"parked_reason", d.Reason, "size_bytes", d.Size, "sha256", hex.EncodeToString(d.SHA256[:]),
			"actor", req.GetActor(), "reason", req.GetReason())
	}
	return &outboxv1.DropParkedResponse{Dropped: int64(len(dropped)), NotParked: missing(req.GetIds(), ids)}, nil
}

func parkedMessage(e outbox.ParkedEntry) *outboxv1.ParkedMessage {
	return &outboxv1.ParkedMessage{
		Id: e.ID, Subject: e.Subject, Reason: e.Reason, Error: e.Detail, SizeBytes: int64(e.Size),
		Sha256: hex.EncodeToString(e.SHA256[:]), CreatedAt: timestamppb.New(e.CreatedAt), ParkedAt: timestamppb.New(e.ParkedAt),
	}
}

// missing returns the ids asked for that done leaves out, in the order
// asked.
func missing(asked, done []string) []string {
	got := make(map[string]bool, len(done))
	for _, id := range done {
		got[id] = true
	}
	var out []string
	for _, id := range asked {
		if !got[id] {
			out = append(out, id)
		}
	}
	return out
}

// A page token is the last message of the page, "<parked_at µs>.<id>",
// base64url: opaque to clients, and a cursor that rows parked or removed
// meanwhile do not shift.
func encodeToken(c outbox.ParkedCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.ParkedAt.UnixMicro(), 10) + "." + c.ID))
}

var errBadToken = errors.New("bad page token")

func decodeToken(tok string) (*outbox.ParkedCursor, error) {
	if tok == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, errBadToken
	}
	at, id, ok := strings.Cut(string(raw), ".")
	micros, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id == "" {
		return nil, errBadToken
	}
	return &outbox.ParkedCursor{ParkedAt: time.UnixMicro(micros), ID: id}, nil
}

// errStatus maps a failure of the outbox's database to a gRPC status.
func (s *Server) errStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	}
	s.log.ErrorContext(ctx, "outbox admin call failed", "error", err)
	return status.Error(codes.Internal, "internal error")
}
