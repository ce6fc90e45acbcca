package clv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkFit1M fits both models to a million simulated customers, a
// large seller's base, and reports the recovered parameters next to the
// time so a regression in speed or in accuracy shows in the same line.
//
//	go test -run '^$' -bench Fit1M -benchmem -benchtime 1x ./services/segmentation/clv
func BenchmarkFit1M(b *testing.B) {
	pop := population{
		bg:         BGNBD{R: 0.25, Alpha: 4, A: 0.8, B: 2.5},
		gg:         GammaGamma{P: 6, Q: 4, Gamma: 15},
		periodDays: 365,
		cohortDays: 84,
	}
	cs := simulate(7, 1_000_000, pop)
	var m *Model
	for b.Loop() {
		var err error
		if m, err = Fit(context.Background(), cs, Week, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(m.BGNBD.R, "r")
	b.ReportMetric(m.BGNBD.Alpha, "alpha")
	b.ReportMetric(m.BGNBD.A, "a")
	b.ReportMetric(m.BGNBD.B, "b")
	b.ReportMetric(m.GammaGamma.P, "p")
	b.ReportMetric(m.GammaGamma.Q, "q")
	b.ReportMetric(m.GammaGamma.Gamma, "gamma")
	b.Logf("true BG/NBD %+v, fitted %+v (%d iterations, %v); true Gamma-Gamma %+v, fitted %+v on %d repeat customers (%d iterations, %v)",
		pop.bg, m.BGNBD, m.BGNBDConvergence.Iterations, m.BGNBDConvergence.Runtime,
		pop.gg, m.GammaGamma, m.RepeatCustomers, m.GammaGammaConvergence.Iterations, m.GammaGammaConvergence.Runtime)
}

// BenchmarkSummarize3M builds the summaries of a million customers from
// three million transactions over a year, in random order.
func BenchmarkSummarize3M(b *testing.B) {
	const customers, txs = 1_000_000, 3_000_000
	rng := rand.New(rand.NewPCG(3, 4))
	ids := make([]string, customers)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%07d", i)
	}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	in := make([]Transaction, txs)
	for i := range in {
		in[i] = Transaction{
			CustomerID: ids[rng.IntN(customers)],
			Date:       start.Add(time.Duration(rng.IntN(365*24*60)) * time.Minute),
			Amount:     float64(rng.IntN(20000)) / 100,
		}
	}
	end := start.AddDate(1, 0, -1)
	var n int
	for b.Loop() {
		cs, err := Summarize(in, end, Week)
		if err != nil {
			b.Fatal(err)
		}
		n = len(cs)
	}
	b.ReportMetric(float64(n), "customers")
}
