package clv

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"
)

var testTime = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func cdnowModel(tb testing.TB) *Model {
	tb.Helper()
	cs, err := Summarize(cdnowTransactions(tb, 0), cdnowEnd, Week)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := Fit(context.Background(), cs, Week, testTime)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestFitCDNOW(t *testing.T) {
	m := cdnowModel(t)
	if m.Customers != 2357 || m.RepeatCustomers != 946 || m.ZeroValueRepeatCustomers != 0 {
		t.Errorf("customers: got %d, %d repeat, %d zero-value; want 2357, 946, 0", m.Customers, m.RepeatCustomers, m.ZeroValueRepeatCustomers)
	}
	if m.Unit != Week || !m.FittedAt.Equal(testTime) {
		t.Errorf("got unit %v fitted at %v, want week at %v", m.Unit, m.FittedAt, testTime)
	}
	checkPublishedBGNBD(t, BGNBDFit{Params: m.BGNBD, LogLikelihood: m.BGNBDLogLikelihood})

	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back Model
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	if back.BGNBD != m.BGNBD || back.GammaGamma != m.GammaGamma || back.Unit != Week {
		t.Errorf("JSON round trip: got %+v, want %+v", back, *m)
	}
}

func TestFitErrors(t *testing.T) {
	tests := []struct {
		name string
		cs   []Customer
		unit Unit
		want error
	}{
		{"empty", nil, Week, ErrNoCustomers},
		{"all x = 0", []Customer{{X: 0, T: 5}, {X: 0, T: 9}}, Week, ErrNoRepeatCustomers},
		{"repeat purchases all free", []Customer{{X: 1, TX: 1, T: 5}, {X: 0, T: 9}}, Week, ErrNoRepeatCustomers},
		{"bad unit", []Customer{{X: 1, TX: 1, T: 5, Monetary: 1}}, Unit(0), ErrBadUnit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Fit(context.Background(), tt.cs, tt.unit, testTime)
			if !errors.Is(err, tt.want) || m != nil {
				t.Errorf("got %+v, %v; want error %v", m, err, tt.want)
			}
		})
	}
}

// TestFitExtremeValues adds customers at the edges of what summaries can
// hold to a real base: the fit must end finite or say it failed, never
// hand back NaN or Inf.
func TestFitExtremeValues(t *testing.T) {
	base := cdnowSummaryList(t)
	tests := []struct {
		name  string
		extra []Customer
	}{
		{"customer of age zero", []Customer{{X: 0, T: 0}}},
		{"huge frequency", []Customer{{X: 100_000, TX: 38, T: 39, Monetary: 20}}},
		{"very old customers", []Customer{{X: 3, TX: 1e5, T: 1e6, Monetary: 5}, {X: 0, T: 1e7}}},
		{"tiny and huge spend", []Customer{{X: 1, TX: 1, T: 2, Monetary: 1e-9}, {X: 2, TX: 1, T: 2, Monetary: 1e12}}},
		{"t_x equal to T", []Customer{{X: 4, TX: 39, T: 39, Monetary: 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := append(append([]Customer(nil), base...), tt.extra...)
			m, err := Fit(context.Background(), cs, Week, testTime)
			if err != nil {
				if !errors.Is(err, ErrNotConverged) {
					t.Fatalf("got error %v, want a fit or ErrNotConverged", err)
				}
				return
			}
			for name, v := range map[string]float64{
				"r": m.BGNBD.R, "alpha": m.BGNBD.Alpha, "a": m.BGNBD.A, "b": m.BGNBD.B, "ll": m.BGNBDLogLikelihood,
				"p": m.GammaGamma.P, "q": m.GammaGamma.Q, "gamma": m.GammaGamma.Gamma, "gg ll": m.GammaGammaLogLikelihood,
			} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("%s = %v", name, v)
				}
			}
			for _, c := range tt.extra {
				v, err := m.CLV(c, CLVOptions{Horizon: 52, AnnualDiscountRate: 0.1})
				if err != nil {
					t.Errorf("CLV(%+v): %v", c, err)
				} else if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Errorf("CLV(%+v) = %v", c, v)
				}
			}
		})
	}
}

func TestCLV(t *testing.T) {
	m := cdnowModel(t)
	c := Customer{X: 2, TX: 30.43, T: 38.86, Monetary: 22.35}
	spend, err := m.GammaGamma.ExpectedSpend(c)
	if err != nil {
		t.Fatal(err)
	}
	purchases, err := m.BGNBD.ExpectedPurchases(c, 52)
	if err != nil {
		t.Fatal(err)
	}
	clv := func(o CLVOptions) float64 {
		t.Helper()
		v, err := m.CLV(c, o)
		if err != nil {
			t.Fatalf("CLV(%+v): %v", o, err)
		}
		return v
	}
	t.Run("undiscounted is expected purchases times expected spend, whatever the step", func(t *testing.T) {
		want := purchases * spend
		for _, step := range []float64{0, 1, 5, 52, 100} {
			if got := clv(CLVOptions{Horizon: 52, Step: step}); math.Abs(got-want) > 1e-9*want {
				t.Errorf("step %v: got %v, want %v", step, got, want)
			}
		}
	})
	t.Run("one step discounts everything by a year", func(t *testing.T) {
		// 52 weeks = 364 days of 365.25.
		want := purchases * spend / math.Pow(1.1, 364/365.25)
		if got := clv(CLVOptions{Horizon: 52, Step: 52, AnnualDiscountRate: 0.1}); math.Abs(got-want) > 1e-9*want {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("monthly steps lie between no discount and discounting all at the end", func(t *testing.T) {
		undiscounted := clv(CLVOptions{Horizon: 52})
		monthly := clv(CLVOptions{Horizon: 52, AnnualDiscountRate: 0.1})
		atEnd := clv(CLVOptions{Horizon: 52, Step: 52, AnnualDiscountRate: 0.1})
		if !(atEnd < monthly && monthly < undiscounted) {
			t.Errorf("got at end %v, monthly %v, undiscounted %v; want increasing", atEnd, monthly, undiscounted)
		}
	})
	t.Run("longer horizon is worth more", func(t *testing.T) {
		if short, long := clv(CLVOptions{Horizon: 26, AnnualDiscountRate: 0.1}), clv(CLVOptions{Horizon: 104, AnnualDiscountRate: 0.1}); !(0 < short && short < long) {
			t.Errorf("got 26 weeks %v, 104 weeks %v", short, long)
		}
	})
	t.Run("zero horizon is worth nothing", func(t *testing.T) {
		if got := clv(CLVOptions{}); got != 0 {
			t.Errorf("got %v, want 0", got)
		}
	})
	t.Run("same in days", func(t *testing.T) {
		// The same model in days: alpha scales with the unit, and so do
		// the times; the value must not change.
		d := *m
		d.Unit = Day
		d.BGNBD.Alpha *= 7
		cd := Customer{X: c.X, TX: c.TX * 7, T: c.T * 7, Monetary: c.Monetary}
		got, err := d.CLV(cd, CLVOptions{Horizon: 364, AnnualDiscountRate: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		if want := clv(CLVOptions{Horizon: 52, AnnualDiscountRate: 0.1}); math.Abs(got-want) > 1e-9*want {
			t.Errorf("got %v in days, want %v as in weeks", got, want)
		}
	})
}

func TestCLVErrors(t *testing.T) {
	m := &Model{Unit: Week, BGNBD: BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}, GammaGamma: GammaGamma{P: 6.25, Q: 3.74, Gamma: 15.44}}
	c := Customer{X: 1, TX: 3, T: 10, Monetary: 12}
	tests := []struct {
		name  string
		model func() *Model
		c     Customer
		o     CLVOptions
		want  error
	}{
		{name: "negative horizon", model: func() *Model { return m }, c: c, o: CLVOptions{Horizon: -1}},
		{name: "NaN discount", model: func() *Model { return m }, c: c, o: CLVOptions{Horizon: 1, AnnualDiscountRate: math.NaN()}},
		{name: "negative step", model: func() *Model { return m }, c: c, o: CLVOptions{Horizon: 1, Step: -1}},
		{name: "too many steps", model: func() *Model { return m }, c: c, o: CLVOptions{Horizon: 1e9, Step: 1}},
		{name: "no unit", model: func() *Model { n := *m; n.Unit = 0; return &n }, c: c, o: CLVOptions{Horizon: 1}, want: ErrBadUnit},
		{name: "infinite mean spend", model: func() *Model { n := *m; n.GammaGamma.Q = 0.5; return &n }, c: Customer{T: 3}, o: CLVOptions{Horizon: 1}, want: ErrUndefinedSpend},
		{name: "bad customer", model: func() *Model { return m }, c: Customer{X: 1, TX: 5, T: 3, Monetary: 1}, o: CLVOptions{Horizon: 1}, want: ErrInvalidCustomer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tt.model().CLV(tt.c, tt.o)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("got %v, %v; want error %v", v, err, tt.want)
			}
		})
	}
}
