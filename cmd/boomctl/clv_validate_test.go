package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCLVValidateCDNOW runs the published holdout comparison (Fader,
// Hardie & Lee 2005, section 4: calibration weeks 1–39, forecast weeks
// 40–78) through the command and checks what a script reads from its
// JSON: the 1,411 customers of the zero class made 334 purchases in the
// holdout (0.24 each, 0.23 expected by the BG/NBD), the 100 with three
// repeat purchases 1.56 (1.52 expected), and actual and expected correlate
// at 0.626 over the 2,357 customers.
func TestCLVValidateCDNOW(t *testing.T) {
	dir := t.TempDir()
	svg, png := filepath.Join(dir, "holdout.svg"), filepath.Join(dir, "holdout.PNG")
	r := boomctl(t, context.Background(), nil, "", "clv", "validate", "--transactions", cdnowFile,
		"--calibration-end", "1997-09-30", "--plot", svg, "-o", "json")
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	var got validationView
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not the validation's JSON: %v\n%s", err, r.stdout)
	}
	if got.HoldoutEnd != "1998-06-30" || got.HoldoutLength != 39 || got.Customers != 2357 || got.Transactions != 6919 || len(got.Bins) != 8 {
		t.Fatalf("got holdout to %s (%v weeks), %d customers, %d transactions, %d bins; want 1998-06-30, 39, 2357, 6919, 8",
			got.HoldoutEnd, got.HoldoutLength, got.Customers, got.Transactions, len(got.Bins))
	}
	zero, three := got.Bins[0], got.Bins[3]
	rows := []struct{ name, got, want string }{
		{"zero class", f2(float64(zero.Customers)*zero.Actual) + " " + f2(zero.Actual) + " " + f2(zero.Predicted), "334.00 0.24 0.23"},
		{"x = 3", f2(float64(three.Customers)) + " " + f2(three.Actual) + " " + f2(three.Predicted), "100.00 1.56 1.52"},
		{"last bin", got.Bins[7].Label, "7+"},
		{"correlation", strconv.FormatFloat(got.Correlation, 'f', 3, 64), "0.626"},
		{"total actual", f2(got.Actual), "1882.00"},
	}
	for _, row := range rows {
		if row.got != row.want {
			t.Errorf("%s: got %s, want %s", row.name, row.got, row.want)
		}
	}
	if got.Spend == nil || got.Spend.Customers == 0 {
		t.Errorf("spend: got %+v, want a comparison", got.Spend)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", ">7+<", ">BG/NBD<", ">Actual<"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s: no %q", svg, want)
		}
	}

	// The table, and a PNG whatever the case of its extension.
	r = boomctl(t, context.Background(), nil, "", "clv", "validate", "--transactions", cdnowFile,
		"--calibration-end", "1997-09-30", "--holdout-end", "1998-06-30", "--plot", png)
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	for _, want := range []string{"Holdout:      to 1998-06-30 (39 weeks)", "7+         64", "actual 1882, predicted", "correlation 0.626"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table has no %q:\n%s", want, r.stdout)
		}
	}
	if b, err := os.ReadFile(png); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("%s: not a PNG (%v)", png, err)
	}
}

func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func TestCLVValidateErrors(t *testing.T) {
	dir := t.TempDir()
	few := filepath.Join(dir, "few.csv")
	if err := os.WriteFile(few, []byte("customer,date,amount\na,2026-01-01,5\na,2026-02-08,7\nb,2026-01-03,4\na,2026-06-01,3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"clv", "validate", "--transactions", cdnowFile}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no calibration end", base, exitUsage, "--calibration-end is required"},
		{"bad holdout end", append(base, "--calibration-end", "1997-09-30", "--holdout-end", "June"), exitUsage, "--holdout-end"},
		{"holdout before calibration end", append(base, "--calibration-end", "1997-09-30", "--holdout-end", "1997-09-30"), exitUsage, "must end after the calibration end"},
		{"calibration end after the data", append(base, "--calibration-end", "1998-06-30"), exitUsage, "must end after the calibration end"},
		{"bad plot format", append(base, "--calibration-end", "1997-09-30", "--plot", filepath.Join(dir, "chart.pdf")), exitUsage, ".svg or .png"},
		{"plot to a missing directory", append(base, "--calibration-end", "1997-09-30", "--plot", filepath.Join(dir, "no", "chart.svg")), exitFailure, "--plot"},
		{"not enough history", []string{"clv", "validate", "--transactions", few, "--calibration-end", "2026-03-01"}, exitFailure, "not enough history"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := boomctl(t, context.Background(), nil, "", tt.args...)
			if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("got exit %d, stderr %q; want exit %d containing %q", r.code, r.stderr, tt.wantCode, tt.wantErr)
			}
			if r.stdout != "" {
				t.Errorf("stdout: got %q, want nothing on failure", r.stdout)
			}
		})
	}
}
