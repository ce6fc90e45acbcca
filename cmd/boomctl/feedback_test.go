package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform/platformtest"
	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"
)

// TestFeedbackAgainstPlatform submits survey responses, reads the scores
// and works the recovery queue against the real single-process Boomerang.
func TestFeedbackAgainstPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole platform")
	}
	dataDir := t.TempDir()
	m := platformtest.Start(t, dataDir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := []string{"--addr", m.GRPCAddr(), "--token-file", filepath.Join(dataDir, "admin.token")}
	cli := func(args ...string) result {
		t.Helper()
		return boomctl(t, ctx, nil, "", append(append([]string{}, conn...), args...)...)
	}
	at := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)

	survey := []string{"feedback", "survey", "--customer", "cus_ann", "--kind", "nps", "--score", "2", "--source", "typeform", "--response-id", "r-1",
		"--comment", "parcel lost twice", "--channel", "email", "--at", at}
	r := cli(survey...)
	if r.code != exitOK || !strings.Contains(r.stdout, "Stored response r-1") {
		t.Fatalf("survey: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli(survey...)
	if r.code != exitOK || !strings.Contains(r.stdout, "already stored") {
		t.Errorf("survey again: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("feedback", "survey", "--customer", "cus_bob", "--kind", "nps", "--score", "9", "--at", at)
	if r.code != exitOK || !strings.Contains(r.stderr, "no --response-id given") {
		t.Errorf("survey without an id: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("feedback", "survey", "--customer", "cus_bob", "--kind", "csat", "--score", "6", "--response-id", "r-3")
	if r.code != exitFailure || !strings.Contains(r.stderr, "InvalidArgument") || !strings.Contains(r.stderr, "score out of range") {
		t.Errorf("CSAT 6: code %d\n%s", r.code, r.stderr)
	}
	for _, args := range [][]string{
		{"feedback", "survey", "--customer", "c", "--kind", "stars", "--score", "1"},
		{"feedback", "survey", "--customer", "c", "--kind", "nps"},
		{"feedback", "scores", "--tz", "Mars/Olympus"},
		{"feedback", "scores", "--period", "year"},
		{"feedback", "resolve", "x", "--outcome", "maybe"},
	} {
		if r := cli(args...); r.code != exitUsage {
			t.Errorf("%v: code %d, want usage\n%s", args, r.code, r.stderr)
		}
	}

	r = cli("-o", "json", "feedback", "scores", "--period", "month", "--tz", "Asia/Tokyo")
	scores := &feedbackv1.GetScoresResponse{}
	decodeOutput(t, r, scores)
	var n int64
	var nps float64
	for _, row := range scores.GetRows() {
		n += row.GetNpsResponses()
		nps = row.GetNps()
	}
	if n != 2 || (len(scores.GetRows()) == 1 && nps != 0) {
		t.Errorf("scores %v: want two NPS responses, one promoter and one detractor", scores)
	}
	r = cli("feedback", "scores")
	if r.code != exitOK || !strings.Contains(r.stdout, "NPS") || !strings.Contains(r.stdout, "CSAT 4-5") {
		t.Errorf("scores table: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = cli("feedback", "queue")
	if r.code != exitOK || !strings.Contains(r.stdout, "nps:typeform/r-1") || !strings.Contains(r.stdout, "nps detractor") || !strings.Contains(r.stdout, "cus_ann") {
		t.Fatalf("queue: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("feedback", "claim", "nps:typeform/r-1", "--agent", "ann")
	if r.code != exitOK || !strings.Contains(r.stdout, "claimed by ann") {
		t.Errorf("claim: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("feedback", "claim", "nps:typeform/r-1", "--agent", "bob")
	if r.code != exitFailure || !strings.Contains(r.stderr, "FailedPrecondition") {
		t.Errorf("claim by another: code %d\n%s", r.code, r.stderr)
	}
	r = cli("feedback", "resolve", "nps:typeform/r-1", "--agent", "bob", "--outcome", "lost")
	if r.code != exitFailure || !strings.Contains(r.stderr, "FailedPrecondition") || !strings.Contains(r.stderr, "ann") {
		t.Errorf("resolve another agent's case: code %d\n%s", r.code, r.stderr)
	}
	r = cli("feedback", "resolve", "nps:typeform/r-1", "--agent", "ann", "--outcome", "no-answer", "--note", "three calls")
	if r.code != exitOK || !strings.Contains(r.stdout, "resolved by ann: no answer") {
		t.Errorf("resolve: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("feedback", "resolve", "nps:nobody", "--agent", "ann", "--outcome", "lost")
	if r.code != exitFailure || !strings.Contains(r.stderr, "NotFound") {
		t.Errorf("resolve unknown: code %d\n%s", r.code, r.stderr)
	}
	r = cli("feedback", "queue")
	if r.code != exitOK || !strings.Contains(r.stdout, "empty") {
		t.Errorf("queue after resolving: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestScoresWindow: the default window starts where its first period
// does, so no row covers part of its period.
func TestScoresWindow(t *testing.T) {
	a := &app{now: func() time.Time { return time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC) }}
	for _, tt := range []struct{ period, want string }{
		{"day", "2026-10-25T00:00:00+09:00"},
		{"week", "2026-10-19T00:00:00+09:00"}, // the Monday of 25 October's week
		{"month", "2026-10-01T00:00:00+09:00"},
	} {
		req, err := a.scoresRequest(scoresFlags{period: tt.period, tz: "Asia/Tokyo"})
		if err != nil {
			t.Fatal(err)
		}
		tokyo, _ := time.LoadLocation("Asia/Tokyo")
		if got := req.GetFrom().AsTime().In(tokyo).Format(time.RFC3339); got != tt.want {
			t.Errorf("%s: from %s, want %s", tt.period, got, tt.want)
		}
		if got := req.GetTo().AsTime().In(tokyo).Format(time.RFC3339); got != "2026-11-24T00:00:00+09:00" {
			t.Errorf("%s: to %s, want the end of today in Tokyo", tt.period, got)
		}
	}
}
