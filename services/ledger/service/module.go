package service

import (
	"context"

	"github.com/boomerang-loyalty/boomerang/pkg/host"
)

// Module starts the service in either run mode.
var Module = host.Module{Name: Name, DatabaseURL: DatabaseURL, SQLiteFile: "ledger.db", Build: build}

func build(ctx context.Context, d host.Deps) (host.Service, error) {
	cfg, err := LoadConfig(d.Config)
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg, Deps{DB: d.DB, JetStream: d.JetStream, Log: d.Log, Tracer: d.Telemetry.Tracer, Meter: d.Telemetry.Meter})
}
