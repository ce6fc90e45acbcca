package clv

import (
	"context"
	"errors"
	"math"
	"strconv"
	"testing"
)

func TestFitGammaGammaCDNOW(t *testing.T) {
	published := []struct {
		name     string
		get      func(GammaGammaFit) float64
		want     string
		decimals int
	}{
		{"p", func(f GammaGammaFit) float64 { return f.Params.P }, "6.25", 2},
		{"q", func(f GammaGammaFit) float64 { return f.Params.Q }, "3.74", 2},
		{"gamma", func(f GammaGammaFit) float64 { return f.Params.Gamma }, "15.44", 2},
		{"log-likelihood", func(f GammaGammaFit) float64 { return f.LogLikelihood }, "-4055.9", 1},
	}
	tests := []struct {
		name      string
		customers func(testing.TB) []Customer
		// gammaTo lowers the precision gamma is compared at, if not 0.
		gammaTo int
	}{
		// The published summary rounds zbar to the cent, which moves the
		// maximum to gamma = 15.4477 (lifetimes, fitting this file, prints
		// 15.45). The exact means, built from the transactions below, give
		// 15.4435, the published 15.44; so on the rounded file gamma holds
		// to one decimal and everything else to the published precision.
		{name: "published summary", customers: cdnowSummaryList, gammaTo: 1},
		{name: "summary built from the transactions", customers: func(tb testing.TB) []Customer {
			cs, err := Summarize(cdnowTransactions(tb, 0), cdnowEnd, Week)
			if err != nil {
				tb.Fatal(err)
			}
			return cs
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fit, err := FitGammaGamma(context.Background(), tt.customers(t))
			if err != nil {
				t.Fatalf("FitGammaGamma: %v", err)
			}
			if fit.Customers != 946 || fit.Skipped != 0 {
				t.Errorf("customers: got %d (skipped %d), want 946 (0)", fit.Customers, fit.Skipped)
			}
			for _, p := range published {
				if p.name == "gamma" && tt.gammaTo != 0 {
					p.decimals, p.want = tt.gammaTo, p.want[:len(p.want)-(p.decimals-tt.gammaTo)]
				}
				if got := strconv.FormatFloat(p.get(fit), 'f', p.decimals, 64); got != p.want {
					t.Errorf("%s: got %s (%v), want %s", p.name, got, p.get(fit), p.want)
				}
			}
			t.Logf("%+v", fit)
		})
	}
}

func TestGammaGammaGradient(t *testing.T) {
	d, err := newGGData(cdnowSummaryList(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		params GammaGamma
	}{
		{"near the CDNOW optimum", GammaGamma{P: 6, Q: 4, Gamma: 15}},
		{"far off", GammaGamma{P: 0.3, Q: 0.8, Gamma: 400}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			theta := tt.params.theta()
			got := make([]float64, 3)
			d.eval(theta, got)
			for i := range theta {
				const h = 1e-6
				up, down := append([]float64(nil), theta...), append([]float64(nil), theta...)
				up[i] += h
				down[i] -= h
				want := (d.eval(up, nil) - d.eval(down, nil)) / (2 * h)
				if math.Abs(got[i]-want) > 1e-6*max(1, math.Abs(want)) {
					t.Errorf("d/dtheta[%d]: got %.10g, want %.10g", i, got[i], want)
				}
			}
		})
	}
}

func TestFitGammaGammaErrors(t *testing.T) {
	tests := []struct {
		name string
		cs   []Customer
		want error
	}{
		{"no customers", nil, ErrNoCustomers},
		{"all x = 0", []Customer{{X: 0, T: 10}, {X: 0, T: 3, Monetary: 0}}, ErrNoRepeatCustomers},
		{"only zero-value repeat purchases", []Customer{{X: 2, TX: 3, T: 10, Monetary: 0}}, ErrNoRepeatCustomers},
		{"NaN monetary", []Customer{{X: 1, TX: 1, T: 2, Monetary: math.NaN()}}, ErrInvalidCustomer},
		{"infinite monetary", []Customer{{X: 1, TX: 1, T: 2, Monetary: math.Inf(1)}}, ErrInvalidCustomer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fit, err := FitGammaGamma(context.Background(), tt.cs)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %+v, %v; want error %v", fit, err, tt.want)
			}
		})
	}
}

func TestExpectedSpend(t *testing.T) {
	g := GammaGamma{P: 6.25, Q: 3.74, Gamma: 15.44}
	tests := []struct {
		name    string
		g       GammaGamma
		c       Customer
		want    float64
		wantErr error
	}{
		// Population mean pγ/(q−1) = 6.25·15.44/2.74.
		{name: "no repeat purchase: population mean", g: g, c: Customer{X: 0, T: 10, Monetary: 99}, want: 6.25 * 15.44 / 2.74},
		{name: "one repeat: shrunk toward the mean", g: g, c: Customer{X: 1, TX: 1, T: 2, Monetary: 100}, want: 6.25 * (15.44 + 100) / (6.25 + 2.74)},
		{name: "many repeats: close to own mean", g: g, c: Customer{X: 1000, TX: 1, T: 2, Monetary: 100}, want: 6.25 * (15.44 + 100000) / (6250 + 2.74)},
		{name: "q at most 1, no repeat", g: GammaGamma{P: 1, Q: 0.9, Gamma: 10}, c: Customer{X: 0}, wantErr: ErrUndefinedSpend},
		{name: "invalid parameters", g: GammaGamma{P: 1, Q: math.NaN(), Gamma: 10}, c: Customer{X: 0}, wantErr: ErrInvalidParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.g.ExpectedSpend(tt.c)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if math.Abs(got-tt.want) > 1e-9*math.Abs(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
