package outboxgrpc_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	outboxv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/outbox/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox/outboxgrpc"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	adminToken  = "admin-token-0123456789"
	readerToken = "reader-token-0123456789"
	// maxPayload keeps a too-large message small.
	maxPayload = 64 << 10
)

// lockedBuffer collects log lines written from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// outboxDB opens a migrated outbox database.
func outboxDB(tb testing.TB, url string) *sqldb.DB {
	tb.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(ctx, db, "outbox", outbox.Migrations(), slog.New(slog.DiscardHandler)); err != nil {
		tb.Fatal(err)
	}
	return db
}

func add(tb testing.TB, db *sqldb.DB, msgs ...outbox.Message) {
	tb.Helper()
	err := db.InTx(context.Background(), func(tx *sql.Tx) error {
		return outbox.Add(context.Background(), tx, db.Dialect, time.Now(), msgs...)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// runRelay runs a relay on db until the test ends.
func runRelay(tb testing.TB, db *sqldb.DB, js jetstream.JetStream) *outbox.Relay {
	tb.Helper()
	r, err := outbox.NewRelay(db, js, slog.New(slog.DiscardHandler), outbox.RelayOptions{Poll: 50 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("relay: %v", err)
		}
	})
	return r
}

func flush(tb testing.TB, r *outbox.Relay) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		tb.Fatalf("flush: %v", err)
	}
}

// serve starts a gRPC server as the host builds it (tokens, scopes,
// validation) with the admin service over outboxes, and returns clients
// holding the admin token and a token without the admin scope.
func serve(tb testing.TB, log *slog.Logger, outboxes ...outboxgrpc.Outbox) (admin, reader outboxv1.OutboxAdminServiceClient) {
	tb.Helper()
	tokens := &grpcx.Tokens{}
	tokens.Add(adminToken, grpcx.ScopeAdmin)
	tokens.Add(readerToken, "ledger:read", "ingest:read")
	gs, err := grpcx.NewServer(grpcx.ServerOptions{Tokens: tokens, Scopes: outboxgrpc.Scopes, Log: log})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := outboxgrpc.New(log, outboxes...)
	if err != nil {
		tb.Fatal(err)
	}
	srv.Register(gs.Server)
	addr := testkit.GRPC(tb, gs.Server)
	client := func(token string) outboxv1.OutboxAdminServiceClient {
		conn, err := grpcx.Dial(addr, grpcx.ClientOptions{Token: token})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { conn.Close() })
		return outboxv1.NewOutboxAdminServiceClient(conn)
	}
	return client(adminToken), client(readerToken)
}

func wantCode(tb testing.TB, what string, err error, want codes.Code) {
	tb.Helper()
	if got := status.Code(err); got != want {
		tb.Errorf("%s: %v, want %s", what, err, want)
	}
}

// TestOutboxAdmin parks real messages (one too large for the bus, one that
// no stream takes) and lists, counts, requeues and drops them over gRPC, in
// a server that holds two services' outboxes.
func TestOutboxAdmin(t *testing.T) {
	for _, dbk := range testkit.Databases("o.db") {
		t.Run(dbk.Name, func(t *testing.T) {
			ctx := context.Background()
			ns, err := natsx.RunEmbedded(natsx.EmbeddedOptions{Port: -1, StoreDir: t.TempDir(), MaxPayload: maxPayload})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(ns.Shutdown)
			_, js := testkit.JetStream(t, ns.ClientURL())
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
				t.Fatal(err)
			}
			ledgerDB, ingestDB := outboxDB(t, dbk.URL(t)), outboxDB(t, dbk.URL(t))
			big := bytes.Repeat([]byte{'x'}, maxPayload)
			add(t, ledgerDB,
				outbox.Message{ID: "big", Subject: "t.big", Data: big},
				outbox.Message{ID: "ok", Subject: "t.ok", Data: []byte("fine")},
			)
			add(t, ledgerDB, outbox.Message{ID: "lost", Subject: "nostream.x", Data: []byte("lost")})
			add(t, ingestDB, outbox.Message{ID: "ingest-lost", Subject: "nostream.y", Data: []byte("?")})
			ledgerRelay, ingestRelay := runRelay(t, ledgerDB, js), runRelay(t, ingestDB, js)
			flush(t, ledgerRelay)
			flush(t, ingestRelay)

			logs := &lockedBuffer{}
			log := slog.New(slog.NewJSONHandler(logs, nil))
			admin, reader := serve(t, log,
				outboxgrpc.Outbox{Service: "ledger", DB: ledgerDB, Notify: ledgerRelay.Notify},
				outboxgrpc.Outbox{Service: "ingest", DB: ingestDB, Notify: ingestRelay.Notify},
			)

			// Only admin tokens reach the parked messages.
			_, err = reader.ListParked(ctx, &outboxv1.ListParkedRequest{Service: "ledger"})
			wantCode(t, "list with a reader token", err, codes.PermissionDenied)
			_, err = reader.DropParked(ctx, &outboxv1.DropParkedRequest{Service: "ledger", Ids: []string{"big"}, Actor: "eve", Reason: "x"})
			wantCode(t, "drop with a reader token", err, codes.PermissionDenied)

			// A page at a time, oldest parked first, payloads by digest.
			page1, err := admin.ListParked(ctx, &outboxv1.ListParkedRequest{Service: "ledger", Page: &commonv1.PageRequest{PageSize: 1}})
			if err != nil {
				t.Fatal(err)
			}
			token := page1.GetPage().GetNextPageToken()
			if len(page1.GetMessages()) != 1 || token == "" {
				t.Fatalf("page 1: %v", page1)
			}
			page2, err := admin.ListParked(ctx, &outboxv1.ListParkedRequest{Service: "ledger", Page: &commonv1.PageRequest{PageSize: 1, PageToken: token}})
			if err != nil {
				t.Fatal(err)
			}
			if len(page2.GetMessages()) != 1 || page2.GetPage().GetNextPageToken() != "" {
				t.Fatalf("page 2: %v", page2)
			}
			byID := map[string]*outboxv1.ParkedMessage{}
			for _, m := range append(page1.GetMessages(), page2.GetMessages()...) {
				byID[m.GetId()] = m
			}
			sum := sha256.Sum256(big)
			if m := byID["big"]; m.GetSubject() != "t.big" || m.GetReason() != outbox.ReasonTooLarge || m.GetSizeBytes() != maxPayload ||
				m.GetSha256() != hex.EncodeToString(sum[:]) || !strings.Contains(m.GetError(), "max payload") ||
				m.GetParkedAt() == nil || m.GetCreatedAt() == nil {
				t.Errorf("big listed as %v", m)
			}
			if m := byID["lost"]; m.GetSubject() != "nostream.x" || m.GetReason() != outbox.ReasonNoStream || m.GetSizeBytes() != 4 {
				t.Errorf("lost listed as %v", m)
			}
			tooLarge, err := admin.ListParked(ctx, &outboxv1.ListParkedRequest{Service: "ledger", Reason: outbox.ReasonTooLarge})
			if err != nil || len(tooLarge.GetMessages()) != 1 || tooLarge.GetMessages()[0].GetId() != "big" {
				t.Errorf("too_large only: %v, %v", tooLarge, err)
			}
			// Each service's request reaches its own outbox.
			ingest, err := admin.ListParked(ctx, &outboxv1.ListParkedRequest{Service: "ingest"})
			if err != nil || len(ingest.GetMessages()) != 1 || ingest.GetMessages()[0].GetId() != "ingest-lost" {
				t.Errorf("ingest's parked: %v, %v", ingest, err)
			}

			for _, tc := range []struct {
				name string
				req  *outboxv1.ListParkedRequest
			}{
				{"a service not run here", &outboxv1.ListParkedRequest{Service: "feedback"}},
				{"no service", &outboxv1.ListParkedRequest{}},
				{"an unknown reason", &outboxv1.ListParkedRequest{Service: "ledger", Reason: "tired"}},
				{"a made-up page token", &outboxv1.ListParkedRequest{Service: "ledger", Page: &commonv1.PageRequest{PageToken: "nope"}}},
			} {
				_, err := admin.ListParked(ctx, tc.req)
				wantCode(t, "list with "+tc.name, err, codes.InvalidArgument)
			}

			stats, err := admin.GetParkedStats(ctx, &outboxv1.GetParkedStatsRequest{Service: "ledger"})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, r := range stats.GetReasons() {
				got[r.GetReason()] = r.GetCount()
			}
			if want := map[string]int64{outbox.ReasonNoStream: 1, outbox.ReasonTooLarge: 1}; stats.GetTotal() != 2 || fmt.Sprint(got) != fmt.Sprint(want) ||
				stats.GetOldestParkedAt() == nil || stats.GetOldestAge().AsDuration() < 0 {
				t.Errorf("stats %v, want 2 parked: %v", stats, want)
			}

			// Once a stream takes the subject, every no_stream message goes
			// back to the outbox and reaches the bus.
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "N", Subjects: []string{"nostream.>"}}); err != nil {
				t.Fatal(err)
			}
			rq, err := admin.RequeueParked(ctx, &outboxv1.RequeueParkedRequest{Service: "ledger", Reason: outbox.ReasonNoStream})
			if err != nil || rq.GetRequeued() != 1 {
				t.Fatalf("requeue no_stream: %v, %v", rq, err)
			}
			flush(t, ledgerRelay)
			n, err := js.Stream(ctx, "N")
			if err != nil {
				t.Fatal(err)
			}
			if m, err := n.GetLastMsgForSubject(ctx, "nostream.x"); err != nil || m.Header.Get(jetstream.MsgIDHeader) != "lost" {
				t.Errorf("requeued message on N: %v", err)
			}
			if n, err := outbox.CountParked(ctx, ingestDB); err != nil || n != 1 {
				t.Errorf("ingest's outbox has %d parked (%v), want its own 1 untouched", n, err)
			}

			// By id: what is not parked is named; a cause that remains
			// parks the message again.
			rq, err = admin.RequeueParked(ctx, &outboxv1.RequeueParkedRequest{Service: "ledger", Ids: []string{"big", "nope"}})
			if err != nil || rq.GetRequeued() != 1 || fmt.Sprint(rq.GetNotParked()) != "[nope]" {
				t.Fatalf("requeue big, nope: %v, %v", rq, err)
			}
			flush(t, ledgerRelay)
			if p, err := outbox.GetParked(ctx, ledgerDB, "big"); err != nil || p.Reason != outbox.ReasonTooLarge {
				t.Errorf("big after requeue: %+v, %v; want parked again as too_large", p, err)
			}
			_, err = admin.RequeueParked(ctx, &outboxv1.RequeueParkedRequest{Service: "ledger"})
			wantCode(t, "requeue naming nothing", err, codes.InvalidArgument)

			_, err = admin.DropParked(ctx, &outboxv1.DropParkedRequest{Service: "ledger", Ids: []string{"big"}, Reason: "junk"})
			wantCode(t, "drop without an actor", err, codes.InvalidArgument)
			_, err = admin.DropParked(ctx, &outboxv1.DropParkedRequest{Service: "ledger", Ids: []string{"big"}, Actor: "ann"})
			wantCode(t, "drop without a reason", err, codes.InvalidArgument)
			dr, err := admin.DropParked(ctx, &outboxv1.DropParkedRequest{Service: "ledger", Ids: []string{"big", "lost"}, Actor: "ann", Reason: "test junk, ticket 7"})
			if err != nil || dr.GetDropped() != 1 || fmt.Sprint(dr.GetNotParked()) != "[lost]" {
				t.Fatalf("drop big, lost: %v, %v", dr, err)
			}
			if n, err := outbox.CountParked(ctx, ledgerDB); err != nil || n != 0 {
				t.Errorf("%d parked after the drop (%v)", n, err)
			}
			if !dropLogged(t, logs.String(), "big", "ann", "test junk, ticket 7", hex.EncodeToString(sum[:])) {
				t.Errorf("no log line records the drop:\n%s", logs.String())
			}
		})
	}
}

// dropLogged reports whether a log line records the drop of id by actor
// for reason, with the payload's digest.
func dropLogged(tb testing.TB, logs, id, actor, reason, digest string) bool {
	tb.Helper()
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			tb.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == "parked outbox message dropped" && rec["msg_id"] == id && rec["actor"] == actor &&
			rec["reason"] == reason && rec["sha256"] == digest && rec["parked_reason"] == outbox.ReasonTooLarge {
			return true
		}
	}
	return false
}

// TestNewRefusesDuplicateNames: two outboxes under one name would make one
// unreachable.
func TestNewRefusesDuplicateNames(t *testing.T) {
	db := outboxDB(t, "sqlite:"+t.TempDir()+"/o.db")
	log := slog.New(slog.DiscardHandler)
	if _, err := outboxgrpc.New(log, outboxgrpc.Outbox{Service: "ledger", DB: db}, outboxgrpc.Outbox{Service: "ledger", DB: db}); err == nil {
		t.Error("two outboxes named ledger accepted")
	}
}
