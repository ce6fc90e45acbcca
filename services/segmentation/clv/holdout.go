package clv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Holdout is what a customer did after the calibration period: the
// purchase days in the holdout period (each one a repeat purchase, the
// first purchase having been made in calibration) and their total value.
type Holdout struct {
	Purchases int     `json:"purchases"`
	Value     float64 `json:"value"`
}

// ErrBadHoldout reports a holdout period that does not follow the
// calibration period, or holdout figures that do not match the customers.
var ErrBadHoldout = errors.New("bad holdout period")

// SplitHoldout summarises txs for a calibration period ending on the
// calendar date of calibrationEnd, exactly as Summarize does, and counts
// what each of those customers bought after it, up to the calendar date of
// holdoutEnd inclusive: purchase days (same-day purchases are one) and
// their value. Customers whose first purchase is after calibrationEnd are
// in neither slice: the model has nothing to say about them. The slices
// are parallel.
func SplitHoldout(txs []Transaction, calibrationEnd, holdoutEnd time.Time, unit Unit) ([]Customer, []Holdout, error) {
	calDay, holdDay := civilDay(calibrationEnd), civilDay(holdoutEnd)
	if holdDay <= calDay {
		return nil, nil, fmt.Errorf("%w: holdout end %s is not after the calibration end %s", ErrBadHoldout,
			holdoutEnd.Format(time.DateOnly), calibrationEnd.Format(time.DateOnly))
	}
	cs, err := Summarize(txs, calibrationEnd, unit)
	if err != nil {
		return nil, nil, err
	}
	index := make(map[string]int32, len(cs))
	for i, c := range cs {
		index[c.ID] = int32(i)
	}
	var rows []dayRow
	for _, tx := range txs {
		day := civilDay(tx.Date)
		if day <= calDay || day > holdDay {
			continue
		}
		if c, ok := index[tx.CustomerID]; ok {
			rows = append(rows, dayRow{customer: c, day: int32(day), amount: tx.Amount})
		}
	}
	slices.SortFunc(rows, func(a, b dayRow) int {
		if a.customer != b.customer {
			return int(a.customer) - int(b.customer)
		}
		return int(a.day) - int(b.day)
	})
	hold := make([]Holdout, len(cs))
	for i, r := range rows {
		h := &hold[r.customer]
		if i == 0 || rows[i-1].customer != r.customer || rows[i-1].day != r.day {
			h.Purchases++
		}
		h.Value += r.amount
	}
	return cs, hold, nil
}

// ValidateOptions set up Validate.
type ValidateOptions struct {
	// Unit is the time unit the customers are summarised in.
	Unit Unit
	// Length is the length of the holdout period, in Unit.
	Length float64
	// FittedAt is recorded in the model.
	FittedAt time.Time
	// MaxFrequency is the number of calibration repeat purchases from which
	// customers share the last, open bin ("7+"); 0 means 7, as in the
	// published comparisons.
	MaxFrequency int
}

// DefaultMaxFrequency is the bin the published holdout comparisons (Fader,
// Hardie & Lee 2005, Figure 3) close with: 7 repeat purchases or more.
const DefaultMaxFrequency = 7

// FrequencyBin is one point of the calibration-versus-holdout comparison:
// the customers with Frequency repeat purchases in calibration (or at
// least Frequency, in the open last bin), how many purchases they made in
// the holdout period on average, and how many the model predicted.
type FrequencyBin struct {
	Frequency int     `json:"frequency"`
	Open      bool    `json:"open,omitempty"`
	Customers int     `json:"customers"`
	Actual    float64 `json:"actual"`
	Predicted float64 `json:"predicted"`
}

// Label is the bin as the comparisons print it: "3", or "7+" for the open
// bin.
func (b FrequencyBin) Label() string {
	if b.Open {
		return strconv.Itoa(b.Frequency) + "+"
	}
	return strconv.Itoa(b.Frequency)
}

// SpendCheck compares the Gamma-Gamma model's spend with the holdout's.
type SpendCheck struct {
	// Customers is the number of customers with a purchase in the holdout
	// period; ActualOrderValue is the mean over them of their mean holdout
	// purchase value, PredictedOrderValue the mean of their expected
	// purchase value (Gamma-Gamma, from calibration).
	Customers           int     `json:"customers"`
	ActualOrderValue    float64 `json:"actual_order_value"`
	PredictedOrderValue float64 `json:"predicted_order_value"`
	// ActualRevenue is the value of every holdout purchase; PredictedRevenue
	// sums each customer's expected purchases times expected purchase value.
	ActualRevenue    float64 `json:"actual_revenue"`
	PredictedRevenue float64 `json:"predicted_revenue"`
}

// Tracking is the forecast of the published tracking plots (Fader, Hardie
// & Lee 2005, section 4): the repeat purchases the whole cohort was
// expected to make, knowing only when each customer first bought (E[X(t)]
// of each customer summed), through calibration and holdout, next to what
// it made.
type Tracking struct {
	CalibrationActual   float64 `json:"calibration_actual"`
	CalibrationExpected float64 `json:"calibration_expected"`
	HoldoutActual       float64 `json:"holdout_actual"`
	HoldoutExpected     float64 `json:"holdout_expected"`
	// CumulativeError is the relative error of the cumulative purchases at
	// the end of the holdout period: (expected − actual)/actual over both
	// periods together.
	CumulativeError float64 `json:"cumulative_error"`
}

// Validation is how well a model fitted on a calibration period predicted
// the holdout period after it.
type Validation struct {
	// Model was fitted on the calibration period.
	Model *Model `json:"model"`
	// Length of the holdout period, in the model's Unit.
	Length    float64 `json:"length"`
	Customers int     `json:"customers"`
	// Bins compare mean actual and predicted holdout purchases by the
	// number of repeat purchases in calibration.
	Bins []FrequencyBin `json:"bins"`
	// Actual and Predicted are the total holdout repeat purchases.
	Actual    float64 `json:"actual"`
	Predicted float64 `json:"predicted"`
	// MAE and RMSE are the mean absolute and root-mean-square error of the
	// holdout purchases per customer.
	MAE  float64 `json:"mae"`
	RMSE float64 `json:"rmse"`
	// AggregateError is (Predicted − Actual)/Actual: −0.04 is a forecast
	// 4 % short of what happened. 0 when nothing happened and nothing was
	// predicted.
	AggregateError float64 `json:"aggregate_error"`
	// Correlation is Pearson's, between actual and predicted purchases per
	// customer (0 when either does not vary).
	Correlation float64 `json:"correlation"`
	// Tracking is the aggregate forecast from first-purchase dates alone.
	Tracking Tracking `json:"tracking"`
	// Spend is nil when there is no holdout purchase to compare with or
	// the model leaves the expected spend undefined.
	Spend *SpendCheck `json:"spend,omitempty"`
	// Predictions are the customers' expected holdout purchases, in the
	// order given.
	Predictions []float64 `json:"-"`
}

// Validate fits the models on the calibration summaries cs (with Fit, so
// the same evidence rules and penalties apply) and compares what they
// predict for the next o.Length time units — each customer's conditional
// expected purchases E[Y(t) | x, t_x, T] — with what each customer did
// then, hold[i] being customer cs[i]'s holdout.
func Validate(ctx context.Context, cs []Customer, hold []Holdout, o ValidateOptions) (*Validation, error) {
	if len(hold) != len(cs) {
		return nil, fmt.Errorf("%w: %d holdout figures for %d customers", ErrBadHoldout, len(hold), len(cs))
	}
	if !(o.Length > 0) || math.IsInf(o.Length, 0) {
		return nil, fmt.Errorf("%w: length %v must be finite and positive", ErrBadHoldout, o.Length)
	}
	maxX := o.MaxFrequency
	if maxX <= 0 {
		maxX = DefaultMaxFrequency
	}
	for i, h := range hold {
		if h.Purchases < 0 || math.IsNaN(h.Value) || math.IsInf(h.Value, 0) || h.Value < 0 {
			return nil, fmt.Errorf("%w: customer %d (%q): %d purchases worth %v", ErrBadHoldout, i, cs[i].ID, h.Purchases, h.Value)
		}
	}
	m, err := Fit(ctx, cs, o.Unit, o.FittedAt)
	if err != nil {
		return nil, err
	}
	pred := make([]float64, len(cs))
	errs := make([]error, len(cs))
	forEach(len(cs), func(i int) {
		pred[i], errs[i] = m.BGNBD.ExpectedPurchases(cs[i], o.Length)
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	v := &Validation{Model: m, Length: o.Length, Customers: len(cs), Predictions: pred}
	bins := make([]FrequencyBin, maxX+1)
	for x := range bins {
		bins[x] = FrequencyBin{Frequency: x, Open: x == maxX}
	}
	var sumAbs, sumSq, sumA, sumP, sumAA, sumPP, sumAP float64
	for i, c := range cs {
		a, p := float64(hold[i].Purchases), pred[i]
		b := &bins[min(c.X, maxX)]
		b.Customers++
		b.Actual += a
		b.Predicted += p
		d := p - a
		sumAbs += math.Abs(d)
		sumSq += d * d
		sumA += a
		sumP += p
		sumAA += a * a
		sumPP += p * p
		sumAP += a * p
	}
	for i := range bins {
		if n := float64(bins[i].Customers); n > 0 {
			bins[i].Actual /= n
			bins[i].Predicted /= n
		}
	}
	// An empty open bin says nothing; empty bins below it keep their place
	// on the axis.
	for len(bins) > 1 && bins[len(bins)-1].Customers == 0 {
		bins = bins[:len(bins)-1]
	}
	v.Bins = bins
	n := float64(len(cs))
	v.Actual, v.Predicted = sumA, sumP
	v.MAE, v.RMSE = sumAbs/n, math.Sqrt(sumSq/n)
	if sumA > 0 {
		v.AggregateError = (sumP - sumA) / sumA
	}
	covAP := sumAP/n - (sumA/n)*(sumP/n)
	varA, varP := sumAA/n-(sumA/n)*(sumA/n), sumPP/n-(sumP/n)*(sumP/n)
	if varA > 0 && varP > 0 {
		v.Correlation = covAP / math.Sqrt(varA*varP)
	}
	if v.Tracking, err = tracking(m.BGNBD, cs, o.Length, sumA); err != nil {
		return nil, err
	}
	v.Spend = spendCheck(m, cs, hold, pred)
	return v, nil
}

// tracking sums E[X(T)] and E[X(T+length)] − E[X(T)] over the customers,
// once per distinct T.
func tracking(p BGNBD, cs []Customer, length, holdoutActual float64) (Tracking, error) {
	type pair struct{ cal, hold float64 }
	byT := map[float64]pair{}
	tr := Tracking{HoldoutActual: holdoutActual}
	for _, c := range cs {
		tr.CalibrationActual += float64(c.X)
		e, ok := byT[c.T]
		if !ok {
			cal, err := p.ExpectedPurchasesNew(c.T)
			if err != nil {
				return Tracking{}, err
			}
			end, err := p.ExpectedPurchasesNew(c.T + length)
			if err != nil {
				return Tracking{}, err
			}
			e = pair{cal, end - cal}
			byT[c.T] = e
		}
		tr.CalibrationExpected += e.cal
		tr.HoldoutExpected += e.hold
	}
	if actual := tr.CalibrationActual + tr.HoldoutActual; actual > 0 {
		tr.CumulativeError = (tr.CalibrationExpected+tr.HoldoutExpected)/actual - 1
	}
	return tr, nil
}

// spendCheck compares expected and actual holdout spend, or returns nil
// when there is nothing to compare or the model cannot value a purchase.
func spendCheck(m *Model, cs []Customer, hold []Holdout, pred []float64) *SpendCheck {
	s := &SpendCheck{}
	for i, c := range cs {
		z, err := m.GammaGamma.ExpectedSpend(c)
		if err != nil {
			return nil
		}
		s.PredictedRevenue += pred[i] * z
		s.ActualRevenue += hold[i].Value
		if h := hold[i]; h.Purchases > 0 {
			s.Customers++
			s.ActualOrderValue += h.Value / float64(h.Purchases)
			s.PredictedOrderValue += z
		}
	}
	if s.Customers == 0 {
		return nil
	}
	s.ActualOrderValue /= float64(s.Customers)
	s.PredictedOrderValue /= float64(s.Customers)
	return s
}

// forEach calls fn(0..n−1), split over the cores when n is large enough
// for it to pay.
func forEach(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/4096)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				fn(i)
			}
		})
	}
	wg.Wait()
}
