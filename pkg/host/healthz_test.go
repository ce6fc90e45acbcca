package host_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
)

// outboxService is a service whose only dependency is its outbox.
type outboxService struct {
	name  string
	db    *sqldb.DB
	relay *outbox.Relay
}

func (s *outboxService) Register(*grpc.Server)          {}
func (s *outboxService) Scopes() grpcx.MethodScopes     { return nil }
func (s *outboxService) HealthName() string             { return s.name }
func (s *outboxService) Ping(ctx context.Context) error { return s.db.W.PingContext(ctx) }
func (s *outboxService) Run(ctx context.Context) error  { <-ctx.Done(); return nil }
func (s *outboxService) OutboxAge(ctx context.Context) (time.Duration, error) {
	return s.relay.OldestAge(ctx)
}

var _ host.OutboxAger = (*outboxService)(nil)

// newOutboxService opens an outbox holding one message written age ago
// (none when age is negative). Its relay does not run, as when it cannot
// reach JetStream or another replica holds the lock.
func newOutboxService(tb testing.TB, name string, age time.Duration) *outboxService {
	tb.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(tb.TempDir(), "o.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(ctx, db, "outbox", outbox.Migrations(), log); err != nil {
		tb.Fatal(err)
	}
	if age >= 0 {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			return outbox.Add(ctx, tx, db.Dialect, time.Now().Add(-age), outbox.Message{ID: "m1", Subject: "t.1", Data: []byte("1")})
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	relay, err := outbox.NewRelay(db, nil, log, outbox.RelayOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return &outboxService{name: name, db: db, relay: relay}
}

func TestHealthzOutboxStale(t *testing.T) {
	for _, tc := range []struct {
		name       string
		age        time.Duration // of the oldest outbox message; <0: none
		staleAfter time.Duration // 0: the default (2m)
		wantCode   int
		wantStatus string // prefix of the service's entry
	}{
		{"empty outbox", -1, 0, http.StatusOK, "ok"},
		{"fresh message", 5 * time.Second, 0, http.StatusOK, "ok"},
		{"message older than the default 2m", 3 * time.Minute, 0, http.StatusServiceUnavailable, "degraded: "},
		{"message older than a 10s threshold", 30 * time.Second, 10 * time.Second, http.StatusServiceUnavailable, "degraded: "},
		{"message younger than a 10m threshold", 3 * time.Minute, 10 * time.Minute, http.StatusOK, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newOutboxService(t, "svc", tc.age)
			other := newOutboxService(t, "other", -1)
			tokens := &grpcx.Tokens{}
			tokens.Add("admin-token-0123456789", grpcx.ScopeAdmin)
			h, err := host.New(host.Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Tokens: tokens,
				OutboxStaleAfter: tc.staleAfter, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, svc, other)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- h.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			resp, err := http.Get("http://" + h.HTTPAddr() + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var report map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantCode {
				t.Errorf("status %d, want %d (%v)", resp.StatusCode, tc.wantCode, report)
			}
			if !strings.HasPrefix(report["svc"], tc.wantStatus) {
				t.Errorf("svc: %q, want %q…", report["svc"], tc.wantStatus)
			}
			if tc.wantStatus != "ok" && !strings.Contains(report["svc"], "outbox") {
				t.Errorf("svc: %q does not say why", report["svc"])
			}
			if report["other"] != "ok" {
				t.Errorf("other: %q, want ok", report["other"])
			}
			if err := host.CheckHealth(h.HTTPAddr()); (err == nil) != (tc.wantCode == http.StatusOK) {
				t.Errorf("CheckHealth: %v with status %d", err, tc.wantCode)
			}
		})
	}
}
