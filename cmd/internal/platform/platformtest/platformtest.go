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

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform"
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
