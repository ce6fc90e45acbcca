// Package service is the feedback service's composition root:
// configuration, the wiring of store, use cases, the gRPC and bus ports
// (the FEEDBACK_IN stream), segmentation look-ups, the first-response
// sweep, the segment fill-in, the outbox relay, and Run. The single-process runner and the
// service's own binary both use it.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/busrouter"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox/outboxgrpc"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/grpcapi"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/store"
)

// The use cases are what the ports need of them.
var (
	_ grpcapi.UseCases = (*app.App)(nil)
	_ bus.Recorder     = (*app.App)(nil)
)

// Name is the service's name in health checks, traces and metrics.
const Name = "feedback"

// Config is the feedback service's configuration.
type Config struct {
	// DatabaseURL is postgres://… or sqlite:PATH.
	DatabaseURL string
	// SegmentationAddr, SegmentationToken and SegmentationTLS reach the
	// segmentation service's gRPC API (its own binary dials it; the
	// single-process runner hands the service a client instead).
	SegmentationAddr  string
	SegmentationToken string
	SegmentationTLS   bool
	// ProfileTimeout bounds the segmentation look-ups of one intake batch.
	ProfileTimeout time.Duration
	// FirstResponseThreshold: a ticket waiting longer for its first
	// response puts the customer in agony.
	FirstResponseThreshold time.Duration
	// SweepInterval is how often unanswered tickets are looked for.
	SweepInterval time.Duration
	// FillInterval is how often segments segmentation could not tell are
	// asked again; FillGiveUp is how long a customer segmentation does not
	// know is asked about before the responses are left unsegmented.
	FillInterval time.Duration
	FillGiveUp   time.Duration
	// ValueMaxAge: the value of a customer with an open recovery case is
	// asked again when segmentation told it longer ago than this, so the
	// queue follows the customers' current value.
	ValueMaxAge time.Duration
	// ClaimTTL: a recovery case claimed this long ago may be taken over
	// by another agent (0: claims never lapse).
	ClaimTTL time.Duration
	// ScoreTimeZones are the time zones whose local days get a rollup of
	// their own, so that scores by day, week and month in them read one
	// row per day; other zones are summed from quarter hours.
	ScoreTimeZones []string
	BatchSize      int
	AckWait        time.Duration
	// MaxAttempts is how often one intake message may fail, while the
	// database answers, before it is dead-lettered.
	MaxAttempts   int
	EventsMaxAge  time.Duration
	InMaxAge      time.Duration
	DeadLetterAge time.Duration
	// OrdersMaxAge is read only to ensure the shared streams as every
	// other service does: ensuring ORDERS with another retention would
	// change it for all.
	OrdersMaxAge   time.Duration
	StreamReplicas int
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// Profiles tells what segmentation knows of a customer: the segment and
// the predicted lifetime value. The feedback service asks it with a
// deadline and carries on without an answer.
type Profiles interface {
	Profile(ctx context.Context, customerID string) (segment segmentationv1.Segment, clv money.Money, err error)
}

// ErrUnknownCustomer is what a Profiles answers for a customer it does not
// know (yet).
var ErrUnknownCustomer = app.ErrUnknownCustomer

// SegmentationProfiles is Profiles over segmentation's gRPC API.
func SegmentationProfiles(c segmentationv1.SegmentationServiceClient) Profiles {
	return grpcProfiles{c}
}

type grpcProfiles struct {
	c segmentationv1.SegmentationServiceClient
}

func (g grpcProfiles) Profile(ctx context.Context, customerID string) (segmentationv1.Segment, money.Money, error) {
	p, err := g.c.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: customerID})
	if status.Code(err) == codes.NotFound {
		return 0, money.Money{}, ErrUnknownCustomer
	}
	if err != nil {
		return 0, money.Money{}, err
	}
	clv := p.GetPrediction().GetClv()
	return p.GetSegment(), money.Money{Minor: clv.GetMinorUnits(), Currency: clv.GetCurrency()}, nil
}

// domainProfiles adapts a Profiles to the use cases'.
type domainProfiles struct{ p Profiles }

func (d domainProfiles) Profile(ctx context.Context, customerID string) (feedback.Profile, error) {
	seg, clv, err := d.p.Profile(ctx, customerID)
	if err != nil {
		return feedback.Profile{}, err
	}
	return feedback.Profile{Segment: int(seg), CLV: clv.Minor, Currency: clv.Currency}, nil
}

// Deps are what the service is given.
type Deps struct {
	DB        *sqldb.DB
	JetStream jetstream.JetStream
	Log       *slog.Logger
	Tracer    trace.TracerProvider
	Meter     metric.MeterProvider
	// Profiles answers segment and value look-ups; nil: none are made and
	// responses stay unsegmented.
	Profiles Profiles
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service is a running feedback service.
type Service struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	store  *store.Store
	app    *app.App
	relay  *outbox.Relay
	router *busrouter.Router
	route  busrouter.Route[feedback.Input]
	cons   jetstream.Consumer
	api    *grpcapi.Server
}

// New migrates the database, ensures the streams and the durable consumer
// of FEEDBACK_IN, and wires the service. Run starts its work.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &Service{cfg: cfg, deps: d, log: d.Log.With("service", Name)}
	var err error
	if s.store, err = store.Open(ctx, d.DB, store.Options{Encode: bus.Encode, Now: d.Now,
		ScoreZones: cfg.ScoreTimeZones, Log: s.log}); err != nil {
		return nil, err
	}
	var profiles app.Profiles
	if d.Profiles != nil {
		profiles = domainProfiles{d.Profiles}
	}
	s.app = app.New(s.store, profiles, app.Options{Timeout: cfg.ProfileTimeout, FirstResponseThreshold: cfg.FirstResponseThreshold, FillGiveUp: cfg.FillGiveUp,
		ValueMaxAge: cfg.ValueMaxAge, ClaimTTL: cfg.ClaimTTL, Now: d.Now}, s.log)
	meter := d.Meter.Meter("boomerang/feedback")
	dead, err := orderbus.NewDeadLetters(meter)
	if err != nil {
		return nil, err
	}
	if s.relay, err = outbox.NewRelay(d.DB, d.JetStream, s.log, outbox.RelayOptions{LockKey: 0x66656564, Meter: meter, Service: Name,
		Fit: orderbus.FitDeadLetter, Stored: dead.Stored}); err != nil {
		return nil, err
	}
	if err := streams.Ensure(ctx, d.JetStream, busauth.Feedback, streams.Settings{Replicas: cfg.StreamReplicas, MaxAge: map[string]time.Duration{
		orderbus.Stream: cfg.OrdersMaxAge, orderbus.DeadLetterStream: cfg.DeadLetterAge, bus.Stream: cfg.EventsMaxAge, bus.InStream: cfg.InMaxAge,
	}}); err != nil {
		return nil, err
	}
	s.cons, err = d.JetStream.CreateOrUpdateConsumer(ctx, bus.InStream, jetstream.ConsumerConfig{
		Durable:       bus.ConsumerName,
		Description:   "feedback: survey responses, reviews and ticket events into the feedback store",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // a batch that fails is retried in place; nothing is skipped
		MaxAckPending: cfg.BatchSize * 8,
		FilterSubject: bus.InPrefix + ">",
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", bus.ConsumerName, err)
	}
	if err := natsx.ObserveLag(meter, s.cons, bus.ConsumerName); err != nil {
		return nil, err
	}
	v, err := grpcx.NewValidator()
	if err != nil {
		return nil, err
	}
	if s.router, err = busrouter.New(s.log, d.Tracer, meter); err != nil {
		return nil, err
	}
	s.route = bus.Route(s.app, v, bus.Options{MaxAttempts: cfg.MaxAttempts, Healthy: d.DB.W.PingContext,
		OnCommit: s.relay.Notify, Log: s.log})
	s.api = grpcapi.New(s.app, s.relay.Notify, s.log, d.Now)
	s.log.InfoContext(ctx, "feedback ready", "database", d.DB.Dialect.String(),
		"first_response_threshold", cfg.FirstResponseThreshold, "segmentation", d.Profiles != nil)
	return s, nil
}

// Register adds the gRPC API to g.
func (s *Service) Register(g *grpc.Server) { feedbackv1.RegisterFeedbackServiceServer(g, s.api) }

// Scopes are the token scopes of the gRPC methods.
func (s *Service) Scopes() grpcx.MethodScopes { return grpcapi.Scopes }

// HealthName is the name under which the service reports its health.
func (s *Service) HealthName() string { return feedbackv1.FeedbackService_ServiceDesc.ServiceName }

// Relay returns the outbox relay (tests flush it).
func (s *Service) Relay() *outbox.Relay { return s.relay }

// OutboxAge is how long the oldest unpublished outbox message has waited;
// /healthz reports the service degraded past BOOMERANG_OUTBOX_STALE_AFTER.
func (s *Service) OutboxAge(ctx context.Context) (time.Duration, error) {
	return s.relay.OldestAge(ctx)
}

// Outbox is the service's outbox, which the host serves to operators
// (OutboxAdminService) under the name "feedback".
func (s *Service) Outbox() outboxgrpc.Outbox {
	return outboxgrpc.Outbox{Service: "feedback", DB: s.deps.DB, Notify: s.relay.Notify}
}

// Store returns the store (tests and benchmarks read it).
func (s *Service) Store() *store.Store { return s.store }

// Ping checks the database, for readiness.
func (s *Service) Ping(ctx context.Context) error { return s.deps.DB.W.PingContext(ctx) }

// Sweep opens the cases of tickets unanswered past the threshold, brings
// their customers' values up to date for the recovery queue, and returns
// how many cases it opened.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	n, err := s.app.SweepTickets(ctx)
	if n > 0 {
		s.relay.Notify()
	}
	return n, err
}

// Fill asks segmentation again about the customers it could not tell,
// and about the customers with open recovery cases whose value is older
// than ValueMaxAge; it returns how many answers it recorded.
func (s *Service) Fill(ctx context.Context) (int, error) { return s.app.FillSegments(ctx) }

// Run consumes intake, sweeps, fills segments in and relays the outbox
// until ctx is cancelled; then it finishes the batch in hand and returns.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.relay.Run(ctx) })
	g.Go(func() error {
		bc := natsx.NewBatchConsumer(s.cons, natsx.BatchOptions{MaxBatch: s.cfg.BatchSize, AckWait: s.cfg.AckWait}, s.log)
		return busrouter.Run(ctx, s.router, bc, s.route)
	})
	g.Go(func() error { return every(ctx, s.cfg.SweepInterval, s.job("sweep", s.Sweep)) })
	if s.deps.Profiles != nil {
		g.Go(func() error { return every(ctx, s.cfg.FillInterval, s.job("segment fill-in", s.Fill)) })
	}
	return g.Wait()
}

func (s *Service) job(name string, fn func(context.Context) (int, error)) func(context.Context) {
	return func(ctx context.Context) {
		start := time.Now()
		n, err := fn(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.ErrorContext(ctx, "feedback job failed", "job", name, "error", err)
			}
			return
		}
		if n > 0 {
			s.log.InfoContext(ctx, "feedback job done", "job", name, "count", n, "duration", time.Since(start))
		}
	}
}

func every(ctx context.Context, d time.Duration, fn func(context.Context)) error {
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
