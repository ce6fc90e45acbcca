package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	customersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/customers/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
)

// ScopeCustomersRead is the scope of the customer 360 read.
const ScopeCustomersRead = "customers:read"

// CustomerScopes are the token scopes of CustomerService's methods.
var CustomerScopes = grpcx.MethodScopes{
	customersv1.CustomerService_GetCustomer_FullMethodName: ScopeCustomersRead,
}

// defaultOrdersLimit is how many orders a read lists when the request
// does not say.
const defaultOrdersLimit = 20

// Customers is the customer read the port serves.
type Customers interface {
	GetCustomer(ctx context.Context, ref app.CustomerRef, ordersLimit int) (*app.CustomerView, error)
}

// CustomerServer implements customersv1.CustomerServiceServer.
type CustomerServer struct {
	customersv1.UnimplementedCustomerServiceServer
	c   Customers
	log *slog.Logger
}

var _ customersv1.CustomerServiceServer = (*CustomerServer)(nil)

// NewCustomers returns the gRPC server of the customer read.
func NewCustomers(c Customers, log *slog.Logger) *CustomerServer {
	return &CustomerServer{c: c, log: log}
}

// GetCustomer answers for one customer with what every service holds.
// The e-mail or platform id a caller names is hashed, never logged and
// never echoed in an error.
func (s *CustomerServer) GetCustomer(ctx context.Context, req *customersv1.GetCustomerRequest) (*customersv1.GetCustomerResponse, error) {
	ref := app.CustomerRef{ID: req.GetCustomerId(), Email: req.GetEmail(),
		Source: req.GetPlatform().GetSource(), PlatformID: req.GetPlatform().GetPlatformCustomerId()}
	var violations []grpcx.FieldViolation
	for _, f := range []struct{ name, value string }{{"customer_id", ref.ID}, {"platform.platform_customer_id", ref.PlatformID}} {
		if v, ok := ingest.CheckString(f.name, f.value); !ok {
			violations = append(violations, grpcx.FieldViolation{Field: v.Field, Description: v.Description})
		}
	}
	if len(violations) > 0 {
		return nil, grpcx.InvalidArgument("invalid request: "+grpcx.Summary(violations), violations)
	}
	limit := int(req.GetOrdersLimit())
	if limit == 0 {
		limit = defaultOrdersLimit
	}
	v, err := s.c.GetCustomer(ctx, ref, limit)
	switch {
	case errors.Is(err, ingest.ErrCustomerNotFound):
		return nil, status.Error(codes.NotFound, "no customer has this key")
	case errors.Is(err, app.ErrNoCustomerKey):
		return nil, grpcx.InvalidArgument("invalid request: customer: "+err.Error(),
			[]grpcx.FieldViolation{{Field: "customer", Description: err.Error()}})
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil, status.FromContextError(err).Err()
	case err != nil:
		s.log.ErrorContext(ctx, "get customer failed", "error", err)
		return nil, status.Error(codes.Unavailable, "get customer failed; retry")
	}
	return customerProto(v), nil
}

func customerProto(v *app.CustomerView) *customersv1.GetCustomerResponse {
	resp := &customersv1.GetCustomerResponse{
		CustomerId: v.ID, OrderCount: v.OrderCount,
		Account: v.Account, Profile: v.Profile, OpenCases: v.Cases, Unavailable: v.Unavailable,
	}
	for _, k := range v.Keys {
		out := &customersv1.IdentityKey{FirstSeenAt: timestamppb.New(k.FirstSeenAt)}
		switch k.Kind {
		case ingest.KeyEmail:
			out.Kind = customersv1.IdentityKind_IDENTITY_KIND_EMAIL
		case ingest.KeyPlatform:
			out.Kind = customersv1.IdentityKind_IDENTITY_KIND_PLATFORM
			if k.Hash == v.KeyHash {
				out.Source = v.KeySource
			}
		}
		resp.IdentityKeys = append(resp.IdentityKeys, out)
	}
	for _, o := range v.Orders {
		m := func(minor int64, cur string) *commonv1.Money {
			return &commonv1.Money{MinorUnits: minor, Currency: cur}
		}
		resp.Orders = append(resp.Orders, &customersv1.CustomerOrder{
			Source: o.Source, OrderId: o.OrderID, Status: o.Status,
			Total: m(o.Total, o.Currency), BaseTotal: m(o.BaseTotal, o.BaseCurrency),
			Refunded: m(o.Refunded, o.Currency), BaseRefunded: m(o.BaseRefunded, o.BaseCurrency),
			PlacedAt: optionalTime(o.PlacedAt), PaidAt: optionalTime(o.PaidAt), FirstSeenAt: timestamppb.New(o.FirstSeenAt),
		})
	}
	return resp
}

func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
