// Package grpcx builds the gRPC servers and clients every Boomerang service
// uses: bearer-token authentication with scopes, request validation from
// the .proto rules, panic recovery, deadlines, message size limits,
// OpenTelemetry, the standard health service and reflection, optional TLS.
package grpcx

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// ServerOptions configures a server.
type ServerOptions struct {
	Tokens *Tokens
	Scopes MethodScopes
	Log    *slog.Logger
	// TLSCertFile and TLSKeyFile enable TLS when both are set.
	TLSCertFile string
	TLSKeyFile  string
	// MaxRecvBytes bounds a request message (default 4 MiB).
	MaxRecvBytes int
	// MaxCallTime bounds a call that arrives without a deadline, or with a
	// longer one (default 30s).
	MaxCallTime time.Duration
}

// Server is a gRPC server with the health service registered.
type Server struct {
	*grpc.Server
	Health *health.Server
}

// NewServer returns a server; register services on it, then call Serve.
func NewServer(o ServerOptions) (*Server, error) {
	if o.Tokens == nil || o.Tokens.Len() == 0 {
		return nil, fmt.Errorf("grpc server: no API tokens configured")
	}
	if o.MaxRecvBytes <= 0 {
		o.MaxRecvBytes = 4 << 20
	}
	if o.MaxCallTime <= 0 {
		o.MaxCallTime = 30 * time.Second
	}
	v, err := NewValidator()
	if err != nil {
		return nil, err
	}
	opts := []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.MaxRecvMsgSize(o.MaxRecvBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(
			recoverUnary(o.Log),
			o.Tokens.unary(o.Scopes),
			deadlineUnary(o.MaxCallTime),
			func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				if err := v.validateRequest(req); err != nil {
					return nil, err
				}
				return h(ctx, req)
			},
		),
		grpc.ChainStreamInterceptor(recoverStream(o.Log), o.Tokens.stream(o.Scopes)),
	}
	if o.TLSCertFile != "" || o.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("grpc tls: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	}
	s := &Server{Server: grpc.NewServer(opts...), Health: health.NewServer()}
	healthpb.RegisterHealthServer(s.Server, s.Health)
	reflection.Register(s.Server)
	return s, nil
}

// SetServing marks services (and the server as a whole, "") serving or not.
func (s *Server) SetServing(serving bool, services ...string) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, name := range append(services, "") {
		s.Health.SetServingStatus(name, st)
	}
}

func deadlineUnary(max time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > max {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, max)
			defer cancel()
		}
		return h(ctx, req)
	}
}

func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return h(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ss.Context(), "panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return h(srv, ss)
	}
}
