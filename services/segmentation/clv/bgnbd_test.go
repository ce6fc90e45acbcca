package clv

import (
	"context"
	"errors"
	"math"
	"strconv"
	"testing"

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

// TestExpectedPurchasesDirect checks the Euler-transformed form against
// the paper's formula evaluated with gonum's 2F1, where the latter is
// accurate (moderate x).
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

func TestHyp2F1(t *testing.T) {
	tests := []struct {
		name       string
		a, b, c, z float64
	}{
		{"CDNOW conditional expectation", 2.243, 4.426, 4.219, 39.0 / 82.274},
		{"z near 1", 0.5, 1.5, 2.5, 0.99},
		{"c - a - b negative", 3.2, 4.1, 1.3, 0.8},
		{"negative c", 0.7, 1.2, -0.5, 0.3},
		{"z zero", 1, 1, 1, 0},
		{"terminating series", -3, 2, 1.5, 0.6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hyp2f1(tt.a, tt.b, tt.c, tt.z)
			if err != nil {
				t.Fatal(err)
			}
			want := mathext.Hypergeo(tt.a, tt.b, tt.c, tt.z)
			if math.Abs(got-want) > 1e-11*math.Abs(want) {
				t.Errorf("2F1(%v, %v; %v; %v): got %.15g, want %.15g", tt.a, tt.b, tt.c, tt.z, got, want)
			}
		})
	}
	if _, err := hyp2f1(1, 1, 1, 1); !errors.Is(err, errHypergeometric) {
		t.Errorf("z = 1: got %v, want errHypergeometric", err)
	}
	if _, err := hyp2f1(1, 1, -2, 0.5); !errors.Is(err, errHypergeometric) {
		t.Errorf("c = -2: got %v, want errHypergeometric", err)
	}
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
