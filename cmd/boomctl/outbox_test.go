package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform"
	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform/platformtest"
	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	outboxv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/outbox/v1"
)

// parkInLedger writes a message one byte over the bus's max payload to the
// ledger's outbox, as a bug in the ledger would, and waits until its relay
// has parked it. It returns the payload.
func parkInLedger(tb testing.TB, ctx context.Context, m *platform.Main, dataDir, id string) []byte {
	tb.Helper()
	nc, _ := platformtest.Connect(tb, m, busauth.Admin)
	data := bytes.Repeat([]byte{'x'}, int(nc.MaxPayload())+1)
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(dataDir, "ledger.db"))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		return outbox.Add(ctx, tx, db.Dialect, time.Now(), outbox.Message{ID: id, Subject: "boomerang.ledger.v1.test", Data: data})
	})
	if err != nil {
		tb.Fatal(err)
	}
	flushLedger(tb, ctx, m)
	return data
}

// flushLedger waits until the ledger's relay has found its outbox empty.
func flushLedger(tb testing.TB, ctx context.Context, m *platform.Main) {
	tb.Helper()
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := m.Ledger.Relay().Flush(fctx); err != nil {
		tb.Fatalf("ledger relay flush: %v", err)
	}
}

// TestOutboxAgainstPlatform parks a real message in the ledger's outbox,
// then lists, counts, requeues and drops it with boomctl against the real
// single-process Boomerang.
func TestOutboxAgainstPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole platform")
	}
	const (
		adminToken  = "admin-token-0123456789"
		readerToken = "reader-token-0123456789"
	)
	dataDir := t.TempDir()
	m := platformtest.Start(t, dataDir, map[string]string{
		"BOOMERANG_API_TOKENS": adminToken + ":admin;" + readerToken + ":ledger:read,ingest:read",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cli := func(args ...string) result {
		t.Helper()
		return boomctl(t, ctx, nil, "", append([]string{"--addr", m.GRPCAddr(), "--token", adminToken}, args...)...)
	}

	// One server answers for the four services' outboxes.
	for _, service := range platform.AllServices {
		if r := cli("outbox", "parked", "stats", "--service", service); r.code != exitOK ||
			r.stdout != "No parked messages in the "+service+" outbox.\n" {
			t.Errorf("stats of %s: code %d\n%s%s", service, r.code, r.stdout, r.stderr)
		}
	}

	payload := parkInLedger(t, ctx, m, dataDir, "too-big")
	sum := sha256.Sum256(payload)
	digest := hex.EncodeToString(sum[:])

	r := cli("outbox", "parked", "list", "--service", "ledger")
	if r.code != exitOK || !strings.Contains(r.stdout, "PARKED AT") {
		t.Fatalf("list: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"too-big", "boomerang.ledger.v1.test", "too_large", digest[:12] + " ", "over the server's max payload"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "xxxx") {
		t.Errorf("list shows the payload:\n%s", r.stdout)
	}
	listed := &outboxv1.ListParkedResponse{}
	decodeOutput(t, cli("-o", "json", "outbox", "parked", "list", "--service", "ledger", "--reason", "too_large", "--all"), listed)
	if got := listed.GetMessages(); len(got) != 1 || got[0].GetSha256() != digest || got[0].GetSizeBytes() != int64(len(payload)) {
		t.Errorf("json list: %v, want too-big with %d bytes and sha256 %s", listed, len(payload), digest)
	}
	if r := cli("outbox", "parked", "list", "--service", "ledger", "--reason", "no_stream"); r.code != exitOK || r.stdout != "No parked messages.\n" {
		t.Errorf("no_stream only: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = cli("outbox", "parked", "stats", "--service", "ledger")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "Parked in the ledger outbox: 1, the oldest for ") ||
		!regexp.MustCompile(`(?m)^too_large +1 +\d{4}-`).MatchString(r.stdout) {
		t.Errorf("stats: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"a token without admin", []string{"--token", readerToken, "outbox", "parked", "list", "--service", "ledger"}, exitFailure, "ListParked: PermissionDenied"},
		{"no service", []string{"outbox", "parked", "list"}, exitUsage, `required flag(s) "service" not set`},
		{"an unknown service", []string{"outbox", "parked", "stats", "--service", "billing"}, exitFailure, "GetParkedStats: InvalidArgument"},
		{"an unknown reason", []string{"outbox", "parked", "list", "--service", "ledger", "--reason", "tired"}, exitFailure, "\n  reason: "},
		{"requeue of nothing", []string{"outbox", "parked", "requeue", "--service", "ledger"}, exitUsage, "give the ids to requeue"},
		{"requeue of ids and a reason", []string{"outbox", "parked", "requeue", "--service", "ledger", "too-big", "--reason", "too_large"}, exitUsage, "not both"},
		{"drop without a reason", []string{"outbox", "parked", "drop", "--service", "ledger", "too-big", "--actor", "ann"}, exitUsage, "--reason is required"},
	} {
		args := append([]string{"--addr", m.GRPCAddr(), "--token", adminToken}, tc.args...)
		if r := boomctl(t, ctx, nil, "", args...); r.code != tc.code || !strings.Contains(r.stderr, tc.inStderr) {
			t.Errorf("%s: code %d, want %d with %q\n%s", tc.name, r.code, tc.code, tc.inStderr, r.stderr)
		}
	}

	// Requeued, it is parked again: the bus still cannot take it.
	r = cli("outbox", "parked", "requeue", "--service", "ledger", "too-big", "nope")
	if r.code != exitFailure || r.stdout != "Requeued 1 of the ledger outbox's parked messages.\n" ||
		!strings.Contains(r.stderr, "1 of 2 ids not parked") || !strings.Contains(r.stderr, ": nope\n") {
		t.Errorf("requeue too-big, nope: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	flushLedger(t, ctx, m)
	requeued := &outboxv1.RequeueParkedResponse{}
	decodeOutput(t, cli("-o", "json", "outbox", "parked", "requeue", "--service", "ledger", "--reason", "too_large"), requeued)
	if requeued.GetRequeued() != 1 {
		t.Errorf("requeue of too_large: %v, want 1 requeued", requeued)
	}
	flushLedger(t, ctx, m)
	stats := &outboxv1.GetParkedStatsResponse{}
	decodeOutput(t, cli("-o", "json", "outbox", "parked", "stats", "--service", "ledger"), stats)
	if stats.GetTotal() != 1 {
		t.Fatalf("after requeues: %v, want too-big parked again", stats)
	}

	r = cli("outbox", "parked", "drop", "--service", "ledger", "too-big", "--reason", "test garbage", "--actor", "ann")
	if r.code != exitOK || r.stdout != "Dropped 1 of the ledger outbox's parked messages.\n" {
		t.Errorf("drop: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli("outbox", "parked", "stats", "--service", "ledger"); r.stdout != "No parked messages in the ledger outbox.\n" {
		t.Errorf("stats after the drop:\n%s%s", r.stdout, r.stderr)
	}
	if r := cli("outbox", "parked", "drop", "--service", "ledger", "too-big", "--reason", "again", "--actor", "ann"); r.code != exitFailure ||
		!strings.Contains(r.stderr, "1 of 1 ids not parked") {
		t.Errorf("second drop: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
