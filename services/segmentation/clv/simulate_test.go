package clv

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// population describes a simulated customer base: first purchases spread
// evenly over the first cohortDays of a calibration period of periodDays,
// times in weeks.
type population struct {
	bg         BGNBD
	gg         GammaGamma
	periodDays int
	cohortDays int
}

// simulate draws n customers from the BG/NBD and Gamma-Gamma generative
// stories: λ ~ Gamma(r, α) and p ~ Beta(a, b) per customer, repeat
// purchases at Poisson rate λ, dropout with probability p after each;
// spend rate ν ~ Gamma(q, γ) and each repeat purchase's value ~ Gamma(p,
// ν). Like real summaries, T is a whole number of days and t_x is rounded
// down to the day.
func simulate(seed uint64, n int, pop population) []Customer {
	src := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	rng := rand.New(src)
	lambda := distuv.Gamma{Alpha: pop.bg.R, Beta: pop.bg.Alpha, Src: src}
	dropout := distuv.Beta{Alpha: pop.bg.A, Beta: pop.bg.B, Src: src}
	nu := distuv.Gamma{Alpha: pop.gg.Q, Beta: pop.gg.Gamma, Src: src}
	out := make([]Customer, n)
	for i := range out {
		first := rng.IntN(pop.cohortDays)
		T := float64(pop.periodDays-first) / 7
		l, p := lambda.Rand(), dropout.Rand()
		x, tx := 0, 0.0
		for t := 0.0; ; {
			t += rng.ExpFloat64() / l
			if t > T {
				break
			}
			x++
			tx = math.Floor(t*7) / 7
			if rng.Float64() < p {
				break
			}
		}
		c := Customer{X: x, TX: tx, T: T}
		if x > 0 {
			value := distuv.Gamma{Alpha: pop.gg.P, Beta: nu.Rand(), Src: src}
			var sum float64
			for range x {
				sum += value.Rand()
			}
			c.Monetary = sum / float64(x)
		}
		out[i] = c
	}
	return out
}

var testPopulation = population{
	bg:         BGNBD{R: 0.25, Alpha: 4, A: 0.8, B: 2.5},
	gg:         GammaGamma{P: 6, Q: 4, Gamma: 15},
	periodDays: 365,
	cohortDays: 84,
}

func TestFitRecoversParameters(t *testing.T) {
	if testing.Short() {
		t.Skip("fits 50,000 simulated customers")
	}
	cs := simulate(1, 50_000, testPopulation)
	m, err := Fit(context.Background(), cs, Week, testTime)
	if err != nil {
		t.Fatal(err)
	}
	// With 50,000 customers the standard errors are a few percent (a and
	// b, the loosest, about 6 %): 20 % is three of them, and a wrong
	// likelihood or gradient misses by far more.
	tests := []struct {
		name      string
		got, want float64
	}{
		{"r", m.BGNBD.R, testPopulation.bg.R},
		{"alpha", m.BGNBD.Alpha, testPopulation.bg.Alpha},
		{"a", m.BGNBD.A, testPopulation.bg.A},
		{"b", m.BGNBD.B, testPopulation.bg.B},
		{"p", m.GammaGamma.P, testPopulation.gg.P},
		{"q", m.GammaGamma.Q, testPopulation.gg.Q},
		{"gamma", m.GammaGamma.Gamma, testPopulation.gg.Gamma},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if math.Abs(tt.got/tt.want-1) > 0.2 {
				t.Errorf("got %.4g, want %.4g ± 20%%", tt.got, tt.want)
			}
		})
	}
	t.Logf("BG/NBD %+v, Gamma-Gamma %+v, %d repeat customers", m.BGNBD, m.GammaGamma, m.RepeatCustomers)
}

// TestExpectedPurchasesNewBySimulation checks E[X(t)] against the mean
// number of repeat purchases of customers simulated for exactly t weeks: an
// independent check of the closed form and its 2F1.
func TestExpectedPurchasesNewBySimulation(t *testing.T) {
	tests := []struct {
		name string
		bg   BGNBD
	}{
		{"CDNOW-like", BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}},
		{"frequent buyers, a above 1", BGNBD{R: 2, Alpha: 3, A: 1.5, B: 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 200_000
			cs := simulate(11, n, population{bg: tt.bg, gg: testPopulation.gg, periodDays: 364, cohortDays: 1})
			var sum, sumSq float64
			for _, c := range cs {
				sum += float64(c.X)
				sumSq += float64(c.X) * float64(c.X)
			}
			mean := sum / n
			se := math.Sqrt((sumSq/n - mean*mean) / n)
			want, err := tt.bg.ExpectedPurchasesNew(52)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(mean-want) > 4*se {
				t.Errorf("simulated mean %.4f ± %.4f, E[X(52)] = %.4f", mean, se, want)
			}
		})
	}
}
