// Package platformtest starts the single-process platform for a test: free
// ports, a temporary rate table, quiet logs, and a clean stop when the test
// ends.
package platformtest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform"
	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/config"
)

// Rates is the FX table tests run with: EUR base, USD and JPY from 2026.
const Rates = "date,currency,rate\n2026-01-01,USD,0.9\n2026-01-01,JPY,0.006\n"

// Start runs the platform on dataDir with env on top of the test defaults
// and stops it with the test.
func Start(tb testing.TB, dataDir string, env map[string]string) *platform.Main {
	tb.Helper()
	rates := filepath.Join(tb.TempDir(), "rates.csv")
	if err := os.WriteFile(rates, []byte(Rates), 0o600); err != nil {
		tb.Fatal(err)
	}
	vars := map[string]string{
		"BOOMERANG_DATA_DIR":           dataDir,
		"BOOMERANG_GRPC_ADDR":          "127.0.0.1:0",
		"BOOMERANG_HTTP_ADDR":          "127.0.0.1:0",
		"INGEST_WEBHOOK_ADDR":          "127.0.0.1:0",
		"BOOMERANG_EMBEDDED_NATS_ADDR": "127.0.0.1:-1",
		"BOOMERANG_BASE_CURRENCY":      "EUR",
		"BOOMERANG_FX_RATES_FILE":      rates,
		"BOOMERANG_LOG_LEVEL":          "warn",
	}
	for k, v := range env {
		vars[k] = v
	}
	m := platform.New()
	m.Logs = io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Open(ctx, config.Map(vars)); err != nil {
		cancel()
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			tb.Error("platform did not stop within 20s")
		}
		if err := m.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return m
}

// Connect dials the platform's NATS as one of its users (busauth.Admin
// for a test that reads and writes everything, busauth.Shop for what a
// shop may do, a service's user to act as that service) and closes the
// connection with the test.
func Connect(tb testing.TB, m *platform.Main, user string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	c := m.NATSCredentials(user)
	if c.IsZero() {
		tb.Fatalf("the platform has no NATS user %q", user)
	}
	nc, err := nats.Connect(m.NATSURL(), append(c.Options(), opts...)...)
	if err != nil {
		tb.Fatalf("connect to NATS as %s: %v", user, err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// Admin is Connect as the operator.
func Admin(tb testing.TB, m *platform.Main) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	return Connect(tb, m, busauth.Admin)
}
