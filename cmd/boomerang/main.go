// Command boomerang runs the whole platform in one process: an embedded
// NATS server with JetStream on local disk (or an external one), SQLite
// databases (or PostgreSQL), and every service, with all gRPC APIs on one
// port and /metrics and /healthz on another.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform"
	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		addr := host.HTTPAddr.Read(config.NewReader(config.Environ()))
		if err := host.CheckHealth(addr); err != nil {
			fmt.Fprintln(os.Stderr, "boomerang: unhealthy:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := platform.New()
	if err := m.Open(ctx, os.LookupEnv); err != nil {
		fmt.Fprintln(os.Stderr, "boomerang:", err)
		os.Exit(1)
	}
	m.PrintAddresses(os.Stdout)
	err := m.Run(ctx)
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "boomerang:", err)
		os.Exit(1)
	}
}
