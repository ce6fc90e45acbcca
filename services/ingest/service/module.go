package service

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/app"
)

// Module starts the service in either run mode.
var Module = host.Module{Name: Name, DatabaseURL: DatabaseURL, SQLiteFile: "ingest.db", Build: build}

// build wires the service. The customer 360 read reaches the ledger,
// segmentation and feedback through d.Peers: in the single process
// running them too, on the process's own port; else at their
// INGEST_*_ADDR; a peer with neither is reported unavailable.
func build(ctx context.Context, d host.Deps) (host.Service, error) {
	cfg, err := LoadConfig(d.Config)
	if err != nil {
		return nil, err
	}
	o := grpcx.ClientOptions{Token: cfg.PeerToken, TLS: cfg.PeerTLS}
	var peers app.Peers
	for _, p := range []struct {
		name, scope, addr string
		set               func(grpc.ClientConnInterface)
	}{
		{"ledger", "ledger:read", cfg.LedgerAddr, func(c grpc.ClientConnInterface) { peers.Ledger = ledgerv1.NewLedgerServiceClient(c) }},
		{"segmentation", "segmentation:read", cfg.SegmentationAddr, func(c grpc.ClientConnInterface) {
			peers.Segmentation = segmentationv1.NewSegmentationServiceClient(c)
		}},
		{"feedback", "feedback:read", cfg.FeedbackAddr, func(c grpc.ClientConnInterface) { peers.Feedback = feedbackv1.NewFeedbackServiceClient(c) }},
	} {
		conn, err := d.Peers.Dial(p.name, p.scope, p.addr, o)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", p.name, err)
		}
		if conn != nil {
			p.set(conn)
		}
	}
	return New(ctx, cfg, Deps{DB: d.DB, JetStream: d.JetStream, Log: d.Log, Tracer: d.Telemetry.Tracer, Meter: d.Telemetry.Meter,
		Peers: peers})
}
