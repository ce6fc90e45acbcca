// Command segmentation runs segmentation on its own, for the distributed
// deployment: it needs NATS_URL, SEGMENTATION_DATABASE_URL and
// BOOMERANG_API_TOKENS, and SEGMENTATION_REDIS_URL (or REDIS_URL) for the
// hot store in Redis. "segmentation healthcheck" asks a running instance's
// /healthz and exits 0 when it is healthy.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/redisx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/telemetry"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/service"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		addr := config.NewReader(config.Environ()).String("BOOMERANG_HTTP_ADDR", ":7480")
		if err := host.CheckHealth(addr); err != nil {
			fmt.Fprintln(os.Stderr, "segmentation: unhealthy:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, config.Environ()); err != nil {
		fmt.Fprintln(os.Stderr, "segmentation:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, env config.Source) error {
	r := config.NewReader(env)
	natsURL := r.String("NATS_URL", "")
	grpcAddr := r.String("BOOMERANG_GRPC_ADDR", ":7443")
	httpAddr := r.String("BOOMERANG_HTTP_ADDR", ":7480")
	tokenSpec := r.String("BOOMERANG_API_TOKENS", "")
	otlp := r.String("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	otlpInsecure := r.Bool("OTEL_EXPORTER_OTLP_INSECURE", true)
	certFile := r.String("BOOMERANG_TLS_CERT_FILE", "")
	keyFile := r.String("BOOMERANG_TLS_KEY_FILE", "")
	var level slog.Level
	if err := level.UnmarshalText([]byte(r.String("BOOMERANG_LOG_LEVEL", "info"))); err != nil {
		r.Fail("BOOMERANG_LOG_LEVEL", "want debug, info, warn or error")
	}
	if natsURL == "" {
		r.Fail("NATS_URL", "required")
	}
	if err := r.Err(); err != nil {
		return err
	}
	cfg, err := service.LoadConfig(env)
	if err != nil {
		return err
	}
	tokens, err := grpcx.ParseTokens(tokenSpec)
	if err != nil {
		return fmt.Errorf("BOOMERANG_API_TOKENS: %w", err)
	}
	if tokens.Len() == 0 {
		return errors.New("BOOMERANG_API_TOKENS: required")
	}

	log := telemetry.NewLogger(os.Stderr, level)
	tel, err := telemetry.Setup(ctx, telemetry.Options{Service: service.Name, OTLPEndpoint: otlp, OTLPInsecure: otlpInsecure})
	if err != nil {
		return err
	}
	defer tel.Shutdown(context.Background())
	nc, js, err := natsx.Connect(natsURL, service.Name, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	defer nc.Drain()
	db, err := sqldb.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	deps := service.Deps{DB: db, JetStream: js, Log: log, Tracer: tel.Tracer, Meter: tel.Meter}
	if cfg.RedisURL != "" {
		rc, err := redisx.Open(ctx, cfg.RedisURL)
		if err != nil {
			return err
		}
		defer rc.Close()
		deps.Redis = rc
	}
	svc, err := service.New(ctx, cfg, deps)
	if err != nil {
		return err
	}
	h, err := host.New(host.Options{
		GRPCAddr: grpcAddr, HTTPAddr: httpAddr, Tokens: tokens, Log: log, Telemetry: tel,
		TLSCertFile: certFile, TLSKeyFile: keyFile,
	}, svc)
	if err != nil {
		return err
	}
	log.Info("segmentation started", "grpc", h.GRPCAddr(), "http", h.HTTPAddr())
	return h.Run(ctx)
}
