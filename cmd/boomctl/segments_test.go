package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"
)

func TestParseSegment(t *testing.T) {
	tests := []struct {
		in   string
		want segmentationv1.Segment
		ok   bool
	}{
		{"at-risk", segmentationv1.Segment_SEGMENT_AT_RISK, true},
		{"at risk", segmentationv1.Segment_SEGMENT_AT_RISK, true},
		{"CANT_LOSE_THEM", segmentationv1.Segment_SEGMENT_CANT_LOSE_THEM, true},
		{"segment_champions", segmentationv1.Segment_SEGMENT_CHAMPIONS, true},
		{"unspecified", 0, false},
		{"vip", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseSegment(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("parseSegment(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestSegmentsAgainstPlatform submits orders with boomctl and reads what
// segmentation made of them with boomctl.
func TestSegmentsAgainstPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole platform")
	}
	dataDir := t.TempDir()
	m := startPlatform(t, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := []string{"--addr", m.GRPCAddr(), "--token-file", filepath.Join(dataDir, "admin.token")}
	cli := func(args ...string) result {
		t.Helper()
		return boomctl(t, ctx, nil, "", append(append([]string{}, conn...), args...)...)
	}
	when := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	var ann string
	for i, o := range []struct{ id, email, total string }{{"A-1", "ann@example.com", "80.00"}, {"A-2", "ann@example.com", "20.00"}, {"B-1", "bob@example.com", "30.00"}} {
		r := cli("-o", "json", "orders", "submit", "--source", "shop-eu", "--order-id", o.id, "--occurred-at", when,
			"--currency", "EUR", "--total", o.total, "--email", o.email, "--channel", "web")
		resp := &ingestv1.SubmitOrdersResponse{}
		if err := protojson.Unmarshal([]byte(r.stdout), resp); err != nil || r.code != exitOK {
			t.Fatalf("submit %d: %v\n%s%s", i, err, r.stdout, r.stderr)
		}
		if i == 0 {
			ann = resp.GetResults()[0].GetCustomerId()
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	var prof *segmentationv1.GetProfileResponse
	for {
		r := cli("-o", "json", "segments", "profile", ann)
		prof = &segmentationv1.GetProfileResponse{}
		top := &segmentationv1.TopCustomersResponse{}
		rt := cli("-o", "json", "segments", "top", "--by", "spend")
		// Ann's two orders are in, and Bob's: both are on the board.
		if r.code == exitOK && protojson.Unmarshal([]byte(r.stdout), prof) == nil && prof.GetFeatures().GetOrders() == 2 &&
			prof.GetSegment() != segmentationv1.Segment_SEGMENT_UNSPECIFIED &&
			rt.code == exitOK && protojson.Unmarshal([]byte(rt.stdout), top) == nil && len(top.GetCustomers()) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no profile within 20s: %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := prof.GetFeatures().GetTotalValue().GetMinorUnits(); got != 10000 {
		t.Errorf("total %d, want 10000", got)
	}
	r := cli("segments", "profile", ann)
	for _, want := range []string{"Orders:", "100.00 EUR", "Segment:", "Prediction:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("profile text lacks %q:\n%s", want, r.stdout)
		}
	}
	// Withheld, for want of a model before the first scoring run and of
	// history after it.
	if !strings.Contains(r.stdout, "none yet: no model") && !strings.Contains(r.stdout, "withheld: the shop has too little history") {
		t.Errorf("profile text does not say why there is no prediction:\n%s", r.stdout)
	}
	r = cli("segments", "top", "--by", "spend")
	if r.code != exitOK || !strings.Contains(r.stdout, ann) || strings.Index(r.stdout, ann) > strings.Index(r.stdout, "30.00 EUR") {
		t.Errorf("top:\n%s%s", r.stdout, r.stderr)
	}
	r = cli("segments", "stats")
	if r.code != exitOK || !strings.Contains(r.stdout, "champions") || !strings.Contains(r.stdout, "Scored at:") {
		t.Errorf("stats:\n%s%s", r.stdout, r.stderr)
	}
	// A scoring run may move Ann between reading her segment and listing
	// it; read both again then.
	for attempt := 0; ; attempt++ {
		pr := cli("-o", "json", "segments", "profile", ann)
		if err := protojson.Unmarshal([]byte(pr.stdout), prof); err != nil {
			t.Fatal(err)
		}
		r = cli("segments", "members", strings.ReplaceAll(segmentName(prof.GetSegment()), " ", "-"), "--all", "--page-size", "1")
		if r.code == exitOK && strings.Contains(r.stdout, ann) {
			break
		}
		if attempt == 5 {
			t.Fatalf("members of %v:\n%s%s", prof.GetSegment(), r.stdout, r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r = cli("segments", "curve")
	if r.code != exitOK || !strings.Contains(r.stdout, "50.0%") {
		t.Errorf("curve (one of two customers ordered twice):\n%s%s", r.stdout, r.stderr)
	}
	// Two customers, Ann's second order on the day of her first: no
	// repeat customer for the fit, and no model can be fitted yet. A
	// refit rescores them and warns, and the model says how much history
	// is missing.
	r = cli("segments", "refit")
	if r.code != exitOK || !strings.Contains(r.stderr, "warning: customers rescored, but the models could not be fitted") ||
		!strings.Contains(r.stderr, "not enough history: 0 repeat customers, need 50") || !strings.Contains(r.stdout, "predictions withheld") {
		t.Errorf("refit: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("segments", "model")
	if r.code != exitFailure || !strings.Contains(r.stderr, "FailedPrecondition") || !strings.Contains(r.stderr, "not enough history: 1 customers with more than one order") {
		t.Errorf("model: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Every order is today's: a calibration period to yesterday holds no
	// customer, one to today leaves no holdout.
	today := time.Now().UTC()
	r = cli("segments", "validate", "--calibration-end", today.AddDate(0, 0, -1).Format(time.DateOnly))
	if r.code != exitFailure || !strings.Contains(r.stderr, "FailedPrecondition") || !strings.Contains(r.stderr, "no customers") {
		t.Errorf("validate, empty calibration period: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("segments", "validate", "--calibration-end", today.Format(time.DateOnly))
	if r.code != exitFailure || !strings.Contains(r.stderr, "InvalidArgument") || !strings.Contains(r.stderr, "must end after the calibration end") {
		t.Errorf("validate, no holdout: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("segments", "validate")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--calibration-end is required") {
		t.Errorf("validate without a calibration end: %d\n%s", r.code, r.stderr)
	}
	r = cli("segments", "rebuild-hot")
	if r.code != exitOK || !strings.Contains(r.stdout, "2 customers") {
		t.Errorf("rebuild-hot: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("segments", "members", "vip")
	if r.code != exitUsage {
		t.Errorf("unknown segment: exit %d", r.code)
	}
	r = cli("segments", "top", "--by", "points")
	if r.code != exitUsage {
		t.Errorf("bad --by: exit %d", r.code)
	}
}
