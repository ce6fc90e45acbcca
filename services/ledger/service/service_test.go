package service

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := LoadConfig(config.Map(map[string]string{
		"BOOMERANG_BASE_CURRENCY": "EURO", "LEDGER_BATCH_SIZE": "0", "LEDGER_SWEEP_INTERVAL": "1ms",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"BOOMERANG_BASE_CURRENCY", "LEDGER_BATCH_SIZE", "LEDGER_SWEEP_INTERVAL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %s", err, want)
		}
	}
}

// TestProgrammeReload: a changed file replaces the programme; an invalid
// one is reported and the programme in force stays.
func TestProgrammeReload(t *testing.T) {
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	dir := t.TempDir()
	file := filepath.Join(dir, "programme.yaml")
	write := func(src string, mtime time.Time) {
		if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	write("base_currency: EUR\nrewards: [{id: a, name: A, cost: 10}]\n", now.Add(-time.Hour))
	cfg, err := LoadConfig(config.Map(map[string]string{
		"LEDGER_DATABASE_URL": "sqlite:" + filepath.Join(dir, "ledger.db"), "BOOMERANG_BASE_CURRENCY": "EUR",
		"LEDGER_PROGRAMME_FILE": file,
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := sqldb.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logs strings.Builder
	s, err := New(ctx, cfg, Deps{DB: db, JetStream: js, Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		Tracer: tracenoop.NewTracerProvider(), Meter: metricnoop.NewMeterProvider()})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Programme().Rewards()); n != 1 {
		t.Fatalf("rewards %d, want 1", n)
	}
	write("base_currency: EUR\nrewards: [{id: a, name: A, cost: 10}, {id: b, name: B, cost: 20}]\n", now.Add(time.Minute))
	s.reload(ctx)
	if n := len(s.Programme().Rewards()); n != 2 {
		t.Fatalf("after reload: rewards %d, want 2", n)
	}
	write("base_currency: EUR\nrewards: [{id: a, name: A, cost: -1}]\n", now.Add(2*time.Minute))
	s.reload(ctx)
	if n := len(s.Programme().Rewards()); n != 2 {
		t.Errorf("an invalid file replaced the programme: rewards %d", n)
	}
	if !strings.Contains(logs.String(), "rewards[0].cost") {
		t.Errorf("the log does not name the bad field: %s", logs.String())
	}
}
