// Package grpcapi is order-ingest's gRPC port: it translates between
// boomerang.ingest.v1 and the use cases (internal/app), and maps errors to
// gRPC codes in one place. Requests arrive already validated against their .proto rules.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
)

// Scopes are the token scopes each method needs.
var Scopes = grpcx.MethodScopes{
	ingestv1.IngestService_SubmitOrders_FullMethodName: "ingest:write",
	ingestv1.IngestService_GetOrder_FullMethodName:     "ingest:read",
}

// App is the use cases the port serves.
type App interface {
	IngestOrders(ctx context.Context, items []app.Item, dead []outbox.Message) ([]app.Result, error)
	GetOrder(ctx context.Context, source, orderID string) (*ingest.Order, []*ordersv1.OrderEvent, error)
}

// Server implements ingestv1.IngestServiceServer.
type Server struct {
	ingestv1.UnimplementedIngestServiceServer
	app App
	log *slog.Logger
}

var _ ingestv1.IngestServiceServer = (*Server)(nil)

// New returns the gRPC server of the use cases.
func New(a App, log *slog.Logger) *Server {
	return &Server{app: a, log: log}
}

// SubmitOrders ingests a batch and reports per order.
func (s *Server) SubmitOrders(ctx context.Context, req *ingestv1.SubmitOrdersRequest) (*ingestv1.SubmitOrdersResponse, error) {
	var violations []grpcx.FieldViolation
	for i, o := range req.GetOrders() {
		prefix := "orders[" + strconv.Itoa(i) + "]."
		if o.GetSource() == "" {
			violations = append(violations, grpcx.FieldViolation{Field: prefix + "source", Description: "value is required"})
		}
		// The server checked the .proto rules; the text rules are the
		// ones the bus consumer applies too (bus.Check).
		for _, v := range ingest.CheckText(o) {
			violations = append(violations, grpcx.FieldViolation{Field: prefix + v.Field, Description: v.Description})
		}
	}
	if len(violations) > 0 {
		return nil, grpcx.InvalidArgument("invalid request: "+grpcx.Summary(violations), violations)
	}
	tc := nats.Header{}
	natsx.InjectTrace(ctx, tc)
	items := make([]app.Item, len(req.GetOrders()))
	for i, o := range req.GetOrders() {
		items[i] = app.Item{Order: o, Trace: tc}
	}
	results, err := s.app.IngestOrders(ctx, items, nil)
	if err != nil {
		return nil, s.internal(ctx, "submit orders", err)
	}
	resp := &ingestv1.SubmitOrdersResponse{Results: make([]*ingestv1.OrderResult, len(results))}
	for i, r := range results {
		out := &ingestv1.OrderResult{OrderId: req.GetOrders()[i].GetOrderId(), EventId: r.EventID, CustomerId: r.CustomerID}
		switch r.Outcome {
		case ingest.Accepted:
			out.Outcome = ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED
		case ingest.Duplicate:
			out.Outcome = ingestv1.OrderOutcome_ORDER_OUTCOME_DUPLICATE
		case ingest.Rejected:
			out.Outcome = ingestv1.OrderOutcome_ORDER_OUTCOME_REJECTED
			out.Reason, out.Message = r.Rejection.Reason, r.Rejection.Message
		}
		resp.Results[i] = out
	}
	return resp, nil
}

// GetOrder returns the canonical view of an order.
func (s *Server) GetOrder(ctx context.Context, req *ingestv1.GetOrderRequest) (*ingestv1.GetOrderResponse, error) {
	var violations []grpcx.FieldViolation
	for _, f := range []struct{ name, value string }{{"source", req.GetSource()}, {"order_id", req.GetOrderId()}} {
		if v, ok := ingest.CheckString(f.name, f.value); !ok {
			violations = append(violations, grpcx.FieldViolation{Field: v.Field, Description: v.Description})
		}
	}
	if len(violations) > 0 {
		// No order can have such an id, and the database would refuse
		// to compare with it (PostgreSQL text holds no NUL).
		return nil, grpcx.InvalidArgument("invalid request: "+grpcx.Summary(violations), violations)
	}
	o, history, err := s.app.GetOrder(ctx, req.GetSource(), req.GetOrderId())
	if errors.Is(err, ingest.ErrOrderNotFound) {
		return nil, status.Errorf(codes.NotFound, "order %s from %s was never ingested", req.GetOrderId(), req.GetSource())
	}
	if err != nil {
		return nil, s.internal(ctx, "get order", err)
	}
	return &ingestv1.GetOrderResponse{
		Source:       o.Source,
		OrderId:      o.OrderID,
		CustomerId:   o.CustomerID,
		Status:       o.Status,
		Total:        &commonv1.Money{MinorUnits: o.Total, Currency: o.Currency},
		BaseTotal:    &commonv1.Money{MinorUnits: o.BaseTotal, Currency: o.BaseCurrency},
		Refunded:     &commonv1.Money{MinorUnits: o.Refunded, Currency: o.Currency},
		BaseRefunded: &commonv1.Money{MinorUnits: o.BaseRefunded, Currency: o.BaseCurrency},
		FirstSeenAt:  timestamppb.New(o.FirstSeenAt),
		History:      history,
	}, nil
}

// internal logs err and returns a status that tells the caller nothing of
// the internals.
func (s *Server) internal(ctx context.Context, what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.FromContextError(err).Err()
	}
	s.log.ErrorContext(ctx, what+" failed", "error", err)
	return status.Error(codes.Unavailable, what+" failed; retry: the request is idempotent")
}
