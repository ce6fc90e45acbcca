package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/orderimport"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
)

// The import's test files, shared with the readers' tests.
func importTestdata(name string) string {
	return filepath.Join("..", "internal", "orderimport", "testdata", name)
}

func importSummaryOf(tb testing.TB, r result) importSummary {
	tb.Helper()
	var s importSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		tb.Fatalf("summary (%v):\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	return s
}

func readRejects(tb testing.TB, path string) []rejectLine {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []rejectLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l rejectLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			tb.Fatalf("rejects line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// TestImportAgainstPlatform imports the Shopify and WooCommerce test
// exports into the real single-process Boomerang, checks what
// order-ingest made of them, and imports them again to find every event
// a duplicate.
func TestImportAgainstPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole platform")
	}
	dataDir := t.TempDir()
	m := startPlatform(t, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn := []string{"--addr", m.GRPCAddr(), "--token-file", filepath.Join(dataDir, "admin.token")}
	cli := func(args ...string) result {
		t.Helper()
		return boomctl(t, ctx, nil, "", append(append([]string{}, conn...), args...)...)
	}
	getOrder := func(source, id string) *ingestv1.GetOrderResponse {
		t.Helper()
		r := cli("-o", "json", "orders", "get", source, id)
		o := &ingestv1.GetOrderResponse{}
		if err := protojson.Unmarshal([]byte(r.stdout), o); err != nil {
			t.Fatalf("get %s/%s (%v): %s%s", source, id, err, r.stdout, r.stderr)
		}
		return o
	}
	rejects := filepath.Join(t.TempDir(), "rejects.jsonl")

	t.Run("shopify", func(t *testing.T) {
		r := cli("-o", "json", "orders", "import", "--source", "shop-us", "--rejects", rejects, "--batch", "3", importTestdata("shopify_orders.csv"))
		if r.code != exitOK {
			t.Fatalf("code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		s := importSummaryOf(t, r)
		want := orderimport.Counts{Orders: 8, Events: 10, Accepted: 8, Rejected: 4, Unreadable: 2}
		if s.Total != want || s.Files[0].Format != orderimport.Shopify {
			t.Errorf("summary %+v, want %+v", s, want)
		}
		var got []string
		for _, l := range readRejects(t, rejects) {
			got = append(got, fmt.Sprintf("%d %s %s %s", l.Row, l.OrderID, l.Kind, l.Reason))
			if l.File != importTestdata("shopify_orders.csv") || l.Message == "" {
				t.Errorf("rejection %+v: want the file and a message", l)
			}
		}
		wantRejects := []string{
			"7 9007199254741005  invalid",        // "12,50"
			"8 9007199254741006 paid invalid",    // the e-mail, found in a refused batch
			"9 9007199254741007 paid no_fx_rate", // 2025, before the rates
			"10   invalid",                       // an Id a spreadsheet rewrote
		}
		if strings.Join(got, "\n") != strings.Join(wantRejects, "\n") {
			t.Errorf("rejections:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRejects, "\n"))
		}

		o := getOrder("shop-us", "9007199254740993") // above 2^53, kept exact
		if o.GetStatus() != ingestv1.OrderStatus_ORDER_STATUS_PAID || o.GetTotal().GetMinorUnits() != 10880 || o.GetTotal().GetCurrency() != "USD" {
			t.Errorf("order 9007199254740993: %v", o)
		}
		o = getOrder("shop-us", "9007199254740995")
		if o.GetStatus() != ingestv1.OrderStatus_ORDER_STATUS_PARTIALLY_REFUNDED || o.GetRefunded().GetMinorUnits() != 1500 || len(o.GetHistory()) != 2 {
			t.Errorf("order 9007199254740995: %v", o)
		}
		o = getOrder("shop-us", "9007199254741003") // paid, refunded and cancelled in one call
		if o.GetStatus() != ingestv1.OrderStatus_ORDER_STATUS_CANCELLED || o.GetRefunded().GetMinorUnits() != 3000 || len(o.GetHistory()) != 3 {
			t.Errorf("order 9007199254741003: %v", o)
		}
		if h := getOrder("shop-us", "9007199254741001").GetHistory(); len(h) != 2 || h[0].GetTotal().GetCurrency() != "JPY" {
			t.Errorf("the cancelled unpaid JPY order: %v", h)
		}

		// Again: nothing new, the same rejections.
		r = cli("orders", "import", "--source", "shop-us", importTestdata("shopify_orders.csv"))
		if r.code != exitOK || !regexp.MustCompile(`shopify\s+8\s+10\s+0\s+8\s+4\s`).MatchString(r.stdout) {
			t.Errorf("again: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "rejected: "+importTestdata("shopify_orders.csv")+" row 9 order 9007199254741007 (paid): no_fx_rate") {
			t.Errorf("without --rejects the rejections go to stderr:\n%s", r.stderr)
		}
	})

	t.Run("woocommerce", func(t *testing.T) {
		r := cli("-o", "json", "orders", "import", "--source", "shop-eu", "--timezone", "Europe/Berlin", importTestdata("woocommerce_orders.csv"))
		if r.code != exitOK {
			t.Fatalf("code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if s := importSummaryOf(t, r); s.Total != (orderimport.Counts{Orders: 7, Events: 9, Accepted: 9, Rejected: 1, Unreadable: 1, Skipped: 1}) {
			t.Errorf("summary %+v", s.Total)
		}
		o := getOrder("shop-eu", "4103")
		h := o.GetHistory()
		if o.GetStatus() != ingestv1.OrderStatus_ORDER_STATUS_REFUNDED || len(h) != 3 ||
			h[1].GetRefund().GetRefundId() != "4110" || h[2].GetRefund().GetRefundId() != "4111" ||
			!h[0].GetOccurredAt().AsTime().Equal(time.Date(2026, 4, 2, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("order 4103: %v", o)
		}
		// The same customer (id 17) on two orders is one customer.
		if a, b := getOrder("shop-eu", "4101").GetCustomerId(), getOrder("shop-eu", "4105").GetCustomerId(); a == "" || a != b {
			t.Errorf("customers %q and %q, want one", a, b)
		}
		r = cli("-o", "json", "orders", "import", "--source", "shop-eu", "--timezone", "Europe/Berlin", importTestdata("woocommerce_orders.csv"))
		if s := importSummaryOf(t, r); s.Total != (orderimport.Counts{Orders: 7, Events: 9, Duplicate: 9, Rejected: 1, Unreadable: 1, Skipped: 1}) {
			t.Errorf("again: %+v", s.Total)
		}
	})

	t.Run("resume", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "history.jsonl")
		events := writeHistory(t, file, 3000)
		ckpt := filepath.Join(dir, "import.checkpoint")
		args := []string{"-o", "json", "orders", "import", "--source", "inhouse", "--batch", "5", "--parallel", "2",
			"--checkpoint", ckpt, "--rejects", filepath.Join(dir, "rejects.jsonl"), file}

		// Interrupt the first run once it has committed something.
		runCtx, stop := context.WithCancel(ctx)
		go func() {
			for runCtx.Err() == nil {
				if _, err := os.Stat(ckpt); err == nil {
					stop()
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		r := boomctl(t, runCtx, nil, "", append(append([]string{}, conn...), args...)...)
		stop()
		if r.code != exitFailure || !strings.Contains(r.stderr, "import interrupted; run the same command again to resume from "+ckpt) {
			t.Fatalf("interrupted run: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		first := importSummaryOf(t, r)
		cp, err := orderimport.LoadCheckpoint(ckpt)
		if err != nil {
			t.Fatal(err)
		}
		st := cp.Files[0]
		if st.Done || st.Offset == 0 || st.Counts != first.Files[0].Counts || st.Counts.Accepted == 0 || st.Counts.Accepted >= int64(events) {
			t.Fatalf("checkpoint after the interruption: %+v; summary %+v", st, first.Files[0])
		}

		r = cli(args...)
		if r.code != exitOK {
			t.Fatalf("resumed: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		second := importSummaryOf(t, r)
		want := orderimport.Counts{Orders: second.Total.Orders, Events: int64(events), Accepted: int64(events)}
		if second.Total != want || !second.Files[0].Done || second.Files[0].ThisRun.Accepted != int64(events)-st.Counts.Accepted {
			t.Errorf("resumed: %+v, want %+v in all, %d of them now", second, want, int64(events)-st.Counts.Accepted)
		}
		if rj := filepath.Join(dir, "rejects.jsonl"); len(readRejects(t, rj)) != 0 {
			t.Errorf("rejections: %v", readRejects(t, rj))
		}

		r = cli(args...)
		if s := importSummaryOf(t, r); r.code != exitOK || s.Files[0].ThisRun != (orderimport.Counts{}) || !strings.Contains(r.stderr, "already imported") {
			t.Errorf("a finished checkpoint: code %d %+v\n%s", r.code, s, r.stderr)
		}

		r = cli("-o", "json", "orders", "import", "--source", "inhouse", file)
		if s := importSummaryOf(t, r); s.Total.Duplicate != int64(events) || s.Total.Accepted != 0 {
			t.Errorf("whole file again: %+v, want %d duplicates", s.Total, events)
		}
	})
}

// writeHistory writes n paid orders as JSON Lines, with a refund or a
// cancellation of an earlier order after every few, so that with small
// batches an order's events are in different calls; it returns the
// number of events.
func writeHistory(tb testing.TB, path string, n int) int {
	tb.Helper()
	var b strings.Builder
	events := 0
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"order_id":"h-%d","occurred_at":"2026-06-01T10:00:00Z","currency":"EUR","total":"25.00","customer":{"email":"h%d@example.com"}}`+"\n", i, i%97)
		events++
		switch j := i - 7; {
		case j >= 0 && j%3 == 0:
			fmt.Fprintf(&b, `{"order_id":"h-%d","kind":"refunded","occurred_at":"2026-06-02T10:00:00Z","refund":{"id":"r-1","amount":"5.00","currency":"EUR"}}`+"\n", j)
			events++
		case j >= 0 && j%5 == 1:
			fmt.Fprintf(&b, `{"order_id":"h-%d","kind":"cancelled","occurred_at":"2026-06-03T10:00:00Z"}`+"\n", j)
			events++
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	return events
}

// Mistakes in the command line are usage errors, found before anything
// is sent.
func TestImportUsage(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "c")
	cp := &orderimport.Checkpoint{Version: 1, Source: "shop-a"}
	if err := cp.Save(ckpt); err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(dir, "changed.jsonl")
	if err := os.WriteFile(changed, []byte(`{"order_id":"1"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "stale")
	cp = &orderimport.Checkpoint{Version: 1, Source: "s", Files: []*orderimport.FileState{{Path: changed, Size: 3, Format: orderimport.JSONL}}}
	if err := cp.Save(stale); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{importTestdata("shopify_orders.csv")}, exitUsage, "--source is required for shopify CSV files"},
		{[]string{"--source", "Shop US", importTestdata("orders.jsonl")}, exitUsage, "--source \"Shop US\""},
		{[]string{"--batch", "501", importTestdata("orders.jsonl")}, exitUsage, "--batch: want 1 to 500"},
		{[]string{"--format", "xml", importTestdata("orders.jsonl")}, exitUsage, "--format"},
		{[]string{"--timezone", "Mars/Olympus", importTestdata("orders.jsonl")}, exitUsage, "--timezone"},
		{[]string{"--checkpoint", ckpt, "-"}, exitUsage, `"-" (stdin) must be the only file`},
		{[]string{"--checkpoint", ckpt, "--source", "shop-b", importTestdata("orders.jsonl")}, exitUsage, `the checkpoint ` + ckpt + ` is of an import from "shop-a"`},
		{[]string{"--checkpoint", stale, "--source", "s", changed}, exitFailure, "the file changed since the checkpoint was written"},
		{[]string{"--source", "s", filepath.Join(dir, "missing.csv")}, exitFailure, "no such file"},
		{[]string{"--source", "s", filepath.Join("testdata", "..", "import.go")}, exitFailure, "not a known order file"},
		{nil, exitUsage, "requires at least 1 arg"},
	} {
		r := boomctl(t, context.Background(), nil, "", append([]string{"--addr", "127.0.0.1:1", "orders", "import"}, tt.args...)...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: code %d, stderr %q; want %d and %q", tt.args, r.code, r.stderr, tt.code, tt.want)
		}
	}
}
