package clv

import (
	"context"
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mathext"
)

// GammaGamma holds the parameters of the Gamma-Gamma spend model (Fader &
// Hardie 2013). A customer's purchase values are Gamma(P, ν) around their
// own mean, with ν ~ Gamma(Q, Gamma) across customers; the population mean
// purchase value is P·Gamma/(Q−1) (finite when Q > 1).
type GammaGamma struct {
	P     float64 `json:"p"`
	Q     float64 `json:"q"`
	Gamma float64 `json:"gamma"`
}

// Validate reports parameters outside the model's domain.
func (g GammaGamma) Validate() error {
	for _, v := range []float64{g.P, g.Q, g.Gamma} {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: Gamma-Gamma %+v: every parameter must be finite and positive", ErrInvalidParams, g)
		}
	}
	return nil
}

// GammaGammaFit is a maximum-likelihood fit of the Gamma-Gamma model.
type GammaGammaFit struct {
	Params        GammaGamma `json:"params"`
	LogLikelihood float64    `json:"log_likelihood"`
	// Customers is the number of customers the model was fitted on:
	// those with a repeat purchase of positive mean value.
	Customers int `json:"customers"`
	// Skipped counts repeat customers left out because their mean repeat
	// value was zero (free orders): the model's spend is positive.
	Skipped     int         `json:"skipped"`
	Convergence Convergence `json:"convergence"`
	// Covariance is the asymptotic covariance of the log parameters at
	// the optimum, nil when the Hessian is not positive definite.
	Covariance [][]float64 `json:"covariance,omitempty"`
}

// ErrUndefinedSpend reports an expected spend the fitted model leaves
// infinite (Q ≤ 1 makes the population mean diverge).
var ErrUndefinedSpend = errors.New("expected spend is undefined")

// ggRow is a customer with x > 0 and monetary value m > 0, weighted by
// how many customers share (x, m).
type ggRow struct {
	xi     int32
	x      float64
	m      float64
	lnM    float64
	weight float64
}

type ggData struct {
	rows    []ggRow
	xs      []float64
	xWeight []float64
	lnX     []float64
	total   float64
	sumM    float64
	skipped int
}

func newGGData(cs []Customer) (*ggData, error) {
	if len(cs) == 0 {
		return nil, ErrNoCustomers
	}
	d := &ggData{}
	xIndex := map[int]int32{}
	rowIndex := map[[2]float64]int32{}
	for i, c := range cs {
		if c.X == 0 {
			continue
		}
		if c.X < 0 || !(c.Monetary >= 0) || math.IsInf(c.Monetary, 0) {
			return nil, fmt.Errorf("customer %d (%q): %w: monetary value must be finite and non-negative", i, c.ID, ErrInvalidCustomer)
		}
		if c.Monetary == 0 {
			d.skipped++
			continue
		}
		xi, ok := xIndex[c.X]
		if !ok {
			xi = int32(len(d.xs))
			xIndex[c.X] = xi
			d.xs = append(d.xs, float64(c.X))
			d.xWeight = append(d.xWeight, 0)
			d.lnX = append(d.lnX, math.Log(float64(c.X)))
		}
		d.xWeight[xi]++
		key := [2]float64{float64(c.X), c.Monetary}
		ri, ok := rowIndex[key]
		if !ok {
			ri = int32(len(d.rows))
			rowIndex[key] = ri
			d.rows = append(d.rows, ggRow{xi: xi, x: float64(c.X), m: c.Monetary, lnM: math.Log(c.Monetary)})
		}
		d.rows[ri].weight++
		d.total++
		d.sumM += c.Monetary
	}
	if d.total == 0 {
		return nil, ErrNoRepeatCustomers
	}
	return d, nil
}

// eval returns the negative mean log-likelihood at theta = log(p, q,
// gamma) and fills grad when it is not nil. Per customer with x repeat
// purchases of mean value m (Fader & Hardie 2013, eq. 3 for the mean):
//
//	LL = lnΓ(px+q) − lnΓ(px) − lnΓ(q) + q ln γ + (px−1) ln m + px ln x − (px+q) ln(γ + x m)
//
// The Γ terms depend on x only and are computed per distinct x.
func (d *ggData) eval(theta, grad []float64) float64 {
	p, q, g := math.Exp(theta[0]), math.Exp(theta[1]), math.Exp(theta[2])
	lgQ, _ := math.Lgamma(q)
	lnG := math.Log(g)
	psiQ := mathext.Digamma(q)
	var ll, gp, gq, gg float64
	for i, x := range d.xs {
		w := d.xWeight[i]
		lgPXQ, _ := math.Lgamma(p*x + q)
		lgPX, _ := math.Lgamma(p * x)
		ll += w * (lgPXQ - lgPX - lgQ + q*lnG + p*x*d.lnX[i])
		if grad != nil {
			psiPXQ := mathext.Digamma(p*x + q)
			gp += w * x * (psiPXQ - mathext.Digamma(p*x) + d.lnX[i])
			gq += w * (psiPXQ - psiQ + lnG)
			gg += w * q / g
		}
	}
	for i := range d.rows {
		row := &d.rows[i]
		px := p * row.x
		lnGXM := math.Log(g + row.x*row.m)
		ll += row.weight * ((px-1)*row.lnM - (px+q)*lnGXM)
		gp += row.weight * row.x * (row.lnM - lnGXM)
		gq -= row.weight * lnGXM
		gg -= row.weight * (px + q) / (g + row.x*row.m)
	}
	if grad != nil {
		grad[0] = -gp * p / d.total
		grad[1] = -gq * q / d.total
		grad[2] = -gg * g / d.total
	}
	return -ll / d.total
}

func (g GammaGamma) theta() []float64 {
	return []float64{math.Log(g.P), math.Log(g.Q), math.Log(g.Gamma)}
}

// LogLikelihood is the Gamma-Gamma log-likelihood of the customers with a
// repeat purchase of positive value; the others carry no spend
// information and are left out, as in the fit.
func (g GammaGamma) LogLikelihood(cs []Customer) (float64, error) {
	if err := g.Validate(); err != nil {
		return 0, err
	}
	d, err := newGGData(cs)
	if err != nil {
		return 0, err
	}
	return -d.eval(g.theta(), nil) * d.total, nil
}

// FitGammaGamma fits the Gamma-Gamma model by maximum likelihood on the
// customers with x > 0 (the first purchase is not in Monetary, so a
// customer without repeat purchases says nothing about spend). Like
// FitBGNBD it optimises the log parameters with BFGS and the analytic
// gradient. Without any repeat customer it returns ErrNoRepeatCustomers.
func FitGammaGamma(ctx context.Context, cs []Customer) (GammaGammaFit, error) {
	return FitGammaGammaPenalized(ctx, cs, 0)
}

// FitGammaGammaPenalized is FitGammaGamma with an L2 penalty on the log
// parameters (see penalize), pulling them toward the starting point p = 1,
// q = 2, γ = the observed mean repeat value. LogLikelihood is the
// likelihood's own, without the penalty.
func FitGammaGammaPenalized(ctx context.Context, cs []Customer, penalty float64) (GammaGammaFit, error) {
	d, err := newGGData(cs)
	if err != nil {
		return GammaGammaFit{}, err
	}
	// p = 1, q = 2 makes the population mean γ: start γ at the observed
	// mean so the optimiser starts in the data's currency scale.
	start := GammaGamma{P: 1, Q: 2, Gamma: d.sumM / d.total}
	obj, err := penalize(d.eval, start.theta(), penalty)
	if err != nil {
		return GammaGammaFit{}, fmt.Errorf("Gamma-Gamma: %w", err)
	}
	theta, conv, err := maximize(ctx, obj, start.theta())
	if err != nil {
		return GammaGammaFit{Convergence: conv}, fmt.Errorf("Gamma-Gamma: %w", err)
	}
	v := expAll(theta)
	fit := GammaGammaFit{
		Params:      GammaGamma{P: v[0], Q: v[1], Gamma: v[2]},
		Customers:   int(d.total),
		Skipped:     d.skipped,
		Convergence: conv,
	}
	if err := fit.Params.Validate(); err != nil {
		return GammaGammaFit{Convergence: conv}, fmt.Errorf("Gamma-Gamma: %w: %w", ErrNotConverged, err)
	}
	fit.LogLikelihood = -d.eval(theta, nil) * d.total
	fit.Covariance = covariance(obj, theta, d.total)
	return fit, nil
}

// ExpectedSpend is the expected value of a future purchase of the customer
// (Fader & Hardie 2013, eq. 5), a weighted mean of the population mean and
// the customer's own repeat mean:
//
//	E[Z | x, m] = (q−1)/(px+q−1) · pγ/(q−1) + px/(px+q−1) · m = p(γ + x m)/(px+q−1)
//
// For a customer without repeat purchases it is the population mean
// pγ/(q−1), which is infinite when q ≤ 1: then it returns
// ErrUndefinedSpend rather than an infinity.
func (g GammaGamma) ExpectedSpend(c Customer) (float64, error) {
	if err := g.Validate(); err != nil {
		return 0, err
	}
	x := float64(max(c.X, 0))
	m := c.Monetary
	if c.X <= 0 {
		m = 0
	}
	if !(m >= 0) || math.IsInf(m, 0) {
		return 0, fmt.Errorf("customer %q: %w: monetary value %v", c.ID, ErrInvalidCustomer, c.Monetary)
	}
	den := g.P*x + g.Q - 1
	if den <= 0 {
		return 0, fmt.Errorf("customer %q: %w (q = %v, x = %d)", c.ID, ErrUndefinedSpend, g.Q, c.X)
	}
	return g.P * (g.Gamma + x*m) / den, nil
}
