package clv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
)

// TestFitSmallShops fits shops of 5, 50 and 500 customers drawn from known
// parameters: the small ones are refused with ErrNotEnoughHistory, the
// large one is valued near the truth.
func TestFitSmallShops(t *testing.T) {
	truth := &Model{Unit: Week, BGNBD: testPopulation.bg, GammaGamma: testPopulation.gg}
	newcomer := Customer{ID: "new", X: 0, T: 30}
	opts := CLVOptions{Horizon: 52}
	want, err := truth.CLV(newcomer, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{5, 50, 500} {
		for seed := uint64(1); seed <= 5; seed++ {
			t.Run(fmt.Sprintf("%d customers, seed %d", n, seed), func(t *testing.T) {
				m, err := Fit(context.Background(), simulate(seed, n, testPopulation), Week, testTime)
				if n < 500 {
					if !errors.Is(err, ErrNotEnoughHistory) || m != nil {
						t.Fatalf("got %+v, %v; want ErrNotEnoughHistory", m, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got, err := m.CLV(newcomer, opts)
				// The simulations behind MinRepeatCustomers put 500
				// customers (about 230 repeat) within 0.75–1.1 of the truth.
				if err != nil || !(got > 0.6*want && got < 1.5*want) {
					t.Errorf("one-time buyer's CLV %.4g, %v; want %.4g within 0.6–1.5×", got, err, want)
				}
			})
		}
	}
}

// TestFitDegenerate fits bases no model can learn from, or only barely:
// each must end in an error or in finite parameters, never a panic or NaN.
func TestFitDegenerate(t *testing.T) {
	// Customers with one to three repeat purchases over t weeks.
	repeat := func(n int, t float64, monetary func(i int) float64) []Customer {
		cs := make([]Customer, n)
		for i := range cs {
			cs[i] = Customer{X: 1 + i%3, TX: float64(i % int(t)), T: t, Monetary: monetary(i)}
		}
		return cs
	}
	oneTime := make([]Customer, 500)
	for i := range oneTime {
		oneTime[i] = Customer{T: float64(1 + i%40)}
	}
	oneSpend := simulate(1, 500, testPopulation)
	for i := range oneSpend {
		if oneSpend[i].X > 0 {
			oneSpend[i].Monetary = 60
		}
	}
	twoSpends := simulate(1, 500, testPopulation)
	for i := range twoSpends {
		if twoSpends[i].X > 0 {
			twoSpends[i].Monetary = float64(40 + 40*(i%2))
		}
	}
	tests := []struct {
		name string
		cs   []Customer
		want error // nil: a finite fit
	}{
		{"no repeat buyers", oneTime, ErrNoRepeatCustomers},
		{"a single one-time buyer", []Customer{{T: 2}}, ErrNotEnoughHistory},
		{"few repeat buyers", repeat(10, 30, func(i int) float64 { return float64(20 + i) }), ErrNotEnoughHistory},
		{"history too short", repeat(200, 10, func(i int) float64 { return float64(20 + i%50) }), ErrNotEnoughHistory},
		// Every order worth the same: the Gamma-Gamma likelihood grows
		// without bound as p and q do (no spread at all), faster than a
		// prior worth one customer holds it (it takes about ten times
		// that): the fit must say it failed, and Refit keeps the previous
		// model with a warning.
		{"one spend value", oneSpend, ErrNotConverged},
		{"two spend values", twoSpends, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Fit(context.Background(), tt.cs, Week, testTime)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || m != nil {
					t.Fatalf("got %+v, %v; want %v", m, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, err := m.CLV(Customer{X: 0, T: 10}, CLVOptions{Horizon: 52})
			if err != nil || !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("CLV of a newcomer %v, %v", v, err)
			}
			spend, err := m.GammaGamma.ExpectedSpend(Customer{X: 3, TX: 20, T: 30, Monetary: 60})
			if err != nil || !(spend > 40 && spend < 80) {
				t.Errorf("expected spend of a 60 EUR repeat customer %v, %v; want between the two values", spend, err)
			}
			t.Logf("BG/NBD %+v, Gamma-Gamma %+v", m.BGNBD, m.GammaGamma)
		})
	}
}

// TestPenalty checks the rule: small fits penalised, large ones plain
// maximum likelihood, and the penalty pulls toward the starting point.
func TestPenalty(t *testing.T) {
	ctx := context.Background()
	small, err := Fit(ctx, simulate(1, 200, testPopulation), Week, testTime)
	if err != nil {
		t.Fatal(err)
	}
	if small.BGNBDPenalty != 1.0/200 || small.GammaGammaPenalty != 1/float64(small.RepeatCustomers) {
		t.Errorf("200 customers: penalties %g, %g; want 1/200, 1/%d", small.BGNBDPenalty, small.GammaGammaPenalty, small.RepeatCustomers)
	}
	large, err := Fit(ctx, simulate(1, 2000, testPopulation), Week, testTime)
	if err != nil {
		t.Fatal(err)
	}
	if large.BGNBDPenalty != 0 || large.GammaGammaPenalty != 0 {
		t.Errorf("2000 customers (%d repeat): penalties %g, %g; want none", large.RepeatCustomers, large.BGNBDPenalty, large.GammaGammaPenalty)
	}
	cs := simulate(2, 100, testPopulation)
	plain, err := FitBGNBD(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	heavy, err := FitBGNBDPenalized(ctx, cs, 100)
	if err != nil {
		t.Fatal(err)
	}
	// A penalty a hundred times the likelihood leaves r near its centre, 1.
	if math.Abs(math.Log(heavy.Params.R)) > 0.05 || heavy.LogLikelihood > plain.LogLikelihood {
		t.Errorf("heavy penalty: r %g (plain %g), log-likelihood %g (plain %g)", heavy.Params.R, plain.Params.R, heavy.LogLikelihood, plain.LogLikelihood)
	}
	for _, bad := range []float64{-1, math.Inf(1), math.NaN()} {
		if _, err := FitGammaGammaPenalized(ctx, cs, bad); !errors.Is(err, ErrBadPenalty) {
			t.Errorf("penalty %v: %v", bad, err)
		}
	}
}
