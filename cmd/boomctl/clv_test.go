package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// cdnowFile is the CDNOW transaction sample kept as test data by the clv
// package.
var cdnowFile = filepath.Join("..", "..", "services", "segmentation", "clv", "testdata", "CDNOW_sample.txt")

// clvFitJSON is what `clv fit` prints, read back loosely so the test sees
// the JSON a script would.
type clvFitJSON struct {
	CalibrationEnd  string `json:"calibration_end"`
	Unit            string `json:"unit"`
	Transactions    int    `json:"transactions"`
	Customers       int    `json:"customers"`
	RepeatCustomers int    `json:"repeat_customers"`
	BGNBD           struct {
		R, Alpha, A, B float64
		LogLikelihood  float64 `json:"log_likelihood"`
		Status         string
	} `json:"bgnbd"`
	GammaGamma struct {
		P, Q, Gamma   float64
		LogLikelihood float64 `json:"log_likelihood"`
		Status        string
	} `json:"gamma_gamma"`
}

func decodeFit(tb testing.TB, r result) clvFitJSON {
	tb.Helper()
	if r.code != exitOK {
		tb.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	var out clvFitJSON
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(&out); err != nil {
		tb.Fatalf("stdout is not the fit's JSON: %v\n%s", err, r.stdout)
	}
	return out
}

func TestCLVFitCDNOW(t *testing.T) {
	ctx := context.Background()
	cdnow, err := os.ReadFile(cdnowFile)
	if err != nil {
		t.Fatal(err)
	}
	f3 := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	f2 := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	f1 := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	tests := []struct {
		name  string
		stdin string
		args  []string
	}{
		{name: "file", args: []string{"clv", "fit", "--transactions", cdnowFile, "--calibration-end", "1997-09-30"}},
		{name: "stdin, explicit format and columns", stdin: string(cdnow), args: []string{
			"clv", "fit", "--transactions", "-", "--calibration-end", "1997-09-30", "--unit", "week",
			"--format", "whitespace", "--customer-column", "2", "--date-column", "3", "--amount-column", "5",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeFit(t, boomctl(t, ctx, nil, tt.stdin, tt.args...))
			// The published CDNOW estimates (Fader, Hardie & Lee 2005;
			// Fader & Hardie 2013), to their published precision.
			gotRow := strings.Join([]string{
				got.CalibrationEnd, got.Unit, strconv.Itoa(got.Transactions), strconv.Itoa(got.Customers), strconv.Itoa(got.RepeatCustomers),
				f3(got.BGNBD.R), f3(got.BGNBD.Alpha), f3(got.BGNBD.A), f3(got.BGNBD.B), f1(got.BGNBD.LogLikelihood),
				f2(got.GammaGamma.P), f2(got.GammaGamma.Q), f2(got.GammaGamma.Gamma), f1(got.GammaGamma.LogLikelihood),
			}, " ")
			want := "1997-09-30 week 6919 2357 946 0.243 4.414 0.793 2.426 -9582.4 6.25 3.74 15.44 -4055.9"
			if gotRow != want {
				t.Errorf("got  %s\nwant %s", gotRow, want)
			}
			if got.BGNBD.Status == "" || got.GammaGamma.Status == "" {
				t.Errorf("convergence status missing: %+v", got)
			}
		})
	}
}

func TestCLVFitDefaults(t *testing.T) {
	// Without --calibration-end the whole file is the calibration period,
	// up to its last purchase; days change alpha's scale, not the others.
	got := decodeFit(t, boomctl(t, context.Background(), nil, "", "clv", "fit", "--transactions", cdnowFile, "--unit", "day"))
	if got.CalibrationEnd != "1998-06-30" || got.Unit != "day" || got.Customers != 2357 || got.Transactions != 6919 {
		t.Errorf("got end %s, unit %s, %d customers, %d transactions; want 1998-06-30, day, 2357, 6919",
			got.CalibrationEnd, got.Unit, got.Customers, got.Transactions)
	}
	if got.RepeatCustomers <= 946 {
		t.Errorf("repeat customers over the whole file: got %d, want more than the 946 of the calibration period", got.RepeatCustomers)
	}
}

func TestCLVFitErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badRow := write("bad.csv", "customer,date,amount\na,2026-01-01,5\na,2026-01-08,five\n")
	noRepeat := write("once.csv", "customer,date,amount\na,2026-01-01,5\nb,2026-01-08,7\n")
	empty := write("empty.csv", "")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no file", []string{"clv", "fit"}, exitUsage, "--transactions is required"},
		{"bad unit", []string{"clv", "fit", "--transactions", cdnowFile, "--unit", "month"}, exitUsage, "--unit"},
		{"bad format", []string{"clv", "fit", "--transactions", cdnowFile, "--format", "xml"}, exitUsage, "--format"},
		{"bad date", []string{"clv", "fit", "--transactions", cdnowFile, "--calibration-end", "30/09/1997"}, exitUsage, "--calibration-end"},
		{"negative column", []string{"clv", "fit", "--transactions", cdnowFile, "--date-column", "-1"}, exitUsage, "--date-column"},
		{"stray argument", []string{"clv", "fit", "extra", "--transactions", cdnowFile}, exitUsage, "unknown command"},
		{"missing file", []string{"clv", "fit", "--transactions", filepath.Join(dir, "nope.csv")}, exitFailure, "no such file"},
		{"bad row", []string{"clv", "fit", "--transactions", badRow}, exitFailure, `line 3: bad row: column 3: amount "five" is not a number`},
		{"no repeat customers", []string{"clv", "fit", "--transactions", noRepeat}, exitFailure, "no customers with repeat purchases"},
		{"empty file", []string{"clv", "fit", "--transactions", empty}, exitFailure, "no transactions"},
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
