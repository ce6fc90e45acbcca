// Package service is segmentation's composition root: configuration, the
// wiring of store, hot store, use cases (internal/app), gRPC API, the ORDERS and FEEDBACK
// consumers and the outbox relay, and Run. The single-process runner and the service's own
// binary both use it.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/busrouter"
	"github.com/boomerang-loyalty/boomerang/pkg/feedbackbus"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox/outboxgrpc"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/grpcapi"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/hot"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// Name is the service's name in health checks, traces and metrics.
const Name = "segmentation"

// Config is segmentation's configuration.
type Config struct {
	// DatabaseURL is postgres://… or sqlite:PATH.
	DatabaseURL string
	// RedisURL is the hot store (redis://…); empty keeps it in process.
	RedisURL    string
	RedisPrefix string
	// BaseCurrency is the seller's base currency (ISO 4217).
	BaseCurrency string
	// BatchSize is the most order events applied in one transaction.
	BatchSize int
	// AckWait is the consumer's lease on a delivered message.
	AckWait time.Duration
	// LaterDelay is how long an order event waiting for an earlier event
	// of its order is put off; WaitForOrder how long it may wait in all
	// before it is dead-lettered (order_history_gap).
	LaterDelay, WaitForOrder time.Duration
	// ScoreInterval is how often the whole base is scored and the models
	// refitted; MinScoreInterval the least time between runs started early
	// because the base grew.
	ScoreInterval    time.Duration
	MinScoreInterval time.Duration
	// HorizonDays and DiscountRate shape the predictions.
	HorizonDays  int
	DiscountRate float64
	// Flags are the seller's flag thresholds.
	Flags segment.FlagRules
	// Stream retention.
	EventsMaxAge     time.Duration
	OrdersMaxAge     time.Duration
	DeadLetterMaxAge time.Duration
	// FeedbackMaxAge is read only to ensure the FEEDBACK stream as the
	// feedback service does (FEEDBACK_EVENTS_MAX_AGE).
	FeedbackMaxAge time.Duration
	StreamReplicas int
}

// Deps are what the service is given.
type Deps struct {
	DB        *sqldb.DB
	JetStream jetstream.JetStream
	// Redis is the hot store's client; nil keeps the hot store in process.
	Redis  *redis.Client
	Log    *slog.Logger
	Tracer trace.TracerProvider
	Meter  metric.MeterProvider
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service is a running segmentation.
type Service struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	store  *store.Store
	hot    hot.Store
	app    *app.App
	relay  *outbox.Relay
	router *busrouter.Router
	// cons consumes ORDERS, fbCons the feedback service's agony events.
	cons, fbCons jetstream.Consumer
	orders       busrouter.Route[segment.Event]
	feedback     busrouter.Route[segment.AgonyMark]
	api          *grpcapi.Server
}

// New migrates the database, ensures the streams and the durable consumers
// (so it can start before order-ingest and the feedback service), loads the last scoring state and
// wires the service. Run starts its work.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	log := d.Log.With("service", Name)
	st, err := store.Open(ctx, d.DB, log)
	if err != nil {
		return nil, err
	}
	var h hot.Store = hot.NewMemory()
	hotKind := "in-process"
	if d.Redis != nil {
		h, hotKind = hot.NewRedis(d.Redis, cfg.RedisPrefix), "redis"
	}
	sc, err := app.New(ctx, st, h, app.Options{
		Rules: cfg.Flags, HorizonDays: cfg.HorizonDays, AnnualDiscountRate: cfg.DiscountRate,
		MinInterval: cfg.MinScoreInterval, Now: d.Now,
	}, log)
	if err != nil {
		return nil, err
	}
	// A hot store that is empty (first start, in-process, flushed Redis)
	// is filled from SQL before the API answers from it.
	if err := sc.EnsureHot(ctx); err != nil {
		return nil, err
	}
	meter := d.Meter.Meter("boomerang/segmentation")
	dead, err := orderbus.NewDeadLetters(meter)
	if err != nil {
		return nil, err
	}
	relay, err := outbox.NewRelay(d.DB, d.JetStream, log, outbox.RelayOptions{LockKey: 0x7365676d656e74, Meter: meter, Service: Name,
		Fit: orderbus.FitDeadLetter, Stored: dead.Stored})
	if err != nil {
		return nil, err
	}
	// The feedback service owns FEEDBACK; creating it here when missing
	// lets segmentation start first.
	if err := streams.Ensure(ctx, d.JetStream, busauth.Segmentation, streams.Settings{Replicas: cfg.StreamReplicas, MaxAge: map[string]time.Duration{
		orderbus.Stream: cfg.OrdersMaxAge, orderbus.DeadLetterStream: cfg.DeadLetterMaxAge, bus.Stream: cfg.EventsMaxAge,
		feedbackbus.Stream: cfg.FeedbackMaxAge,
	}}); err != nil {
		return nil, err
	}
	cons, err := d.JetStream.CreateOrUpdateConsumer(ctx, orderbus.Stream, jetstream.ConsumerConfig{
		Durable:       bus.ConsumerName,
		Description:   "segmentation: customer features from canonical order events",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // failures are retried; undecodable events are dead-lettered
		MaxAckPending: cfg.BatchSize * 8,
		FilterSubject: orderbus.Prefix + ">",
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", bus.ConsumerName, err)
	}
	if err := natsx.ObserveLag(meter, cons, bus.ConsumerName); err != nil {
		return nil, err
	}
	router, err := busrouter.New(log, d.Tracer, meter)
	if err != nil {
		return nil, err
	}
	// A message that keeps failing is parked only while the database
	// answers: an outage parks nothing.
	healthy := func(ctx context.Context) error { return d.DB.W.PingContext(ctx) }
	orders, err := bus.NewOrders(sc, log, meter, bus.OrdersOptions{
		LaterDelay: cfg.LaterDelay, WaitForOrder: cfg.WaitForOrder, Healthy: healthy, OnCommit: relay.Notify, Now: d.Now,
	})
	if err != nil {
		return nil, err
	}
	fbCons, err := d.JetStream.CreateOrUpdateConsumer(ctx, feedbackbus.Stream, jetstream.ConsumerConfig{
		Durable:       bus.FeedbackConsumerName,
		Description:   "segmentation: the agony flag from the feedback service's agony and recovery events",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // failures are retried; undecodable events are dead-lettered
		MaxAckPending: cfg.BatchSize * 8,
		FilterSubject: feedbackbus.Prefix + ">",
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", bus.FeedbackConsumerName, err)
	}
	if err := natsx.ObserveLag(meter, fbCons, bus.FeedbackConsumerName); err != nil {
		return nil, err
	}
	log.InfoContext(ctx, "segmentation ready", "hot_store", hotKind, "database", d.DB.Dialect.String(),
		"score_interval", cfg.ScoreInterval)
	return &Service{
		cfg: cfg, deps: d, log: log, store: st, hot: h, app: sc, relay: relay, router: router,
		cons: cons, fbCons: fbCons, orders: orders, feedback: bus.NewFeedback(sc, d.Now, healthy, relay.Notify),
		api: grpcapi.New(sc, cfg.BaseCurrency, log),
	}, nil
}

// Register adds the gRPC API to s.
func (s *Service) Register(g *grpc.Server) {
	segmentationv1.RegisterSegmentationServiceServer(g, s.api)
}

// Scopes are the token scopes of the gRPC methods.
func (s *Service) Scopes() grpcx.MethodScopes { return grpcapi.Scopes }

// HealthName is the name under which the service reports its health.
func (s *Service) HealthName() string {
	return segmentationv1.SegmentationService_ServiceDesc.ServiceName
}

// Relay returns the outbox relay (tests flush it).
func (s *Service) Relay() *outbox.Relay { return s.relay }

// OutboxAge is how long the oldest unpublished outbox message has waited;
// /healthz reports the service degraded past BOOMERANG_OUTBOX_STALE_AFTER.
func (s *Service) OutboxAge(ctx context.Context) (time.Duration, error) {
	return s.relay.OldestAge(ctx)
}

// Outbox is the service's outbox, which the host serves to operators
// (OutboxAdminService) under the name "segmentation".
func (s *Service) Outbox() outboxgrpc.Outbox {
	return outboxgrpc.Outbox{Service: "segmentation", DB: s.deps.DB, Notify: s.relay.Notify}
}

// Refit scores the whole base now.
func (s *Service) Refit(ctx context.Context) (app.Result, error) { return s.app.Refit(ctx) }

// Rebuild restores the hot store from SQL and returns the customers
// written.
func (s *Service) Rebuild(ctx context.Context) (int, error) { return s.app.Rebuild(ctx) }

// SetAgony marks or clears a customer's agony flag now, by hand; the
// feedback service's events reach it through the FEEDBACK consumer. A
// feedback event older than the mark changes nothing.
func (s *Service) SetAgony(ctx context.Context, customerID string, on bool) error {
	return s.app.SetAgony(ctx, customerID, on)
}

// Run consumes order events and feedback events, relays the outbox and scores the base on its
// schedule until ctx is cancelled; then it stops taking messages, finishes
// the batch in hand and returns.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.relay.Run(ctx) })
	g.Go(func() error { return s.app.Run(ctx, s.cfg.ScoreInterval) })
	g.Go(func() error {
		bc := natsx.NewBatchConsumer(s.cons, natsx.BatchOptions{MaxBatch: s.cfg.BatchSize, AckWait: s.cfg.AckWait, LaterDelay: s.cfg.LaterDelay}, s.log)
		return busrouter.Run(ctx, s.router, bc, s.orders)
	})
	g.Go(func() error {
		bc := natsx.NewBatchConsumer(s.fbCons, natsx.BatchOptions{MaxBatch: s.cfg.BatchSize, AckWait: s.cfg.AckWait}, s.log)
		return busrouter.Run(ctx, s.router, bc, s.feedback)
	})
	return g.Wait()
}

// Ping checks the database and the hot store, for readiness.
func (s *Service) Ping(ctx context.Context) error {
	if err := s.deps.DB.W.PingContext(ctx); err != nil {
		return err
	}
	if s.deps.Redis != nil {
		return s.deps.Redis.Ping(ctx).Err()
	}
	return nil
}
