// Package host runs services in a process: one gRPC server (health,
// reflection, authentication, validation) for all of them, an HTTP server
// with /metrics and /healthz, and an orderly shutdown — stop taking calls
// and messages, finish what is in hand, then return.
package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox/outboxgrpc"
	"github.com/boomerang-loyalty/boomerang/pkg/telemetry"
)

// Service is what a host runs.
type Service interface {
	// Register adds the service's gRPC API.
	Register(*grpc.Server)
	// Scopes are the token scopes of its methods.
	Scopes() grpcx.MethodScopes
	// HealthName is its name in the gRPC health service.
	HealthName() string
	// Run does the service's background work until ctx is cancelled.
	Run(ctx context.Context) error
	// Ping checks the service's dependencies for /healthz.
	Ping(ctx context.Context) error
}

// OutboxAger is implemented by a service that publishes through a
// transactional outbox: /healthz reports it degraded when the oldest
// message has waited longer than Options.OutboxStaleAfter, which a relay
// that cannot publish (JetStream unreachable, no leadership) shows first.
type OutboxAger interface {
	// OutboxAge is how long the oldest unpublished message has waited;
	// zero when none waits.
	OutboxAge(ctx context.Context) (time.Duration, error)
}

// OutboxOwner is implemented by a service that publishes through a
// transactional outbox: the host serves boomerang.outbox.v1's
// OutboxAdminService (admin scope) over the outboxes of all its services,
// on the same gRPC server, so that operators reach each relay's parked
// messages in either deployment.
type OutboxOwner interface {
	// Outbox is the service's outbox and the name requests give it.
	Outbox() outboxgrpc.Outbox
}

// Options configures a host.
type Options struct {
	GRPCAddr    string
	HTTPAddr    string
	Tokens      *grpcx.Tokens
	TLSCertFile string
	TLSKeyFile  string
	Log         *slog.Logger
	Telemetry   *telemetry.Telemetry
	// Pprof serves the Go runtime's profiles under /debug/pprof/ on the
	// HTTP port, to holders of an admin token only.
	Pprof bool
	// ShutdownTimeout bounds the graceful stop (default 15s).
	ShutdownTimeout time.Duration
	// OutboxStaleAfter is the age of a service's oldest unpublished
	// outbox message past which /healthz reports it degraded (default 2m).
	OutboxStaleAfter time.Duration
}

// Host owns the listeners and servers.
type Host struct {
	o        Options
	services []Service
	grpc     *grpcx.Server
	grpcLis  net.Listener
	httpLis  net.Listener
	http     *http.Server
}

// New listens on the configured addresses (":0" picks free ports) and
// registers the services.
func New(o Options, services ...Service) (*Host, error) {
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 15 * time.Second
	}
	if o.OutboxStaleAfter <= 0 {
		o.OutboxStaleAfter = DefaultOutboxStaleAfter
	}
	scopes := grpcx.MethodScopes{}
	for m, sc := range outboxgrpc.Scopes {
		scopes[m] = sc
	}
	for _, s := range services {
		for m, sc := range s.Scopes() {
			scopes[m] = sc
		}
	}
	gs, err := grpcx.NewServer(grpcx.ServerOptions{
		Tokens: o.Tokens, Scopes: scopes, Log: o.Log, TLSCertFile: o.TLSCertFile, TLSKeyFile: o.TLSKeyFile,
	})
	if err != nil {
		return nil, err
	}
	h := &Host{o: o, services: services, grpc: gs}
	for _, s := range services {
		s.Register(gs.Server)
	}
	if err := registerOutboxAdmin(gs.Server, o.Log, services); err != nil {
		return nil, err
	}
	gs.SetServing(false, h.names()...)
	if h.grpcLis, err = net.Listen("tcp", o.GRPCAddr); err != nil {
		return nil, fmt.Errorf("grpc listen %s: %w", o.GRPCAddr, err)
	}
	if h.httpLis, err = net.Listen("tcp", o.HTTPAddr); err != nil {
		h.grpcLis.Close()
		return nil, fmt.Errorf("http listen %s: %w", o.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	if o.Telemetry != nil {
		mux.Handle("GET /metrics", o.Telemetry.MetricsHandler())
	}
	mux.HandleFunc("GET /healthz", h.healthz)
	if o.Pprof {
		mux.Handle("/debug/pprof/", adminOnly(o.Tokens, pprofMux()))
	}
	h.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return h, nil
}

// registerOutboxAdmin serves OutboxAdminService on g for the services that
// own an outbox; one server for all, since a gRPC server takes a service
// once.
func registerOutboxAdmin(g *grpc.Server, log *slog.Logger, services []Service) error {
	var outboxes []outboxgrpc.Outbox
	for _, s := range services {
		if o, ok := s.(OutboxOwner); ok {
			outboxes = append(outboxes, o.Outbox())
		}
	}
	if len(outboxes) == 0 {
		return nil
	}
	srv, err := outboxgrpc.New(log, outboxes...)
	if err != nil {
		return err
	}
	srv.Register(g)
	return nil
}

func (h *Host) names() []string {
	var names []string
	for _, s := range h.services {
		names = append(names, s.HealthName())
	}
	return names
}

// GRPCAddr is the address the gRPC server listens on.
func (h *Host) GRPCAddr() string { return h.grpcLis.Addr().String() }

// HTTPAddr is the address of /metrics and /healthz.
func (h *Host) HTTPAddr() string { return h.httpLis.Addr().String() }

// Run serves until ctx is cancelled, then shuts down gracefully.
func (h *Host) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	svcCtx, stopServices := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServices()
	for _, s := range h.services {
		g.Go(func() error {
			if err := s.Run(svcCtx); err != nil {
				return fmt.Errorf("%s: %w", s.HealthName(), err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := h.grpc.Serve(h.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("grpc: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := h.http.Serve(h.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	h.grpc.SetServing(true, h.names()...)
	g.Go(func() error {
		<-gctx.Done()
		h.o.Log.Info("shutting down")
		h.grpc.SetServing(false, h.names()...)
		done := make(chan struct{})
		go func() { h.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(h.o.ShutdownTimeout):
			h.grpc.Stop()
		}
		stopServices()
		sctx, cancel := context.WithTimeout(context.Background(), h.o.ShutdownTimeout)
		defer cancel()
		return h.http.Shutdown(sctx)
	})
	return g.Wait()
}

func (h *Host) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	report := map[string]string{}
	code := http.StatusOK
	for _, s := range h.services {
		if err := s.Ping(ctx); err != nil {
			report[s.HealthName()] = "unavailable"
			code = http.StatusServiceUnavailable
			h.o.Log.WarnContext(ctx, "health check failed", "service", s.HealthName(), "error", err)
			continue
		}
		if reason, err := h.degraded(ctx, s); err != nil {
			report[s.HealthName()] = "unavailable"
			code = http.StatusServiceUnavailable
			h.o.Log.WarnContext(ctx, "health check failed", "service", s.HealthName(), "error", err)
			continue
		} else if reason != "" {
			// Still serving, but not doing all its work: a container
			// health check or load balancer should know.
			report[s.HealthName()] = "degraded: " + reason
			code = http.StatusServiceUnavailable
			h.o.Log.WarnContext(ctx, "health check degraded", "service", s.HealthName(), "reason", reason)
			continue
		}
		report[s.HealthName()] = "ok"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(report)
}

// degraded returns why a service that answers its Ping is not doing all
// its work, or "".
func (h *Host) degraded(ctx context.Context, s Service) (string, error) {
	a, ok := s.(OutboxAger)
	if !ok {
		return "", nil
	}
	age, err := a.OutboxAge(ctx)
	if err != nil {
		return "", err
	}
	if age > h.o.OutboxStaleAfter {
		return fmt.Sprintf("oldest outbox message unpublished for %s (over %s)", age.Round(time.Second), h.o.OutboxStaleAfter), nil
	}
	return "", nil
}

// CheckHealth asks the /healthz endpoint at httpAddr (as configured, e.g.
// ":7480") and fails unless it answers 200. Binaries expose it as their
// "healthcheck" argument, for container health checks in images without a
// shell or curl.
func CheckHealth(httpAddr string) error {
	if _, _, err := net.SplitHostPort(httpAddr); err != nil {
		return fmt.Errorf("health address %q: %w", httpAddr, err)
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + loopback(httpAddr) + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	return nil
}

// pprofMux serves net/http/pprof's handlers, mounted here rather than on
// http.DefaultServeMux so that nothing is exposed unless asked for.
func pprofMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// adminOnly lets through requests that carry "Authorization: Bearer
// <token>" with a token of the admin scope.
func adminOnly(tokens *grpcx.Tokens, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tokens == nil || !tokens.Allows(strings.TrimSpace(tok), grpcx.ScopeAdmin) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="boomerang"`)
			http.Error(w, "an admin bearer token is required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// DefaultOutboxStaleAfter is Options.OutboxStaleAfter's default.
const DefaultOutboxStaleAfter = 2 * time.Minute

// loopback turns a listen address on every interface (":7480",
// "0.0.0.0:7480") into one to dial on this machine.
func loopback(addr string) string {
	h, port, err := net.SplitHostPort(addr)
	if err != nil || (h != "" && h != "0.0.0.0" && h != "::") {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}
