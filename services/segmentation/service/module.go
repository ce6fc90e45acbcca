package service

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/pkg/redisx"
)

// Module starts the service in either run mode.
var Module = host.Module{Name: Name, DatabaseURL: DatabaseURL, SQLiteFile: "segmentation.db", Build: build}

// build wires the service, with its hot store in Redis when
// SEGMENTATION_REDIS_URL or REDIS_URL is set and in process otherwise.
func build(ctx context.Context, d host.Deps) (host.Service, error) {
	cfg, err := LoadConfig(d.Config)
	if err != nil {
		return nil, err
	}
	deps := Deps{DB: d.DB, JetStream: d.JetStream, Log: d.Log, Tracer: d.Telemetry.Tracer, Meter: d.Telemetry.Meter}
	if cfg.RedisURL != "" {
		rc, err := redisx.Open(ctx, cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		d.Defer(func() { _ = rc.Close() })
		deps.Redis = rc
	}
	return New(ctx, cfg, deps)
}
