package clv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkFit fits both models, with the covariance of their
// parameters, to simulated bases of CDNOW's full cohort (23,570) and of a
// million customers, and reports the recovered parameters and how many of
// their standard errors each lies from the truth (z_*) next to the time,
// so a regression in speed, accuracy or calibration shows in the same
// line. "days" summarises purchase times in whole days, as real ones are
// (rows sharing x, t_x and T are fitted once, which is most of the speed);
// "continuous" keeps the drawn times, the model's own assumption, and so
// a row per repeat customer.
//
//	go test -run '^$' -bench Fit -benchmem -benchtime 1x ./services/segmentation/clv
func BenchmarkFit(b *testing.B) {
	for _, size := range []int{23_570, 1_000_000} {
		for _, continuous := range []bool{false, true} {
			pop := population{
				bg:         BGNBD{R: 0.25, Alpha: 4, A: 0.8, B: 2.5},
				gg:         GammaGamma{P: 6, Q: 4, Gamma: 15},
				periodDays: 365,
				cohortDays: 84,
				continuous: continuous,
			}
			name := fmt.Sprintf("%d/days", size)
			if continuous {
				name = fmt.Sprintf("%d/continuous", size)
			}
			b.Run(name, func(b *testing.B) {
				cs := simulate(7, size, pop)
				var m *Model
				for b.Loop() {
					var err error
					if m, err = Fit(context.Background(), cs, Week, time.Time{}); err != nil {
						b.Fatal(err)
					}
				}
				for _, z := range zScores(b, m, pop) {
					b.ReportMetric(z.got, z.name)
					b.ReportMetric(z.z, "z_"+z.name)
				}
				b.Logf("true BG/NBD %+v, fitted %+v (%d iterations, %v); true Gamma-Gamma %+v, fitted %+v on %d repeat customers (%d iterations, %v)",
					pop.bg, m.BGNBD, m.BGNBDConvergence.Iterations, m.BGNBDConvergence.Runtime,
					pop.gg, m.GammaGamma, m.RepeatCustomers, m.GammaGammaConvergence.Iterations, m.GammaGammaConvergence.Runtime)
			})
		}
	}
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

// BenchmarkValue times valuing one customer as segmentation does, over a
// year in monthly steps: "point" as before intervals (ExpectedPurchases,
// ExpectedSpend, CLV), "interval" with Predict (the same values and the
// intervals on purchases and CLV).
//
//	go test -run '^$' -bench Value -benchmem ./services/segmentation/clv
func BenchmarkValue(b *testing.B) {
	m := cdnowModel(b)
	m.Unit = Day
	m.BGNBD.Alpha *= 7
	o := CLVOptions{Horizon: 365, AnnualDiscountRate: 0.1}
	customers := []Customer{
		{X: 0, T: 200},
		{X: 2, TX: 213, T: 272, Monetary: 30},
		{X: 12, TX: 260, T: 270, Monetary: 40},
	}
	b.Run("point", func(b *testing.B) {
		for b.Loop() {
			for _, c := range customers {
				if _, err := m.BGNBD.ExpectedPurchases(c, o.Horizon); err != nil {
					b.Fatal(err)
				}
				if _, err := m.GammaGamma.ExpectedSpend(c); err != nil {
					b.Fatal(err)
				}
				if _, err := m.CLV(c, o); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("interval", func(b *testing.B) {
		for b.Loop() {
			for _, c := range customers {
				if _, err := m.Predict(c, o); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkExpectedPurchases times one conditional expectation, the unit
// of work of valuing a customer (CLV calls it once per discounting step).
//
//	go test -run '^$' -bench ExpectedPurchases -benchmem ./services/segmentation/clv
func BenchmarkExpectedPurchases(b *testing.B) {
	cdnow := BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}
	benchmarks := []struct {
		name string
		p    BGNBD
		c    Customer
		t    float64
	}{
		{"CDNOW x=2 t=39", cdnow, Customer{X: 2, TX: 30.43, T: 38.86}, 39},
		{"CDNOW x=0 t=52", cdnow, Customer{X: 0, T: 20}, 52},
		{"CDNOW x=30 t=39", cdnow, Customer{X: 30, TX: 38, T: 39}, 39},
		{"a+b=1e3 x=2 t=39", BGNBD{R: 0.243, Alpha: 4.414, A: 250, B: 750}, Customer{X: 2, TX: 30.43, T: 38.86}, 39},
		{"a+b=1e6 x=2 t=39", BGNBD{R: 0.243, Alpha: 4.414, A: 2.5e5, B: 7.5e5}, Customer{X: 2, TX: 30.43, T: 38.86}, 39},
		{"days a+b=1e6 x=10 t=365", BGNBD{R: 0.8, Alpha: 60, A: 2e5, B: 8e5}, Customer{X: 10, TX: 300, T: 365}, 365},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			var e float64
			for b.Loop() {
				var err error
				if e, err = bm.p.ExpectedPurchases(bm.c, bm.t); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(e, "purchases")
		})
	}
}
