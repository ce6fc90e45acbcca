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
	// continuous keeps purchase times as drawn; otherwise t_x is rounded
	// down to the day, as summaries of real purchase dates are.
	continuous bool
}

// simulate draws n customers from the BG/NBD and Gamma-Gamma generative
// stories: λ ~ Gamma(r, α) and p ~ Beta(a, b) per customer, repeat
// purchases at Poisson rate λ, dropout with probability p after each;
// spend rate ν ~ Gamma(q, γ) and each repeat purchase's value ~ Gamma(p,
// ν). T is a whole number of days; like real summaries, t_x is rounded
// down to the day unless pop.continuous.
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
			tx = t
			if !pop.continuous {
				tx = math.Floor(t*7) / 7
			}
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
	pop := testPopulation
	pop.continuous = true
	m, err := Fit(context.Background(), simulate(1, 50_000, pop), Week, testTime)
	if err != nil {
		t.Fatal(err)
	}
	// With 50,000 customers the standard errors are a few percent (a and
	// b, the loosest, about 6 %); a wrong likelihood, gradient or Hessian
	// misses by far more than the three allowed here. That each estimate
	// lands within two of them 95 % of the time is
	// TestStdErrorsCalibrated's to check: of seven estimates, one falls
	// outside two standard errors in a quarter of the fits by chance alone
	// (here q, at 2.0).
	for _, z := range zScores(t, m, pop) {
		if !(math.Abs(z.z) <= 3) {
			t.Errorf("%s: fitted %.4g ± %.3g, truth %.4g: %.1f standard errors off", z.name, z.got, z.se, z.truth, z.z)
		}
	}
	t.Logf("BG/NBD %+v, Gamma-Gamma %+v, %d repeat customers", m.BGNBD, m.GammaGamma, m.RepeatCustomers)
}

// TestStdErrorsCalibrated fits ten simulated bases of 20,000 customers
// and checks that the standard errors say what they claim: about 95 % of
// the estimates within two of them from the truth (at least 90 % of the
// 70 here), none beyond 3.5, and a root-mean-square deviation of about
// one standard error.
func TestStdErrorsCalibrated(t *testing.T) {
	if testing.Short() {
		t.Skip("fits ten bases of 20,000 simulated customers")
	}
	pop := testPopulation
	pop.continuous = true
	var n, within int
	var sumSq float64
	for seed := uint64(101); seed <= 110; seed++ {
		m, err := Fit(context.Background(), simulate(seed, 20_000, pop), Week, testTime)
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range zScores(t, m, pop) {
			n++
			sumSq += z.z * z.z
			if math.Abs(z.z) <= 2 {
				within++
			}
			if !(math.Abs(z.z) <= 3.5) {
				t.Errorf("seed %d, %s: fitted %.4g ± %.3g, truth %.4g: %.1f standard errors off", seed, z.name, z.got, z.se, z.truth, z.z)
			}
		}
	}
	rms := math.Sqrt(sumSq / float64(n))
	if float64(within) < 0.9*float64(n) || rms < 0.7 || rms > 1.3 {
		t.Errorf("%d of %d estimates within two standard errors, root-mean-square deviation %.2f standard errors; want at least 90 %% and 0.7–1.3", within, n, rms)
	}
	t.Logf("%d of %d estimates within two standard errors; root-mean-square deviation %.2f", within, n, rms)
}

type zScore struct {
	name              string
	got, se, truth, z float64
}

// zScores are the deviations of the fitted parameters from the
// population's, in standard errors.
func zScores(tb testing.TB, m *Model, pop population) []zScore {
	tb.Helper()
	bgSE, ok := m.BGNBDStdErrors()
	if !ok {
		tb.Fatal("no BG/NBD standard errors")
	}
	ggSE, ok := m.GammaGammaStdErrors()
	if !ok {
		tb.Fatal("no Gamma-Gamma standard errors")
	}
	out := []zScore{
		{"r", m.BGNBD.R, bgSE.R, pop.bg.R, 0},
		{"alpha", m.BGNBD.Alpha, bgSE.Alpha, pop.bg.Alpha, 0},
		{"a", m.BGNBD.A, bgSE.A, pop.bg.A, 0},
		{"b", m.BGNBD.B, bgSE.B, pop.bg.B, 0},
		{"p", m.GammaGamma.P, ggSE.P, pop.gg.P, 0},
		{"q", m.GammaGamma.Q, ggSE.Q, pop.gg.Q, 0},
		{"gamma", m.GammaGamma.Gamma, ggSE.Gamma, pop.gg.Gamma, 0},
	}
	for i := range out {
		out[i].z = (out[i].got - out[i].truth) / out[i].se
	}
	return out
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
