package service

import (
	"context"

	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
)

// Module starts the service in either run mode.
var Module = host.Module{Name: Name, DatabaseURL: DatabaseURL, SQLiteFile: "feedback.db", Build: build}

// build wires the service. It asks segmentation for segments and values
// through d.Peers: in the single process running segmentation too, on the
// process's own port; else at FEEDBACK_SEGMENTATION_ADDR; with neither it
// makes no look-ups.
func build(ctx context.Context, d host.Deps) (host.Service, error) {
	cfg, err := LoadConfig(d.Config)
	if err != nil {
		return nil, err
	}
	deps := Deps{DB: d.DB, JetStream: d.JetStream, Log: d.Log, Tracer: d.Telemetry.Tracer, Meter: d.Telemetry.Meter}
	conn, err := d.Peers.Dial("segmentation", "segmentation:read", cfg.SegmentationAddr,
		grpcx.ClientOptions{Token: cfg.SegmentationToken, TLS: cfg.SegmentationTLS})
	if err != nil {
		return nil, err
	}
	if conn != nil {
		deps.Profiles = SegmentationProfiles(segmentationv1.NewSegmentationServiceClient(conn))
	}
	return New(ctx, cfg, deps)
}
