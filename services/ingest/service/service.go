// Package service is order-ingest's composition root: configuration, the
// wiring of store, use cases, gRPC API, bus consumer and outbox relay, and
// Run. The single-process runner and the service's own binary both use it.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	customersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/customers/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"

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
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/grpcapi"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/httpapi"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/store"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/webhook"
)

// Name is the service's name in health checks, traces and metrics.
const Name = "order-ingest"

// Config is order-ingest's configuration.
type Config struct {
	// DatabaseURL is postgres://… or sqlite:PATH.
	DatabaseURL string
	// BaseCurrency is the seller's base currency (ISO 4217).
	BaseCurrency string
	// FXRatesFile is the dated rate table (CSV: date,currency,rate).
	FXRatesFile string
	// IdentitySecret keys the identity hashes (at least 32 bytes).
	IdentitySecret []byte
	// BatchSize is the most input messages applied in one transaction.
	BatchSize int
	// MaxPayload bounds an input message in bytes.
	MaxPayload int
	// MaxAttempts before a message that keeps failing is dead-lettered.
	MaxAttempts int
	// WaitForOrder is how long a refund or cancellation waits for its
	// order before it is dead-lettered.
	WaitForOrder time.Duration
	// LaterDelay is how long a message put off waits before it comes back.
	LaterDelay time.Duration
	// AckWait is the consumer's lease on a delivered message: after a
	// crash, messages in flight come back when it runs out. A batch being
	// retried renews it.
	AckWait time.Duration
	// Stream retention.
	InputMaxAge      time.Duration
	OrdersMaxAge     time.Duration
	DeadLetterMaxAge time.Duration
	StreamReplicas   int
	// WebhookAddr is the HTTP intake's address; "" turns it off.
	WebhookAddr string
	// WebhookSources are the shops that may send webhooks.
	WebhookSources []WebhookSource
	// WebhookTolerance is how far a signed timestamp may be from now.
	WebhookTolerance time.Duration
	// LedgerAddr, SegmentationAddr and FeedbackAddr reach the services the
	// customer 360 read asks, with PeerToken and PeerTLS (the service's own
	// binary dials them; the single process hands it clients instead).
	LedgerAddr, SegmentationAddr, FeedbackAddr string
	PeerToken                                  string
	PeerTLS                                    bool
	// PeerTimeout bounds each service's answer to one customer read.
	PeerTimeout time.Duration
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
	// Peers are the services the customer 360 read asks; a nil one is
	// reported unavailable in every read.
	Peers app.Peers
}

// Service is a running order-ingest.
type Service struct {
	cfg    Config
	deps   Deps
	store  *store.Store
	app    *app.App
	relay  *outbox.Relay
	router *busrouter.Router
	orders busrouter.Route[[]app.Item]
	cons   jetstream.Consumer
	api    *grpcapi.Server
	// customers serves the customer 360 read.
	customers *grpcapi.CustomerServer
	// hooks is the HTTP intake's listener and handler; nil when it is off.
	hooks    net.Listener
	webhooks *httpapi.Handler
}

// webhookPublishTimeout bounds the wait for JetStream's acknowledgement of
// a webhook delivery: past it the shop is told to retry (503).
const webhookPublishTimeout = 10 * time.Second

// webhookGrace is how long requests in flight may finish at shutdown.
const webhookGrace = 10 * time.Second

// New migrates the database, ensures the streams and the durable consumer,
// and wires the service. Run starts its work.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	log := d.Log.With("service", Name)
	rates, err := loadRates(cfg)
	if err != nil {
		return nil, err
	}
	hasher, err := ingest.NewHasher(cfg.IdentitySecret)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, d.DB, log)
	if err != nil {
		return nil, err
	}
	meter := d.Meter.Meter("boomerang/ingest")
	dead, err := orderbus.NewDeadLetters(meter)
	if err != nil {
		return nil, err
	}
	relay, err := outbox.NewRelay(d.DB, d.JetStream, log, outbox.RelayOptions{LockKey: 0x6f7264657273, Meter: meter, Service: Name,
		Fit: orderbus.FitDeadLetter, Stored: dead.Stored})
	if err != nil {
		return nil, err
	}
	in, err := app.New(ingest.NewPreparer(rates, hasher), st, relay, d.Now, meter)
	if err != nil {
		return nil, err
	}
	if err := streams.Ensure(ctx, d.JetStream, busauth.Ingest, streams.Settings{Replicas: cfg.StreamReplicas, MaxAge: map[string]time.Duration{
		bus.InputStream: cfg.InputMaxAge, bus.OrdersStream: cfg.OrdersMaxAge, bus.DeadLetterStream: cfg.DeadLetterMaxAge,
	}}); err != nil {
		return nil, err
	}
	cons, err := d.JetStream.CreateOrUpdateConsumer(ctx, bus.InputStream, jetstream.ConsumerConfig{
		Durable:       bus.ConsumerName,
		Description:   "order-ingest: shop order events to canonical events",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // failures are retried; poison input is dead-lettered by the handler
		MaxAckPending: cfg.BatchSize * 8,
		FilterSubject: bus.InputPrefix + ">",
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", bus.ConsumerName, err)
	}
	if err := natsx.ObserveLag(meter, cons, bus.ConsumerName); err != nil {
		return nil, err
	}
	val, err := grpcx.NewValidator()
	if err != nil {
		return nil, err
	}
	router, err := busrouter.New(log, d.Tracer, meter)
	if err != nil {
		return nil, err
	}
	var webhooks *httpapi.Handler
	var hooks net.Listener
	if cfg.WebhookAddr != "" {
		sources := make([]httpapi.Source, 0, len(cfg.WebhookSources))
		for _, ws := range cfg.WebhookSources {
			p, _ := webhook.Lookup(ws.Platform) // Validate checked it
			sources = append(sources, httpapi.Source{Name: ws.Name, Platform: p, Secret: ws.Secret})
		}
		webhooks, err = httpapi.New(d.JetStream, log, d.Tracer, meter, httpapi.Options{Sources: sources, MaxBody: cfg.MaxPayload,
			Tolerance: cfg.WebhookTolerance, PublishTimeout: webhookPublishTimeout, Now: d.Now})
		if err != nil {
			return nil, err
		}
		// Bound here, so a port in use fails the start rather than Run.
		if hooks, err = net.Listen("tcp", cfg.WebhookAddr); err != nil {
			return nil, fmt.Errorf("INGEST_WEBHOOK_ADDR: %w", err)
		}
		log.InfoContext(ctx, "webhook intake listening", "addr", hooks.Addr().String(), "sources", len(sources))
	}
	log.InfoContext(ctx, "order-ingest ready", "base_currency", cfg.BaseCurrency, "fx_currencies", rates.Currencies(),
		"database", d.DB.Dialect.String())
	return &Service{
		cfg: cfg, deps: d, store: st, app: in, relay: relay, cons: cons,
		router: router,
		orders: bus.Orders(in, val, bus.Options{
			MaxPayload: cfg.MaxPayload, MaxAttempts: cfg.MaxAttempts, WaitForOrder: cfg.WaitForOrder,
			LaterDelay: cfg.LaterDelay, Ping: d.DB.W.PingContext,
		}),
		api:       grpcapi.New(in, log),
		customers: grpcapi.NewCustomers(app.NewCustomers(hasher, st, d.Peers, cfg.PeerTimeout, log), log),
		hooks:     hooks, webhooks: webhooks,
	}, nil
}

func loadRates(cfg Config) (*fx.Table, error) {
	if cfg.FXRatesFile == "" {
		return fx.NewTable(cfg.BaseCurrency, nil)
	}
	if _, err := os.Stat(cfg.FXRatesFile); err != nil {
		return nil, fmt.Errorf("BOOMERANG_FX_RATES_FILE: %w", err)
	}
	return fx.LoadFile(cfg.BaseCurrency, cfg.FXRatesFile)
}

// Register adds the gRPC APIs to g: the ingest API and the customer 360
// read, which order-ingest serves because it owns the identities.
func (s *Service) Register(g *grpc.Server) {
	ingestv1.RegisterIngestServiceServer(g, s.api)
	customersv1.RegisterCustomerServiceServer(g, s.customers)
}

// Scopes are the token scopes of the gRPC methods.
func (s *Service) Scopes() grpcx.MethodScopes {
	scopes := grpcx.MethodScopes{}
	maps.Copy(scopes, grpcapi.Scopes)
	maps.Copy(scopes, grpcapi.CustomerScopes)
	return scopes
}

// HealthName is the name under which the service reports its health.
func (s *Service) HealthName() string { return ingestv1.IngestService_ServiceDesc.ServiceName }

// WebhookAddr is the address of the HTTP intake, "" when it is off.
func (s *Service) WebhookAddr() string {
	if s.hooks == nil {
		return ""
	}
	return s.hooks.Addr().String()
}

// Relay returns the outbox relay (tests flush it).
func (s *Service) Relay() *outbox.Relay { return s.relay }

// OutboxAge is how long the oldest unpublished outbox message has waited;
// /healthz reports the service degraded past BOOMERANG_OUTBOX_STALE_AFTER.
func (s *Service) OutboxAge(ctx context.Context) (time.Duration, error) {
	return s.relay.OldestAge(ctx)
}

// Outbox is the service's outbox, which the host serves to operators
// (OutboxAdminService) under the name "ingest".
func (s *Service) Outbox() outboxgrpc.Outbox {
	return outboxgrpc.Outbox{Service: "ingest", DB: s.deps.DB, Notify: s.relay.Notify}
}

// Run consumes input and relays the outbox until ctx is cancelled; then it
// stops taking messages, finishes the batch in hand and returns.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.relay.Run(ctx) })
	g.Go(func() error {
		bc := natsx.NewBatchConsumer(s.cons, natsx.BatchOptions{MaxBatch: s.cfg.BatchSize, LaterDelay: s.cfg.LaterDelay, AckWait: s.cfg.AckWait},
			s.deps.Log.With("service", Name))
		return busrouter.Run(ctx, s.router, bc, s.orders)
	})
	if s.hooks != nil {
		g.Go(func() error {
			return httpapi.Serve(ctx, s.hooks, s.webhooks, s.deps.Log.With("service", Name), webhookGrace)
		})
	}
	return g.Wait()
}

// Ping checks the database, for readiness.
func (s *Service) Ping(ctx context.Context) error { return s.deps.DB.W.PingContext(ctx) }
