package clv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"testing"

	"gonum.org/v1/gonum/integrate/quad"
	"gonum.org/v1/gonum/mathext"
)

// published are the CDNOW estimates as printed, with the printed number of
// decimals.
var publishedBGNBD = []struct {
	name     string
	get      func(BGNBDFit) float64
	want     string
	decimals int
}{
	{"r", func(f BGNBDFit) float64 { return f.Params.R }, "0.243", 3},
	{"alpha", func(f BGNBDFit) float64 { return f.Params.Alpha }, "4.414", 3},
	{"a", func(f BGNBDFit) float64 { return f.Params.A }, "0.793", 3},
	{"b", func(f BGNBDFit) float64 { return f.Params.B }, "2.426", 3},
	{"log-likelihood", func(f BGNBDFit) float64 { return f.LogLikelihood }, "-9582.4", 1},
}

func checkPublishedBGNBD(t *testing.T, fit BGNBDFit) {
	t.Helper()
	for _, p := range publishedBGNBD {
		if got := strconv.FormatFloat(p.get(fit), 'f', p.decimals, 64); got != p.want {
			t.Errorf("%s: got %s (%v), want %s", p.name, got, p.get(fit), p.want)
		}
	}
}

func TestFitBGNBDCDNOW(t *testing.T) {
	tests := []struct {
		name      string
		customers func(testing.TB) []Customer
	}{
		{name: "published summary", customers: cdnowSummaryList},
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
			fit, err := FitBGNBD(context.Background(), tt.customers(t))
			if err != nil {
				t.Fatalf("FitBGNBD: %v", err)
			}
			if fit.Customers != 2357 {
				t.Errorf("customers: got %d, want 2357", fit.Customers)
			}
			checkPublishedBGNBD(t, fit)
			t.Logf("%+v", fit)
		})
	}
}

func TestBGNBDExpectedPurchasesCDNOW(t *testing.T) {
	fit, err := FitBGNBD(context.Background(), cdnowSummaryList(t))
	if err != nil {
		t.Fatal(err)
	}
	c := Customer{X: 2, TX: 30.43, T: 38.86}
	tests := []struct {
		name   string
		params BGNBD
	}{
		{name: "published parameters", params: BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}},
		{name: "fitted parameters", params: fit.Params},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.params.ExpectedPurchases(c, 39)
			if err != nil {
				t.Fatal(err)
			}
			if s := strconv.FormatFloat(got, 'f', 3, 64); s != "1.226" {
				t.Errorf("E[Y(39) | x=2, t_x=30.43, T=38.86]: got %s (%v), want 1.226", s, got)
			}
		})
	}
}

// TestBGNBDGradient compares the analytic gradient with central
// differences at points away from the optimum, where every term matters.
func TestBGNBDGradient(t *testing.T) {
	d, err := newBGData(cdnowSummaryList(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		params BGNBD
	}{
		{"near the CDNOW optimum", BGNBD{R: 0.25, Alpha: 4.4, A: 0.8, B: 2.4}},
		{"large r, small alpha", BGNBD{R: 5, Alpha: 0.3, A: 2, B: 0.5}},
		{"small a and b", BGNBD{R: 0.05, Alpha: 40, A: 0.05, B: 0.02}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			theta := tt.params.theta()
			got := make([]float64, 4)
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

// TestExpectedPurchasesDirect checks the series against the paper's
// formula evaluated with gonum's 2F1, where the latter is accurate
// (moderate x and a+b).
func TestExpectedPurchasesDirect(t *testing.T) {
	tests := []struct {
		name string
		p    BGNBD
		c    Customer
		t    float64
	}{
		{"CDNOW example", BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}, Customer{X: 2, TX: 30.43, T: 38.86}, 39},
		{"no repeat", BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}, Customer{X: 0, T: 20}, 10},
		{"frequent buyer, a above 1", BGNBD{R: 1.5, Alpha: 2, A: 3, B: 7}, Customer{X: 25, TX: 50, T: 52}, 26},
		{"short horizon", BGNBD{R: 0.5, Alpha: 10, A: 0.4, B: 1.2}, Customer{X: 4, TX: 10, T: 30}, 0.01},
		{"days, long horizon", BGNBD{R: 0.3, Alpha: 30, A: 0.9, B: 3}, Customer{X: 6, TX: 200, T: 300}, 730},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, c := tt.p, tt.c
			x := float64(c.X)
			z := tt.t / (p.Alpha + c.T + tt.t)
			f := mathext.Hypergeo(p.R+x, p.B+x, p.A+p.B+x-1, z)
			want := (p.A + p.B + x - 1) / (p.A - 1) * (1 - math.Pow((p.Alpha+c.T)/(p.Alpha+c.T+tt.t), p.R+x)*f)
			if c.X > 0 {
				want /= 1 + p.A/(p.B+x-1)*math.Pow((p.Alpha+c.T)/(p.Alpha+c.TX), p.R+x)
			}
			got, err := p.ExpectedPurchases(c, tt.t)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-want) > 1e-9*math.Abs(want) {
				t.Errorf("got %.15g, want %.15g", got, want)
			}
		})
	}
	t.Run("huge x stays finite and near the buying rate", func(t *testing.T) {
		p := BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}
		got, err := p.ExpectedPurchases(Customer{X: 100_000, TX: 39, T: 39}, 1)
		// About x/T purchases a week, a little less for the chance of
		// dropping out.
		if err != nil || !(got > 2000 && got < 100_000.0/39) {
			t.Errorf("got %v, %v; want between 2000 and %v", got, err, 100_000.0/39)
		}
	})
}

func TestBGNBDExpectations(t *testing.T) {
	p := BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}
	t.Run("new customer at t equals x=0 customer of age 0", func(t *testing.T) {
		got, err := p.ExpectedPurchases(Customer{X: 0, T: 0}, 52)
		if err != nil {
			t.Fatal(err)
		}
		want, err := p.ExpectedPurchasesNew(52)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("E[X(t)] grows with t", func(t *testing.T) {
		prev := 0.0
		for _, w := range []float64{1, 10, 39, 78, 200} {
			got, err := p.ExpectedPurchasesNew(w)
			if err != nil {
				t.Fatal(err)
			}
			if got <= prev {
				t.Errorf("E[X(%v)] = %v, not above E at the previous horizon %v", w, got, prev)
			}
			prev = got
		}
	})
	t.Run("a equal to one is smooth", func(t *testing.T) {
		q := p
		c := Customer{X: 3, TX: 20, T: 30}
		var vals []float64
		for _, a := range []float64{1 - 1e-3, 1, 1 + 1e-3} {
			q.A = a
			v, err := q.ExpectedPurchases(c, 10)
			if err != nil {
				t.Fatal(err)
			}
			vals = append(vals, v)
		}
		if math.IsNaN(vals[1]) || math.Abs(vals[1]-(vals[0]+vals[2])/2) > 1e-6 {
			t.Errorf("E around a = 1: got %v", vals)
		}
	})
	t.Run("P(alive)", func(t *testing.T) {
		tests := []struct {
			name string
			c    Customer
			want func(float64) bool
		}{
			{"no repeat purchase", Customer{X: 0, T: 30}, func(v float64) bool { return v == 1 }},
			// 1 / (1 + 0.793/6.426 · (34.414/33.414)^5.243), worked by hand.
			{"recent buyer", Customer{X: 5, TX: 29, T: 30}, func(v float64) bool { return strconv.FormatFloat(v, 'f', 4, 64) == "0.8741" }},
			{"long silent", Customer{X: 5, TX: 2, T: 30}, func(v float64) bool { return v < 0.2 }},
			{"huge x does not overflow", Customer{X: 100000, TX: 1, T: 30}, func(v float64) bool { return v == 0 }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := p.ProbAlive(tt.c); !tt.want(got) {
					t.Errorf("got %v", got)
				}
			})
		}
	})
}

func TestFitBGNBDErrors(t *testing.T) {
	tests := []struct {
		name string
		cs   []Customer
		want error
	}{
		{"no customers", nil, ErrNoCustomers},
		{"no repeat purchases", []Customer{{X: 0, T: 10}, {X: 0, T: 3}}, ErrNoRepeatCustomers},
		{"t_x beyond T", []Customer{{X: 1, TX: 11, T: 10}}, ErrInvalidCustomer},
		{"NaN T", []Customer{{X: 1, TX: 1, T: math.NaN()}}, ErrInvalidCustomer},
		{"negative x", []Customer{{X: -1, T: 1}}, ErrInvalidCustomer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FitBGNBD(context.Background(), tt.cs)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := FitBGNBD(ctx, cdnowSummaryList(t)); !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}

// constantDropout is the limit of ExpectedPurchases as a, b → ∞ with
// a/(a+b) = p: every customer drops out with probability p after each
// purchase, and only the purchase rate is uncertain (Gamma(r+x, α+T)
// given the history), so
//
//	E[Y(t) | alive] = E[(1 − e^{−λpt})/p] = (1 − (1 + p·t/(α+T))^{−(r+x)})/p
//	P(alive)        = 1 / (1 + p/(1−p) · ((α+T)/(α+t_x))^(r+x))   (x > 0)
func constantDropout(r, alpha, p float64, c Customer, t float64) float64 {
	s := r + float64(c.X)
	e := -math.Expm1(-s*math.Log1p(p*t/(alpha+c.T))) / p
	if c.X == 0 {
		return e
	}
	odds := math.Exp(math.Log(p/(1-p)) + s*(math.Log(alpha+c.T)-math.Log(alpha+c.TX)))
	return e / (1 + odds)
}

// TestExpectedPurchasesConcentratedDropout follows a and b to the millions
// at a fixed mean, where the fits of bases with hardly any spread in
// dropout end up and where 2F1 series in the closed form stop converging:
// the expectation must approach the constant-dropout limit, its distance
// shrinking like 1/(a+b).
func TestExpectedPurchasesConcentratedDropout(t *testing.T) {
	tests := []struct {
		name     string
		r, alpha float64
		p        float64
		c        Customer
		t        float64
	}{
		{"CDNOW-like repeat buyer", 0.243, 4.414, 0.25, Customer{X: 2, TX: 30.43, T: 38.86}, 39},
		{"no repeat purchase", 0.243, 4.414, 0.25, Customer{X: 0, T: 20}, 52},
		{"rare dropout, frequent buyer", 1.5, 30, 0.02, Customer{X: 40, TX: 350, T: 365}, 365},
		{"likely dropout, long horizon", 0.5, 10, 0.8, Customer{X: 3, TX: 20, T: 40}, 400},
		{"x of a thousand, ten times T", 2, 5, 0.1, Customer{X: 1000, TX: 52, T: 52}, 520},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := constantDropout(tt.r, tt.alpha, tt.p, tt.c, tt.t)
			prevErr := math.Inf(1)
			for _, ab := range []float64{1e4, 1e5, 1e6, 1e7} {
				q := BGNBD{R: tt.r, Alpha: tt.alpha, A: tt.p * ab, B: (1 - tt.p) * ab}
				got, err := q.ExpectedPurchases(tt.c, tt.t)
				if err != nil {
					t.Fatalf("a+b = %g: %v", ab, err)
				}
				relErr := math.Abs(got-want) / want
				t.Logf("a+b = %g: got %.12g, limit %.12g, relative distance %.3g", ab, got, want, relErr)
				// O(1/(a+b)) with a constant of a few x at most; a tenfold
				// a+b must cut the distance about tenfold until rounding.
				if relErr > 50*(float64(tt.c.X)+1)/ab {
					t.Errorf("a+b = %g: relative distance %.3g from the limit, want O(1/(a+b))", ab, relErr)
				}
				if relErr > 1e-12 && relErr > prevErr/5 {
					t.Errorf("a+b = %g: relative distance %.3g, not well below %.3g at a tenth of a+b", ab, relErr, prevErr)
				}
				prevErr = relErr
			}
		})
	}
}

// TestExpectedPurchasesIntegral checks the expectation against its
// definition as an integral over the posterior Beta(a, b+x) of the dropout
// probability, E = P(alive) · ∫ (1 − (1+p·t/(α+T))^{−(r+x)})/p dBeta(p),
// by Gauss-Legendre quadrature over the bulk of the Beta (a ≥ 2 and
// b+x ≥ 2 keep the density smooth).
func TestExpectedPurchasesIntegral(t *testing.T) {
	tests := []struct {
		name string
		p    BGNBD
		c    Customer
		t    float64
	}{
		{"moderate a and b", BGNBD{R: 0.243, Alpha: 4.414, A: 2, B: 2.4}, Customer{X: 2, TX: 30.43, T: 38.86}, 39},
		{"a+b of ten thousand", BGNBD{R: 2, Alpha: 10, A: 3e3, B: 7e3}, Customer{X: 5, TX: 40, T: 52}, 26},
		{"a+b of a million", BGNBD{R: 0.5, Alpha: 1, A: 3e5, B: 7e5}, Customer{X: 20, TX: 100, T: 120}, 1200},
		{"x of a thousand, ten times T", BGNBD{R: 1, Alpha: 50, A: 5e4, B: 9.5e5}, Customer{X: 1000, TX: 360, T: 365}, 3650},
		{"dropout almost never", BGNBD{R: 0.1, Alpha: 100, A: 2, B: 1e7}, Customer{X: 3, TX: 200, T: 300}, 3000},
		{"no repeat purchase", BGNBD{R: 3, Alpha: 0.5, A: 40, B: 9}, Customer{X: 0, T: 5}, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, c := tt.p, tt.c
			x := float64(c.X)
			s, tau := p.R+x, tt.t/(p.Alpha+c.T)
			bx := p.B + x
			m := p.A / (p.A + bx)
			// The density is normalised by the same quadrature rather than
			// by the Beta function: lnΓ of a million carries rounding
			// errors of 1e-9 relative to the result.
			density := func(q float64) float64 {
				if q <= 0 || q >= 1 {
					return 0
				}
				return math.Exp((p.A-1)*math.Log(q/m) + (bx-1)*math.Log((1-q)/(1-m)))
			}
			f := func(q float64) float64 {
				if q <= 0 || q >= 1 {
					return 0
				}
				return density(q) * -math.Expm1(-s*math.Log1p(q*tau)) / q
			}
			sd := math.Sqrt(m * (1 - m) / (p.A + bx + 1))
			lo, hi := max(0, m-40*sd), min(1, m+40*sd)
			want := quad.Fixed(f, lo, hi, 2000, quad.Legendre{}, 0) / quad.Fixed(density, lo, hi, 2000, quad.Legendre{}, 0)
			if c.X > 0 {
				want *= p.ProbAlive(c)
			}
			got, err := p.ExpectedPurchases(c, tt.t)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-want) > 1e-11*want {
				t.Errorf("got %.15g, want %.15g", got, want)
			}
		})
	}
}

// TestExpectedPurchasesExtreme sweeps parameters far beyond any fit seen
// so far: every expectation must be finite, non-negative, non-decreasing
// in t and between the bounds that hold whatever the dropout process,
//
//	P(alive) · (1 − (1−z)^(r+x)) ≤ E ≤ P(alive) · (r+x) · t/(α+T),
//
// the chance of at least one more purchase (the first one cannot be
// preceded by a dropout) and the purchases expected without dropout.
func TestExpectedPurchasesExtreme(t *testing.T) {
	abs := []float64{1e-3, 0.5, 1, 30, 1e4, 1e7}
	customers := []Customer{
		{X: 0, T: 40},
		{X: 0, T: 0},
		{X: 2, TX: 30, T: 39},
		{X: 50, TX: 10, T: 52},
		{X: 1000, TX: 52, T: 52},
	}
	horizons := []float64{0.01, 0.5, 1, 3, 10} // times T (times α when T = 0)
	for _, r := range []float64{1e-3, 0.25, 20, 1e4} {
		for _, alpha := range []float64{1e-2, 4, 1000, 1e6} {
			for _, a := range abs {
				for _, b := range abs {
					p := BGNBD{R: r, Alpha: alpha, A: a, B: b}
					for _, c := range customers {
						name := fmt.Sprintf("r=%g alpha=%g a=%g b=%g x=%d t_x=%g T=%g", r, alpha, a, b, c.X, c.TX, c.T)
						checkExtreme(t, name, p, c, horizons)
					}
				}
			}
		}
	}
}

func checkExtreme(tb testing.TB, name string, p BGNBD, c Customer, horizons []float64) {
	tb.Helper()
	unit := c.T
	if unit == 0 {
		unit = p.Alpha
	}
	alive := p.ProbAlive(c)
	s := p.R + float64(c.X)
	prev := 0.0
	for _, h := range horizons {
		t := h * unit
		got, err := p.ExpectedPurchases(c, t)
		if err != nil {
			tb.Errorf("%s, t=%g: %v", name, t, err)
			return
		}
		ln1z := -math.Log1p(t / (p.Alpha + c.T))
		lower := alive * -math.Expm1(s*ln1z)
		upper := alive * s * t / (p.Alpha + c.T)
		const tol = 1e-12
		switch {
		case math.IsNaN(got) || math.IsInf(got, 0) || got < 0:
			tb.Errorf("%s, t=%g: got %v", name, t, got)
		case got < lower*(1-tol) || got > upper*(1+tol):
			tb.Errorf("%s, t=%g: got %.15g, want between %.15g and %.15g", name, t, got, lower, upper)
		case got < prev*(1-tol):
			tb.Errorf("%s, t=%g: got %.15g, below %.15g at a shorter horizon", name, t, got, prev)
		}
		prev = got
	}
}

// TestExpectedPurchasesErrors: a horizon the series cannot cover in its
// term budget is an error, not a number.
func TestExpectedPurchasesErrors(t *testing.T) {
	p := BGNBD{R: 1, Alpha: 1e-3, A: 0.5, B: 2}
	if got, err := p.ExpectedPurchases(Customer{X: 0, T: 0}, 1e7); !errors.Is(err, errSeries) {
		t.Errorf("ten billion purchases expected without dropout: got %v, %v; want errSeries", got, err)
	}
	if got, err := p.ExpectedPurchasesNew(1e7); !errors.Is(err, errSeries) {
		t.Errorf("new customer, same horizon: got %v, %v; want errSeries", got, err)
	}
	if _, err := p.ExpectedPurchases(Customer{X: 1, TX: 1, T: 2}, math.Inf(1)); err == nil {
		t.Error("infinite horizon: no error")
	}
}
