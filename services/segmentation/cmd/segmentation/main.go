// Command segmentation runs segmentation on its own, for the distributed
// deployment: it needs NATS_URL, SEGMENTATION_DATABASE_URL and
// BOOMERANG_API_TOKENS, and SEGMENTATION_REDIS_URL (or REDIS_URL) for the
// hot store in Redis. "segmentation healthcheck" asks a running instance's
// /healthz and exits 0 when it is healthy.
// NATS_USER and NATS_PASSWORD (or NATS_CREDS) sign it in to NATS as its
// own user; a NATS_URL on another machine is refused without them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := host.Standalone(ctx, service.Module, os.Args[1:], config.Environ())
	stop()
	os.Exit(code)
}
