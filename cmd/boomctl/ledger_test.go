package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform/platformtest"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
)

// ledgerProgramme is the default programme (one point per euro, rounded
// down, one tier, no expiry) with a small catalogue.
const ledgerProgramme = `base_currency: EUR
rewards:
  - {id: mug, name: Mug, cost: 100, stock: 1}
  - {id: tote, name: Tote bag, cost: 40}
`

// decodeOutput parses a -o json output into m, failing the test with the
// whole invocation when it does not parse.
func decodeOutput(tb testing.TB, r result, m proto.Message) {
	tb.Helper()
	if err := protojson.Unmarshal([]byte(r.stdout), m); err != nil {
		tb.Fatalf("output is not a %s (%v): code %d\nstdout:\n%s\nstderr:\n%s", m.ProtoReflect().Descriptor().FullName(), err, r.code, r.stdout, r.stderr)
	}
}

// generatedKey finds the key boomctl made up and printed on stderr.
func generatedKey(tb testing.TB, stderr string) string {
	tb.Helper()
	m := regexp.MustCompile(`no --key given, using --key ([0-9a-f]{32}) `).FindStringSubmatch(stderr)
	if m == nil {
		tb.Fatalf("no generated key on stderr:\n%s", stderr)
	}
	return m[1]
}

// TestLedgerAgainstPlatform earns points through a paid order, then
// drives every ledger command against the real single-process Boomerang.
func TestLedgerAgainstPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole platform")
	}
	programme := filepath.Join(t.TempDir(), "programme.yaml")
	if err := os.WriteFile(programme, []byte(ledgerProgramme), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	m := platformtest.Start(t, dataDir, map[string]string{"INGEST_WAIT_FOR_ORDER": "0s", "LEDGER_PROGRAMME_FILE": programme})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn := []string{"--addr", m.GRPCAddr(), "--token-file", filepath.Join(dataDir, "admin.token")}
	cli := func(args ...string) result {
		t.Helper()
		return boomctl(t, ctx, nil, "", append(append([]string{}, conn...), args...)...)
	}

	r := cli("-o", "json", "orders", "submit", "--source", "shop-eu", "--order-id", "L-1",
		"--occurred-at", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
		"--currency", "EUR", "--total", "120.50", "--email", "lea@example.com")
	submitted := &ingestv1.SubmitOrdersResponse{}
	decodeOutput(t, r, submitted)
	if r.code != exitOK || len(submitted.GetResults()) != 1 || submitted.GetResults()[0].GetCustomerId() == "" {
		t.Fatalf("paid order: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	customer := submitted.GetResults()[0].GetCustomerId()
	balance := func() int64 {
		t.Helper()
		r := cli("-o", "json", "ledger", "account", customer)
		acct := &ledgerv1.GetAccountResponse{}
		decodeOutput(t, r, acct)
		return acct.GetBalance()
	}

	// The ledger consumes ORDERS on its own: wait for the order's points.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = cli("-o", "json", "ledger", "account", customer)
		if r.code == exitOK {
			break
		}
		if !strings.Contains(r.stderr, "NotFound") || time.Now().After(deadline) {
			t.Fatalf("account of %s never appeared: code %d\n%s", customer, r.code, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := balance(); got != 120 {
		t.Fatalf("balance after a paid order of 120.50 EUR: %d, want 120", got)
	}

	r = cli("ledger", "account", customer)
	for _, want := range []string{customer, "Balance:", "120 points", "Tier:", "Member", "Qualifying spend:", "120.50 EUR",
		"Next tier:", "- (highest tier)", "0 points within 30 days", "Referral code:", "Lifetime earned:"} {
		if r.code != exitOK || !strings.Contains(r.stdout, want) {
			t.Errorf("account lacks %q: code %d\n%s%s", want, r.code, r.stdout, r.stderr)
		}
	}

	r = cli("ledger", "account", "cus_nobody")
	if r.code != exitFailure || !strings.Contains(r.stderr, "GetAccount: NotFound:") {
		t.Errorf("unknown customer: code %d\n%s", r.code, r.stderr)
	}

	// Adjust adds a lot; the same key again changes nothing.
	adjust := []string{"ledger", "adjust", customer, "--points", "80", "--reason", "late delivery", "--actor", "alice", "--key", "adj-1"}
	r = cli(adjust...)
	if r.code != exitOK || !strings.Contains(r.stdout, "+80") || !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "200 points") {
		t.Fatalf("adjust: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli(adjust...)
	if r.code != exitOK || balance() != 200 {
		t.Errorf("adjust again with the same key: code %d, balance %d, want 200\n%s", r.code, balance(), r.stderr)
	}

	// Redeem points; a retry with the same key is the same redemption.
	redeem := []string{"-o", "json", "ledger", "redeem", customer, "--points", "50", "--key", "red-1"}
	r = cli(redeem...)
	first := &ledgerv1.RedeemResponse{}
	decodeOutput(t, r, first)
	if r.code != exitOK || first.GetRedemptionId() == "" || first.GetPoints() != 50 || first.GetBalance() != 150 {
		t.Fatalf("redeem 50: code %d, %v\n%s", r.code, first, r.stderr)
	}
	r = cli(redeem...)
	again := &ledgerv1.RedeemResponse{}
	decodeOutput(t, r, again)
	if r.code != exitOK || again.GetRedemptionId() != first.GetRedemptionId() || again.GetPoints() != 50 {
		t.Errorf("redeem retry: code %d, %v; want redemption %s again", r.code, again, first.GetRedemptionId())
	}
	if got := balance(); got != 150 {
		t.Errorf("balance after a redemption and its retry: %d, want 150", got)
	}

	r = cli("ledger", "redeem", customer, "--points", "60", "--key", "red-1")
	if r.code != exitFailure || !strings.Contains(r.stderr, "Redeem: AlreadyExists: idempotency key already used for a different request") {
		t.Errorf("another redemption under a used key: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("ledger", "redeem", customer, "--points", "1000", "--key", "red-2")
	if r.code != exitFailure || !strings.Contains(r.stderr, "Redeem: FailedPrecondition: insufficient points") {
		t.Errorf("redeem beyond the balance: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := balance(); got != 150 {
		t.Errorf("balance after a failed redemption: %d, want 150", got)
	}

	r = cli("ledger", "rewards")
	if r.code != exitOK || !regexp.MustCompile(`(?m)^mug +Mug +100 +- +1\n`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^tote +Tote bag +40 +- +unlimited\n`).MatchString(r.stdout) {
		t.Errorf("rewards: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A reward without --key: boomctl makes one up and prints it, and a
	// retry with it redeems nothing more.
	r = cli("ledger", "redeem", customer, "--reward", "mug")
	if r.code != exitOK || !strings.Contains(r.stdout, "Reward:") || !strings.Contains(r.stdout, "mug") || !strings.Contains(r.stdout, "50 points") {
		t.Fatalf("redeem mug: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	key := generatedKey(t, r.stderr)
	r = cli("-o", "json", "ledger", "redeem", customer, "--reward", "mug", "--key", key)
	mug := &ledgerv1.RedeemResponse{}
	decodeOutput(t, r, mug)
	if r.code != exitOK || mug.GetPoints() != 100 || mug.GetEntry().GetSourceRef() != "mug" || r.stderr != "" {
		t.Errorf("redeem mug again with key %s: code %d, %v\n%s", key, r.code, mug, r.stderr)
	}
	if got := balance(); got != 50 {
		t.Errorf("balance after the mug: %d, want 50", got)
	}
	r = cli("ledger", "redeem", customer, "--reward", "mug", "--key", "red-3")
	if r.code != exitFailure || !strings.Contains(r.stderr, "Redeem: FailedPrecondition: reward out of stock") {
		t.Errorf("second mug: code %d\n%s", r.code, r.stderr)
	}
	r = cli("ledger", "rewards")
	if !regexp.MustCompile(`(?m)^mug +Mug +100 +- +0\n`).MatchString(r.stdout) {
		t.Errorf("rewards after the mug:\n%s%s", r.stdout, r.stderr)
	}

	// A negative adjustment (the flag's value starts with a dash) by the
	// OS user.
	r = cli("-o", "json", "ledger", "adjust", customer, "--points", "-10", "--reason", "typo", "--key", "adj-2")
	adj := &ledgerv1.AdjustResponse{}
	decodeOutput(t, r, adj)
	if r.code != exitOK || adj.GetBalance() != 40 || adj.GetEntry().GetPoints() != -10 || adj.GetEntry().GetActor() == "" {
		t.Errorf("negative adjustment: code %d, %v\n%s", r.code, adj, r.stderr)
	}

	// Entries, newest first, on one page and across pages.
	r = cli("ledger", "entries", customer)
	var kinds []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
		f := strings.Fields(line)
		kinds = append(kinds, f[1]+" "+f[2])
	}
	wantKinds := []string{"adjustment -10", "redeem -100", "redeem -50", "adjustment +80", "earn +120"}
	if r.code != exitOK || strings.Join(kinds, ",") != strings.Join(wantKinds, ",") || strings.Contains(r.stdout, "Next page") {
		t.Errorf("entries: code %d, kinds %q, want %q\n%s%s", r.code, kinds, wantKinds, r.stdout, r.stderr)
	}
	for _, want := range []string{"by alice \"late delivery\"", "70 from ", "30 from adjust:", "base", "key red-1", "key " + key} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("entries lack %q:\n%s", want, r.stdout)
		}
	}

	r = cli("ledger", "entries", customer, "--page-size", "2")
	next := regexp.MustCompile(`(?m)^Next page: --page-token (\S+)$`).FindStringSubmatch(r.stdout)
	if r.code != exitOK || next == nil || strings.Count(r.stdout, "\n") != 4 {
		t.Fatalf("first page of 2: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("-o", "json", "ledger", "entries", customer, "--page-size", "2", "--page-token", next[1])
	page := &ledgerv1.ListEntriesResponse{}
	decodeOutput(t, r, page)
	if len(page.GetEntries()) != 2 || page.GetEntries()[0].GetPoints() != -50 || page.GetPage().GetNextPageToken() == "" {
		t.Errorf("second page: %v", page)
	}
	r = cli("-o", "json", "ledger", "entries", customer, "--page-size", "2", "--all")
	all := &ledgerv1.ListEntriesResponse{}
	decodeOutput(t, r, all)
	var sum int64
	for _, e := range all.GetEntries() {
		sum += e.GetPoints()
	}
	if len(all.GetEntries()) != 5 || sum != 40 || all.GetPage().GetNextPageToken() != "" {
		t.Errorf("--all: %d entries summing to %d, next %q; want 5 summing to 40, no next", len(all.GetEntries()), sum, all.GetPage().GetNextPageToken())
	}

	// A token the server never issued fails with its field violation.
	r = cli("ledger", "entries", customer, "--page-token", "abc")
	if r.code != exitFailure || !strings.Contains(r.stderr, "ListEntries: InvalidArgument: invalid page token\n") ||
		!strings.Contains(r.stderr, "\n  page.page_token: not a token this service issued\n") {
		t.Errorf("bad page token: code %d\n%s", r.code, r.stderr)
	}
	r = cli("ledger", "account", strings.Repeat("x", 65))
	if r.code != exitFailure || !strings.Contains(r.stderr, "GetAccount: InvalidArgument:") || !strings.Contains(r.stderr, "\n  customer_id: ") {
		t.Errorf("customer id too long: code %d\n%s", r.code, r.stderr)
	}

	r = cli("-o", "json", "ledger", "stats", "--period", "month")
	stats := &ledgerv1.GetProgrammeStatsResponse{}
	decodeOutput(t, r, stats)
	var total ledgerv1.ProgrammeStatsRow
	for _, row := range stats.GetRows() {
		total.Issued += row.GetIssued()
		total.Redeemed += row.GetRedeemed()
		total.Adjusted += row.GetAdjusted()
	}
	if r.code != exitOK || stats.GetOutstanding() != 40 || total.Issued != 120 || total.Redeemed != 150 || total.Adjusted != 70 {
		t.Errorf("stats: code %d, outstanding %d, issued %d, redeemed %d, adjusted %d; want 40, 120, 150, 70\n%s",
			r.code, stats.GetOutstanding(), total.Issued, total.Redeemed, total.Adjusted, r.stdout)
	}
	r = cli("ledger", "stats")
	if r.code != exitOK || !strings.Contains(r.stdout, "ISSUED") || !strings.Contains(r.stdout, "Outstanding: 40 points") {
		t.Errorf("stats text: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("ledger", "stats", "--from", "2020-01-01", "--to", "2020-01-31")
	if r.code != exitOK || !strings.Contains(r.stdout, "No movements in the period.\nOutstanding: 0 points\n") {
		t.Errorf("stats before the programme: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestLedgerUsage checks the mistakes caught before any call: each exits 2
// and names the problem. No server is needed, or reached.
func TestLedgerUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{name: "redeem with reward and points", args: []string{"ledger", "redeem", "c1", "--reward", "mug", "--points", "5", "--key", "k"}, wantStderr: "give --reward or --points, not both"},
		{name: "redeem with neither", args: []string{"ledger", "redeem", "c1", "--key", "k"}, wantStderr: "give --reward ID or --points N"},
		{name: "redeem zero points", args: []string{"ledger", "redeem", "c1", "--points", "0"}, wantStderr: "--points: want a positive number"},
		{name: "redeem without customer", args: []string{"ledger", "redeem", "--points", "5"}, wantStderr: "accepts 1 arg(s)"},
		{name: "adjust without reason", args: []string{"ledger", "adjust", "c1", "--points", "5", "--key", "k"}, wantStderr: "--reason is required"},
		{name: "adjust with a blank reason", args: []string{"ledger", "adjust", "c1", "--points", "5", "--reason", "  "}, wantStderr: "--reason is required"},
		{name: "adjust without points", args: []string{"ledger", "adjust", "c1", "--reason", "why"}, wantStderr: "--points is required"},
		{name: "adjust points not a number", args: []string{"ledger", "adjust", "c1", "--points", "ten", "--reason", "why"}, wantStderr: `invalid argument "ten"`},
		{name: "account without customer", args: []string{"ledger", "account"}, wantStderr: "accepts 1 arg(s)"},
		{name: "entries negative page size", args: []string{"ledger", "entries", "c1", "--page-size", "-1"}, wantStderr: "--page-size: want 0"},
		{name: "stats unknown period", args: []string{"ledger", "stats", "--period", "year"}, wantStderr: `--period: want day, week or month, got "year"`},
		{name: "stats bad date", args: []string{"ledger", "stats", "--from", "1/2/2026"}, wantStderr: "--from: want YYYY-MM-DD"},
		{name: "stats from after to", args: []string{"ledger", "stats", "--from", "2026-02-01", "--to", "2026-01-01"}, wantStderr: "--from 2026-02-01 is after --to 2026-01-01"},
		{name: "rewards with an argument", args: []string{"ledger", "rewards", "mug"}, wantStderr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Port 1 on loopback: a usage error must fail before dialling.
			r := boomctl(t, context.Background(), nil, "", append([]string{"--addr", "127.0.0.1:1", "--timeout", "1s"}, tt.args...)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tt.wantStderr) || !strings.Contains(r.stderr, "--help' for usage") {
				t.Errorf("code %d, want %d; stderr:\n%s\nwant it to contain %q", r.code, exitUsage, r.stderr, tt.wantStderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

func TestLedgerStatsRequest(t *testing.T) {
	req, err := statsRequest("week", "2026-03-01", "2026-03-31")
	if err != nil {
		t.Fatal(err)
	}
	want := &ledgerv1.GetProgrammeStatsRequest{Period: ledgerv1.Period_PERIOD_WEEK}
	if req.GetPeriod() != want.GetPeriod() ||
		!req.GetFrom().AsTime().Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) ||
		!req.GetTo().AsTime().Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("got %v, want week from 2026-03-01 to 2026-04-01 (exclusive)", req)
	}
}
