// Package service is points-ledger's composition root: configuration, the
// programme rules (reloaded when their file changes), the wiring of store,
// gRPC API, order-event consumer, sweeper and outbox relay, and Run. The
// single-process runner and the service's own binary both use it.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/busrouter"
	"github.com/boomerang-loyalty/boomerang/pkg/fx"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox/outboxgrpc"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/grpcapi"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/store"
)

// Name is the service's name in health checks, traces and metrics.
const Name = "points-ledger"

// Config is points-ledger's configuration.
type Config struct {
	// DatabaseURL is postgres://… or sqlite:PATH.
	DatabaseURL  string
	BaseCurrency string
	FXRatesFile  string
	// ProgrammeFile holds the programme rules (YAML); empty: one point
	// per unit of base currency and nothing else.
	ProgrammeFile string
	// ProgrammeReload is how often the file is checked for changes (0:
	// never).
	ProgrammeReload time.Duration
	BatchSize       int
	AckWait         time.Duration
	// LaterDelay and WaitForOrder: an event whose order's earlier event
	// has not been applied yet comes back after LaterDelay, and is
	// dead-lettered after WaitForOrder.
	LaterDelay   time.Duration
	WaitForOrder time.Duration
	// MaxAttempts is how often one event may fail while the database
	// answers before it is dead-lettered.
	MaxAttempts int
	// SweepInterval is how often expiry, warnings, birthday bonuses and
	// tier reviews run.
	SweepInterval  time.Duration
	EventsMaxAge   time.Duration
	OrdersMaxAge   time.Duration
	DeadLetterAge  time.Duration
	StreamReplicas int
}

// Deps are what the service is given.
type Deps struct {
	DB        *sqldb.DB
	JetStream jetstream.JetStream
	Log       *slog.Logger
	Tracer    trace.TracerProvider
	Meter     metric.MeterProvider
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service is a running points-ledger.
type Service struct {
	cfg       Config
	deps      Deps
	log       *slog.Logger
	programme atomic.Pointer[ledger.Programme]
	loadedAt  time.Time
	store     *store.Store
	app       *app.App
	relay     *outbox.Relay
	router    *busrouter.Router
	route     busrouter.Route[*ordersv1.OrderEvent]
	cons      jetstream.Consumer
	api       *grpcapi.Server
}

// New migrates the database, ensures the streams and the durable consumer
// of ORDERS, and wires the service. Run starts its work.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &Service{cfg: cfg, deps: d, log: d.Log.With("service", Name)}
	p, err := s.loadProgramme()
	if err != nil {
		return nil, err
	}
	s.programme.Store(p)
	rates, err := loadRates(cfg)
	if err != nil {
		return nil, err
	}
	if s.store, err = store.Open(ctx, d.DB, bus.Encode, s.log); err != nil {
		return nil, err
	}
	s.app = app.New(s.store, d.Now)
	meter := d.Meter.Meter("boomerang/ledger")
	dead, err := orderbus.NewDeadLetters(meter)
	if err != nil {
		return nil, err
	}
	if s.relay, err = outbox.NewRelay(d.DB, d.JetStream, s.log, outbox.RelayOptions{LockKey: 0x6c6564676572, Meter: meter, Service: Name,
		Fit: orderbus.FitDeadLetter, Stored: dead.Stored}); err != nil {
		return nil, err
	}
	if err := streams.Ensure(ctx, d.JetStream, busauth.Ledger, streams.Settings{Replicas: cfg.StreamReplicas, MaxAge: map[string]time.Duration{
		orderbus.Stream: cfg.OrdersMaxAge, orderbus.DeadLetterStream: cfg.DeadLetterAge, bus.Stream: cfg.EventsMaxAge,
	}}); err != nil {
		return nil, err
	}
	s.cons, err = d.JetStream.CreateOrUpdateConsumer(ctx, orderbus.Stream, jetstream.ConsumerConfig{
		Durable:       bus.ConsumerName,
		Description:   "points-ledger: canonical order events to points",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // a batch that fails is retried in place; nothing is skipped
		MaxAckPending: cfg.BatchSize * 8,
		FilterSubject: orderbus.Prefix + ">",
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", bus.ConsumerName, err)
	}
	if err := natsx.ObserveLag(meter, s.cons, bus.ConsumerName); err != nil {
		return nil, err
	}
	if s.router, err = busrouter.New(s.log, d.Tracer, meter); err != nil {
		return nil, err
	}
	s.route = bus.Route(s.app, s.Programme, bus.Options{LaterDelay: cfg.LaterDelay, WaitForOrder: cfg.WaitForOrder,
		MaxAttempts: cfg.MaxAttempts, Healthy: d.DB.W.PingContext, OnCommit: s.relay.Notify, Log: s.log})
	s.api = grpcapi.New(s.app, s.Programme, rates, s.relay.Notify, s.log, d.Now)
	s.log.InfoContext(ctx, "points-ledger ready", "base_currency", cfg.BaseCurrency, "database", d.DB.Dialect.String(),
		"programme", cfg.ProgrammeFile, "tiers", len(p.Tiers()), "rewards", len(p.Rewards()))
	return s, nil
}

func loadRates(cfg Config) (*fx.Table, error) {
	if cfg.FXRatesFile == "" {
		return fx.NewTable(cfg.BaseCurrency, nil)
	}
	return fx.LoadFile(cfg.BaseCurrency, cfg.FXRatesFile)
}

func (s *Service) loadProgramme() (*ledger.Programme, error) {
	var p *ledger.Programme
	var err error
	if s.cfg.ProgrammeFile == "" {
		p, err = ledger.DefaultProgramme(s.cfg.BaseCurrency)
	} else {
		p, err = ledger.LoadProgramme(s.cfg.ProgrammeFile)
	}
	if err != nil {
		return nil, fmt.Errorf("LEDGER_PROGRAMME_FILE: %w", err)
	}
	if p.BaseCurrency != s.cfg.BaseCurrency {
		return nil, fmt.Errorf("LEDGER_PROGRAMME_FILE: base_currency %s differs from BOOMERANG_BASE_CURRENCY %s", p.BaseCurrency, s.cfg.BaseCurrency)
	}
	s.loadedAt = s.deps.Now()
	return p, nil
}

// Programme returns the programme in force.
func (s *Service) Programme() *ledger.Programme { return s.programme.Load() }

// Store returns the store (tests verify it).
func (s *Service) Store() *store.Store { return s.store }

// Register adds the gRPC API to g.
func (s *Service) Register(g *grpc.Server) { ledgerv1.RegisterLedgerServiceServer(g, s.api) }

// Scopes are the token scopes of the gRPC methods.
func (s *Service) Scopes() grpcx.MethodScopes { return grpcapi.Scopes }

// HealthName is the name under which the service reports its health.
func (s *Service) HealthName() string { return ledgerv1.LedgerService_ServiceDesc.ServiceName }

// Relay returns the outbox relay (tests flush it).
func (s *Service) Relay() *outbox.Relay { return s.relay }

// OutboxAge is how long the oldest unpublished outbox message has waited;
// /healthz reports the service degraded past BOOMERANG_OUTBOX_STALE_AFTER.
func (s *Service) OutboxAge(ctx context.Context) (time.Duration, error) {
	return s.relay.OldestAge(ctx)
}

// Outbox is the service's outbox, which the host serves to operators
// (OutboxAdminService) under the name "ledger".
func (s *Service) Outbox() outboxgrpc.Outbox {
	return outboxgrpc.Outbox{Service: "ledger", DB: s.deps.DB, Notify: s.relay.Notify}
}

// Ping checks the database, for readiness.
func (s *Service) Ping(ctx context.Context) error { return s.deps.DB.W.PingContext(ctx) }

// Sweep runs the periodic work once, at the service's clock.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	n, err := s.app.Sweep(ctx, s.Programme(), s.deps.Now(), 200)
	s.relay.Notify()
	return n, err
}

// Run consumes order events, sweeps, reloads the programme and relays the
// outbox until ctx is cancelled; then it finishes the batch in hand and
// returns.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.relay.Run(ctx) })
	g.Go(func() error {
		bc := natsx.NewBatchConsumer(s.cons, natsx.BatchOptions{MaxBatch: s.cfg.BatchSize, AckWait: s.cfg.AckWait, LaterDelay: s.cfg.LaterDelay}, s.log)
		return busrouter.Run(ctx, s.router, bc, s.route)
	})
	g.Go(func() error { return s.every(ctx, s.cfg.SweepInterval, s.sweepOnce) })
	if s.cfg.ProgrammeFile != "" && s.cfg.ProgrammeReload > 0 {
		g.Go(func() error { return s.every(ctx, s.cfg.ProgrammeReload, s.reload) })
	}
	return g.Wait()
}

func (s *Service) every(ctx context.Context, d time.Duration, fn func(context.Context)) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			fn(ctx)
		}
	}
}

func (s *Service) sweepOnce(ctx context.Context) {
	start := time.Now()
	n, err := s.Sweep(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "sweep failed", "error", err)
		}
		return
	}
	s.log.InfoContext(ctx, "sweep done", "accounts", n, "duration", time.Since(start))
}

// reload replaces the programme when its file changed and is valid; an
// invalid file is reported and the programme in force stays.
func (s *Service) reload(ctx context.Context) {
	fi, err := os.Stat(s.cfg.ProgrammeFile)
	if err != nil {
		s.log.WarnContext(ctx, "programme file unreadable; keeping the programme in force", "error", err)
		return
	}
	if !fi.ModTime().After(s.loadedAt) {
		return
	}
	p, err := s.loadProgramme()
	if err != nil {
		s.log.ErrorContext(ctx, "programme file invalid; keeping the programme in force", "error", err)
		return
	}
	s.programme.Store(p)
	s.log.InfoContext(ctx, "programme reloaded", "tiers", len(p.Tiers()), "rewards", len(p.Rewards()))
}

// Verify proves the ledger's invariants on db (every balance equals its
// entries and its open lots, never negative; every lot's remainder equals
// what it earned less what was taken) and returns the sum of all balances.
func Verify(ctx context.Context, db *sqldb.DB) (int64, error) {
	st, err := store.Open(ctx, db, bus.Encode, nil)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if err := st.Verify(ctx); err != nil {
		return 0, err
	}
	var total int64
	err = db.R.QueryRowContext(ctx, `SELECT COALESCE(SUM(balance), 0) FROM accounts`).Scan(&total)
	return total, err
}
