package clv

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distmv"
)

var gradCases = []struct {
	name string
	p    BGNBD
	c    Customer
	t    float64
}{
	{"CDNOW x=0", BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}, Customer{X: 0, T: 20}, 52},
	{"CDNOW x=2", BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}, Customer{X: 2, TX: 30.43, T: 38.86}, 39},
	{"CDNOW x=30", BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}, Customer{X: 30, TX: 38, T: 39}, 39},
	{"a above 1, long idle", BGNBD{R: 2, Alpha: 3, A: 1.5, B: 6}, Customer{X: 4, TX: 5, T: 40}, 10},
	{"a+b=1e3", BGNBD{R: 0.243, Alpha: 4.414, A: 250, B: 750}, Customer{X: 2, TX: 30.43, T: 38.86}, 39},
	{"days", BGNBD{R: 0.8, Alpha: 60, A: 0.5, B: 3}, Customer{X: 10, TX: 300, T: 365}, 365},
}

// TestExpectedPurchasesGrad checks the gradient summed with the series
// against central differences of ExpectedPurchases itself, and its value
// against ExpectedPurchases.
func TestExpectedPurchasesGrad(t *testing.T) {
	for _, tt := range gradCases {
		t.Run(tt.name, func(t *testing.T) {
			e, grad, err := tt.p.expectedPurchasesGrad(tt.c, tt.t)
			if err != nil {
				t.Fatal(err)
			}
			want, err := tt.p.ExpectedPurchases(tt.c, tt.t)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(e/want-1) > 1e-13 {
				t.Errorf("value: got %.16g, want %.16g", e, want)
			}
			theta := tt.p.theta()
			const h = 1e-5
			for i := range theta {
				at := func(d float64) float64 {
					th := slices.Clone(theta)
					th[i] += d
					v := expAll(th)
					y, err := BGNBD{R: v[0], Alpha: v[1], A: v[2], B: v[3]}.ExpectedPurchases(tt.c, tt.t)
					if err != nil {
						t.Fatal(err)
					}
					return y
				}
				num := (at(h) - at(-h)) / (2 * h)
				if math.Abs(grad[i]-num) > 1e-6*max(math.Abs(num), e) {
					t.Errorf("d/dθ%d: got %.10g, central difference %.10g", i, grad[i], num)
				}
			}
		})
	}
}

// hessianByValues is the Hessian of the total log-likelihood ll at theta
// by second differences of its values alone: a route independent of the
// analytic gradients that covariance differentiates.
func hessianByValues(ll func(theta []float64) float64, theta []float64) *mat.SymDense {
	const h = 1e-3
	k := len(theta)
	at := func(di, dj int, si, sj float64) float64 {
		th := slices.Clone(theta)
		th[di] += si * h
		th[dj] += sj * h
		return ll(th)
	}
	hs := mat.NewSymDense(k, nil)
	for i := range k {
		for j := i; j < k; j++ {
			v := (at(i, j, 1, 1) - at(i, j, 1, -1) - at(i, j, -1, 1) + at(i, j, -1, -1)) / (4 * h * h)
			hs.SetSym(i, j, -v)
		}
	}
	return hs
}

func seFromHessian(tb testing.TB, hs *mat.SymDense, params []float64) []float64 {
	tb.Helper()
	var chol mat.Cholesky
	if !chol.Factorize(hs) {
		tb.Fatal("Hessian not positive definite")
	}
	var inv mat.SymDense
	if err := chol.InverseTo(&inv); err != nil {
		tb.Fatal(err)
	}
	out := make([]float64, len(params))
	for i, p := range params {
		out[i] = p * math.Sqrt(inv.At(i, i))
	}
	return out
}

// TestStdErrorsCDNOW checks the standard errors of the CDNOW fits two
// ways: against a Hessian of the likelihood's values taken here, and, for
// BG/NBD, against an independent R implementation of the same maximum
// likelihood fit (M. Platzer's model comparison on CDNOW, bbmle's
// summary: r 0.012557, α 0.378230, a 0.185721, b 0.705332). Numerical
// Hessians agree to a few parts in a thousand, so 1 % is the test.
func TestStdErrorsCDNOW(t *testing.T) {
	m := cdnowModel(t)
	cs := cdnowSummaryList(t)
	bgSE, ok := m.BGNBDStdErrors()
	if !ok {
		t.Fatal("no BG/NBD standard errors")
	}
	ggSE, ok := m.GammaGammaStdErrors()
	if !ok {
		t.Fatal("no Gamma-Gamma standard errors")
	}
	bgLL := func(th []float64) float64 {
		v := expAll(th)
		ll, err := BGNBD{R: v[0], Alpha: v[1], A: v[2], B: v[3]}.LogLikelihood(cs)
		if err != nil {
			t.Fatal(err)
		}
		return ll
	}
	ggLL := func(th []float64) float64 {
		v := expAll(th)
		ll, err := GammaGamma{P: v[0], Q: v[1], Gamma: v[2]}.LogLikelihood(cs)
		if err != nil {
			t.Fatal(err)
		}
		return ll
	}
	bgWant := seFromHessian(t, hessianByValues(bgLL, m.BGNBD.theta()), []float64{m.BGNBD.R, m.BGNBD.Alpha, m.BGNBD.A, m.BGNBD.B})
	ggWant := seFromHessian(t, hessianByValues(ggLL, m.GammaGamma.theta()), []float64{m.GammaGamma.P, m.GammaGamma.Q, m.GammaGamma.Gamma})
	tests := []struct {
		name      string
		got, want float64
	}{
		{"r", bgSE.R, bgWant[0]},
		{"alpha", bgSE.Alpha, bgWant[1]},
		{"a", bgSE.A, bgWant[2]},
		{"b", bgSE.B, bgWant[3]},
		{"r (R)", bgSE.R, 0.012557},
		{"alpha (R)", bgSE.Alpha, 0.378230},
		{"a (R)", bgSE.A, 0.185721},
		{"b (R)", bgSE.B, 0.705332},
		{"p", ggSE.P, ggWant[0]},
		{"q", ggSE.Q, ggWant[1]},
		{"gamma", ggSE.Gamma, ggWant[2]},
	}
	for _, tt := range tests {
		if math.Abs(tt.got/tt.want-1) > 0.01 {
			t.Errorf("se(%s): got %.6g, want %.6g ± 1%%", tt.name, tt.got, tt.want)
		}
	}
	t.Logf("BG/NBD %+v ± %+v; Gamma-Gamma %+v ± %+v", m.BGNBD, bgSE, m.GammaGamma, ggSE)
}

// TestPredictMatchesParts checks that Predict's point values are those of
// the methods it stands for.
func TestPredictMatchesParts(t *testing.T) {
	m := cdnowModel(t)
	o := CLVOptions{Horizon: 52, AnnualDiscountRate: 0.1}
	for _, c := range cdnowSummaryList(t)[:300] {
		p, err := m.Predict(c, o)
		if err != nil {
			t.Fatal(err)
		}
		purchases, _ := m.BGNBD.ExpectedPurchases(c, o.Horizon)
		spend, _ := m.GammaGamma.ExpectedSpend(c)
		value, err := m.CLV(c, o)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(p.Purchases/purchases-1) > 1e-13 || p.OrderValue != spend || math.Abs(p.CLV/value-1) > 1e-13 || p.PAlive != m.BGNBD.ProbAlive(c) {
			t.Fatalf("customer %s: got %+v, want purchases %v, order value %v, CLV %v", c.ID, p, purchases, spend, value)
		}
		if !p.Interval || !(p.PurchasesLow < p.Purchases && p.Purchases < p.PurchasesHigh) || !(p.CLVLow < p.CLV && p.CLV < p.CLVHigh) {
			t.Fatalf("customer %s: interval %+v does not surround the prediction", c.ID, p)
		}
	}
	bare := *m
	bare.BGNBDCovariance = nil
	p, err := bare.Predict(cdnowSummaryList(t)[0], o)
	if err != nil || p.Interval || p.CLVLow != 0 {
		t.Errorf("without covariance: got %+v, %v; want no interval", p, err)
	}
}

// TestPredictIntervalByDraws compares Predict's delta-method intervals
// with the 10th and 90th percentiles of the predictions themselves over
// 2,000 draws of the parameters from their asymptotic normal distribution
// (seeded): the two must agree to within a tenth of the interval's width.
func TestPredictIntervalByDraws(t *testing.T) {
	m := cdnowModel(t)
	o := CLVOptions{Horizon: 52, AnnualDiscountRate: 0.1}
	src := rand.NewPCG(5, 6)
	draws := func(mean []float64, cov [][]float64) [][]float64 {
		k := len(mean)
		sym := mat.NewSymDense(k, nil)
		for i := range k {
			for j := i; j < k; j++ {
				sym.SetSym(i, j, cov[i][j])
			}
		}
		n, ok := distmv.NewNormal(mean, sym, src)
		if !ok {
			t.Fatal("covariance not positive definite")
		}
		out := make([][]float64, 2000)
		for i := range out {
			out[i] = expAll(n.Rand(nil))
		}
		return out
	}
	bgDraws, ggDraws := draws(m.BGNBD.theta(), m.BGNBDCovariance), draws(m.GammaGamma.theta(), m.GammaGammaCovariance)
	customers := []Customer{
		{ID: "one-time", X: 0, T: 30},
		{ID: "x=2", X: 2, TX: 30.43, T: 38.86},
		{ID: "lapsed", X: 3, TX: 10, T: 38},
		{ID: "frequent", X: 12, TX: 37, T: 38.5, Monetary: 40},
	}
	for _, c := range customers {
		if c.X > 0 && c.Monetary == 0 {
			c.Monetary = 30
		}
		t.Run(c.ID, func(t *testing.T) {
			p, err := m.Predict(c, o)
			if err != nil || !p.Interval {
				t.Fatalf("got %+v, %v", p, err)
			}
			var ys, vs []float64
			for i := range bgDraws {
				d := *m
				b, g := bgDraws[i], ggDraws[i]
				d.BGNBD, d.GammaGamma = BGNBD{R: b[0], Alpha: b[1], A: b[2], B: b[3]}, GammaGamma{P: g[0], Q: g[1], Gamma: g[2]}
				y, err := d.BGNBD.ExpectedPurchases(c, o.Horizon)
				if err != nil {
					t.Fatal(err)
				}
				v, err := d.CLV(c, o)
				if err != nil {
					t.Fatal(err)
				}
				ys, vs = append(ys, y), append(vs, v)
			}
			slices.Sort(ys)
			slices.Sort(vs)
			pct := func(s []float64, q float64) float64 { return s[int(q*float64(len(s)))] }
			check := func(name string, lo, hi float64, s []float64) {
				wlo, whi := pct(s, 0.1), pct(s, 0.9)
				if tol := 0.1 * (whi - wlo); math.Abs(lo-wlo) > tol || math.Abs(hi-whi) > tol {
					t.Errorf("%s: delta method %.4g–%.4g, draws %.4g–%.4g", name, lo, hi, wlo, whi)
				}
			}
			check("purchases", p.PurchasesLow, p.PurchasesHigh, ys)
			check("CLV", p.CLVLow, p.CLVHigh, vs)
			t.Logf("purchases %.3f (%.3f–%.3f), CLV %.2f (%.2f–%.2f); draws %.3f–%.3f, %.2f–%.2f",
				p.Purchases, p.PurchasesLow, p.PurchasesHigh, p.CLV, p.CLVLow, p.CLVHigh, pct(ys, 0.1), pct(ys, 0.9), pct(vs, 0.1), pct(vs, 0.9))
		})
	}
}

// TestFitCovarianceSmallShop: a penalised small fit has standard errors
// too, from the penalised likelihood's curvature.
func TestFitCovarianceSmallShop(t *testing.T) {
	m, err := Fit(context.Background(), simulate(4, 150, testPopulation), Week, testTime)
	if err != nil {
		t.Fatal(err)
	}
	if m.BGNBDPenalty == 0 {
		t.Fatal("expected a penalised fit")
	}
	if _, ok := m.BGNBDStdErrors(); !ok {
		t.Error("no BG/NBD standard errors")
	}
	if _, ok := m.GammaGammaStdErrors(); !ok {
		t.Error("no Gamma-Gamma standard errors")
	}
}
