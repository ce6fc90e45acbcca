package clv

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
)

func TestSplitHoldout(t *testing.T) {
	txs := []Transaction{
		{CustomerID: "a", Date: day("2025-01-01"), Amount: 20},
		{CustomerID: "b", Date: day("2025-02-03"), Amount: 99}, // first bought in the holdout: left out
		{CustomerID: "a", Date: day("2025-02-05"), Amount: 10},
		{CustomerID: "a", Date: day("2025-01-10"), Amount: 30},
		{CustomerID: "c", Date: day("2025-01-31"), Amount: 7}, // on the calibration end: calibration
		{CustomerID: "a", Date: day("2025-02-05"), Amount: 5}, // same day: one purchase
		{CustomerID: "a", Date: day("2025-03-31"), Amount: 1}, // on the holdout end: counts
		{CustomerID: "a", Date: day("2025-04-01"), Amount: 1000},
		{CustomerID: "c", Date: day("2025-02-01"), Amount: 3},
	}
	cs, hold, err := SplitHoldout(txs, day("2025-01-31"), day("2025-03-31"), Day)
	if err != nil {
		t.Fatal(err)
	}
	wantCs := []Customer{
		{ID: "a", X: 1, TX: 9, T: 30, Monetary: 30},
		{ID: "c", X: 0, T: 0},
	}
	wantHold := []Holdout{{Purchases: 2, Value: 16}, {Purchases: 1, Value: 3}}
	if !slices.Equal(cs, wantCs) {
		t.Errorf("calibration: got %+v, want %+v", cs, wantCs)
	}
	if !slices.Equal(hold, wantHold) {
		t.Errorf("holdout: got %+v, want %+v", hold, wantHold)
	}

	if _, _, err := SplitHoldout(txs, day("2025-01-31"), day("2025-01-31"), Day); !errors.Is(err, ErrBadHoldout) {
		t.Errorf("holdout ending on the calibration end: got %v, want ErrBadHoldout", err)
	}
	if _, _, err := SplitHoldout(txs, day("2025-01-31"), day("2025-03-31"), Unit(9)); !errors.Is(err, ErrBadUnit) {
		t.Errorf("bad unit: got %v, want ErrBadUnit", err)
	}
}

func cdnowValidation(tb testing.TB) ([]Customer, []Holdout, *Validation) {
	tb.Helper()
	cs, hold, err := SplitHoldout(cdnowTransactions(tb, 2), cdnowEnd, day("1998-06-30"), Week)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := Validate(context.Background(), cs, hold, ValidateOptions{Unit: Week, Length: 39, FittedAt: testTime})
	if err != nil {
		tb.Fatal(err)
	}
	return cs, hold, v
}

// TestValidateCDNOW checks the holdout comparison against the one
// published for this sample: Fader, Hardie & Lee (2005), "'Counting Your
// Customers' the Easy Way", Marketing Science 24(2), section 4, pp.
// 281–282 and Table 3, calibration weeks 1–39 (to 1997-09-30), forecast
// weeks 40–78 (to 1998-06-30):
//
//   - the 1,411 customers without a repeat purchase in calibration made 334
//     transactions in weeks 40–78 (0.24 each), 18 % of all forecast-period
//     transactions, and the 7+ group 22 %; the BG/NBD conditional
//     expectation for them is 0.23;
//   - the 100 customers with three repeat purchases made between 0 and 10
//     each, 1.56 on average; their BG/NBD conditional expectations range
//     from 0.04 to 2.57, 1.52 on average;
//   - the correlation between actual and BG/NBD-expected forecast-period
//     transactions over the 2,357 customers is 0.626;
//   - the BG/NBD tracks the cumulative repeat transactions, under-
//     forecasting them by 4 % at the end of the forecast period.
//
// Each is checked to the digits published (half a unit of the last one).
// The paper does not print the sum of the conditional expectations; an
// independent R implementation of the same fit (M. Platzer's model
// comparison on CDNOW, bbmle) reports 1,653.421 expected against 1,882
// actual (−12.15 %), RMSE 1.6080 and correlation 0.625633, checked here
// to its digits too.
// One figure is looser: the largest expectation among the x = 3 customers
// comes out 2.556 here against the 2.57 printed. The other figures of that
// group (least 0.04, mean 1.52) agree, as do the parameters to the
// published digits and the expectation of the paper's worked example (x =
// 2, 1.226, TestBGNBDExpectedPurchasesCDNOW); with the printed parameters
// instead of the fitted ones it is 2.556 as well, so the difference is in
// how the paper evaluated 2F1 for that customer (t_x = 27.71, T = 28.14),
// not in the fit.
func TestValidateCDNOW(t *testing.T) {
	cs, hold, v := cdnowValidation(t)
	near := func(name string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s: got %.4f, want %v ± %v", name, got, want, tol)
		}
	}
	if v.Customers != 2357 || len(v.Bins) != 8 {
		t.Fatalf("got %d customers in %d bins, want 2357 in 8", v.Customers, len(v.Bins))
	}
	zero, three, last := v.Bins[0], v.Bins[3], v.Bins[7]
	if zero.Customers != 1411 || zero.Actual*1411 != 334 {
		t.Errorf("zero class: got %d customers making %.0f transactions, want 1411 making 334", zero.Customers, zero.Actual*1411)
	}
	near("zero class, actual mean", zero.Actual, 0.24, 0.005)
	near("zero class, BG/NBD", zero.Predicted, 0.23, 0.005)
	near("zero class, share of forecast-period transactions", zero.Actual*float64(zero.Customers)/v.Actual, 0.18, 0.005)
	if !last.Open || last.Label() != "7+" {
		t.Errorf("last bin: got %q, want 7+", last.Label())
	}
	near("7+ share of forecast-period transactions", last.Actual*float64(last.Customers)/v.Actual, 0.22, 0.005)
	if three.Customers != 100 {
		t.Errorf("x = 3: got %d customers, want 100", three.Customers)
	}
	near("x = 3, actual mean", three.Actual, 1.56, 0.005)
	near("x = 3, BG/NBD mean", three.Predicted, 1.52, 0.005)
	lo, hi, most := math.Inf(1), math.Inf(-1), 0
	for i, c := range cs {
		if c.X == 3 {
			lo, hi, most = min(lo, v.Predictions[i]), max(hi, v.Predictions[i]), max(most, hold[i].Purchases)
		}
	}
	if most != 10 {
		t.Errorf("x = 3: most holdout purchases %d, want 10", most)
	}
	near("x = 3, least BG/NBD expectation", lo, 0.04, 0.005)
	near("x = 3, greatest BG/NBD expectation", hi, 2.57, 0.02)
	near("correlation, actual vs BG/NBD", v.Correlation, 0.626, 0.0005)
	near("cumulative tracking error", v.Tracking.CumulativeError, -0.04, 0.005)
	near("sum of conditional expectations (R)", v.Predicted, 1653.421, 0.05)
	near("aggregate error (R)", v.AggregateError, -0.1215, 0.00005)
	near("RMSE (R)", v.RMSE, 1.6080, 0.00005)
	near("correlation (R)", v.Correlation, 0.625633, 0.00005)
	if v.Tracking.HoldoutActual != v.Actual || v.Tracking.CalibrationActual != 2457 {
		t.Errorf("tracking: got %.0f calibration and %.0f holdout transactions, want 2457 and %.0f",
			v.Tracking.CalibrationActual, v.Tracking.HoldoutActual, v.Actual)
	}
	for i := 1; i < len(v.Bins); i++ {
		if v.Bins[i].Predicted <= v.Bins[i-1].Predicted {
			t.Errorf("bin %s predicts %.3f, not more than bin %s's %.3f", v.Bins[i].Label(), v.Bins[i].Predicted, v.Bins[i-1].Label(), v.Bins[i-1].Predicted)
		}
	}
	t.Logf("holdout: actual %.0f, predicted %.1f (%+.1f%%), MAE %.3f, RMSE %.3f; spend %+v",
		v.Actual, v.Predicted, 100*v.AggregateError, v.MAE, v.RMSE, *v.Spend)
}

// TestValidateMeasures recomputes every summary figure from the
// per-customer predictions and the holdout, by a second route: sorted
// into bins first, errors from the bins' sums.
func TestValidateMeasures(t *testing.T) {
	cs, hold, v := cdnowValidation(t)
	type acc struct{ n, actual, pred float64 }
	bins := map[int]*acc{}
	var absErr, sqErr, actual, pred float64
	for i, c := range cs {
		x := min(c.X, 7)
		if bins[x] == nil {
			bins[x] = &acc{}
		}
		a, p := float64(hold[i].Purchases), v.Predictions[i]
		bins[x].n++
		bins[x].actual += a
		bins[x].pred += p
		absErr += math.Abs(a - p)
		sqErr += (a - p) * (a - p)
		actual += a
		pred += p
	}
	for _, b := range v.Bins {
		w := bins[b.Frequency]
		if float64(b.Customers) != w.n || math.Abs(b.Actual-w.actual/w.n) > 1e-12 || math.Abs(b.Predicted-w.pred/w.n) > 1e-12 {
			t.Errorf("bin %s: got %+v, want %.0f customers, actual %.6f, predicted %.6f", b.Label(), b, w.n, w.actual/w.n, w.pred/w.n)
		}
	}
	n := float64(len(cs))
	checks := []struct {
		name      string
		got, want float64
	}{
		{"actual", v.Actual, actual},
		{"predicted", v.Predicted, pred},
		{"MAE", v.MAE, absErr / n},
		{"RMSE", v.RMSE, math.Sqrt(sqErr / n)},
		{"aggregate error", v.AggregateError, pred/actual - 1},
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > 1e-9*max(1, math.Abs(c.want)) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	// Spend: the customers who bought in the holdout, each at their own
	// mean; the expected spend straight from the Gamma-Gamma formula.
	g := v.Model.GammaGamma
	var buyers, actualAOV, predAOV, revenue, predRevenue float64
	for i, c := range cs {
		m := 0.0
		if c.X > 0 {
			m = c.Monetary
		}
		z := g.P * (g.Gamma + float64(c.X)*m) / (g.P*float64(c.X) + g.Q - 1)
		predRevenue += v.Predictions[i] * z
		revenue += hold[i].Value
		if hold[i].Purchases > 0 {
			buyers++
			actualAOV += hold[i].Value / float64(hold[i].Purchases)
			predAOV += z
		}
	}
	s := v.Spend
	if s == nil {
		t.Fatal("no spend comparison")
	}
	if float64(s.Customers) != buyers || math.Abs(s.ActualOrderValue-actualAOV/buyers) > 1e-9 ||
		math.Abs(s.PredictedOrderValue-predAOV/buyers) > 1e-9 || math.Abs(s.ActualRevenue-revenue) > 1e-6 ||
		math.Abs(s.PredictedRevenue-predRevenue) > 1e-6 {
		t.Errorf("spend: got %+v, want %.0f customers, order value %.4f vs %.4f, revenue %.2f vs %.2f",
			*s, buyers, actualAOV/buyers, predAOV/buyers, revenue, predRevenue)
	}
}

func TestValidateErrors(t *testing.T) {
	ctx := context.Background()
	cs := simulate(3, 2000, testPopulation)
	hold := make([]Holdout, len(cs))
	tests := []struct {
		name string
		cs   []Customer
		hold []Holdout
		o    ValidateOptions
		want error
	}{
		{"holdout of other customers", cs, hold[:10], ValidateOptions{Unit: Week, Length: 10}, ErrBadHoldout},
		{"no length", cs, hold, ValidateOptions{Unit: Week}, ErrBadHoldout},
		{"infinite length", cs, hold, ValidateOptions{Unit: Week, Length: math.Inf(1)}, ErrBadHoldout},
		{"negative purchases", cs, append([]Holdout{{Purchases: -1}}, hold[1:]...), ValidateOptions{Unit: Week, Length: 10}, ErrBadHoldout},
		{"NaN value", cs, append([]Holdout{{Purchases: 1, Value: math.NaN()}}, hold[1:]...), ValidateOptions{Unit: Week, Length: 10}, ErrBadHoldout},
		{"too few customers", cs[:20], hold[:20], ValidateOptions{Unit: Week, Length: 10}, ErrNotEnoughHistory},
		{"bad unit", cs, hold, ValidateOptions{Length: 10}, ErrBadUnit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Validate(ctx, tt.cs, tt.hold, tt.o)
			if !errors.Is(err, tt.want) || v != nil {
				t.Errorf("got %v, %v; want %v", v, err, tt.want)
			}
		})
	}
	// Nothing bought in the holdout: no spend to compare, no error to
	// divide by, and an empty open bin is dropped.
	v, err := Validate(ctx, cs, hold, ValidateOptions{Unit: Week, Length: 10, MaxFrequency: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if v.Spend != nil || v.AggregateError != 0 || v.Correlation != 0 || v.Actual != 0 {
		t.Errorf("empty holdout: got spend %v, aggregate error %v, correlation %v, actual %v; want none and zeros", v.Spend, v.AggregateError, v.Correlation, v.Actual)
	}
	if last := v.Bins[len(v.Bins)-1]; last.Customers == 0 || last.Open {
		t.Errorf("last bin %+v: want a non-empty closed bin", last)
	}
}
