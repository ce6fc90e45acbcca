// Command feedback runs the feedback service on its own, for the
// distributed deployment: it needs NATS_URL, FEEDBACK_DATABASE_URL and
// BOOMERANG_API_TOKENS, and asks segmentation at FEEDBACK_SEGMENTATION_ADDR
// for segments and values. "feedback healthcheck" asks a running
// instance's /healthz and exits 0 when it is healthy.
// NATS_USER and NATS_PASSWORD (or NATS_CREDS) sign it in to NATS as its
// own user; a NATS_URL on another machine is refused without them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/services/feedback/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := host.Standalone(ctx, service.Name, "FEEDBACK_DATABASE_URL", "", os.Args[1:], config.Environ(),
		func(ctx context.Context, e host.Env) (host.Service, error) {
			cfg, err := service.LoadConfig(e.Config)
			if err != nil {
				return nil, err
			}
			deps := service.Deps{DB: e.DB, JetStream: e.JetStream, Log: e.Log, Tracer: e.Telemetry.Tracer, Meter: e.Telemetry.Meter}
			if cfg.SegmentationAddr != "" {
				// The connection lives as long as the process; it
				// reconnects by itself when segmentation restarts.
				conn, err := grpcx.Dial(cfg.SegmentationAddr, grpcx.ClientOptions{Token: cfg.SegmentationToken, TLS: cfg.SegmentationTLS})
				if err != nil {
					return nil, err
				}
				deps.Profiles = service.SegmentationProfiles(segmentationv1.NewSegmentationServiceClient(conn))
			}
			return service.New(ctx, cfg, deps)
		})
	stop()
	os.Exit(code)
}
