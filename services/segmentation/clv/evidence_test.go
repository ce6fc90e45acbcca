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
	tests := []struct {
		name string
		cs   []Customer
		want error // nil: a finite fit, or a fit that says it failed
	}{
		{"no repeat buyers", oneTime, ErrNoRepeatCustomers},
		{"a single one-time buyer", []Customer{{T: 2}}, ErrNotEnoughHistory},
		{"few repeat buyers", repeat(10, 30, func(i int) float64 { return float64(20 + i) }), ErrNotEnoughHistory},
		{"history too short", repeat(200, 10, func(i int) float64 { return float64(20 + i%50) }), ErrNotEnoughHistory},
		{"one spend value", oneSpend, nil},
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
				t.Logf("refused: %v", err)
				return
			}
			v, err := m.CLV(Customer{X: 0, T: 10}, CLVOptions{Horizon: 52})
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("CLV of a newcomer %v, %v", v, err)
			}
			t.Logf("BG/NBD %+v, Gamma-Gamma %+v", m.BGNBD, m.GammaGamma)
		})
	}
}
