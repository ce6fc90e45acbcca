package clv

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// covariance is the asymptotic covariance of the log parameters at the
// optimum theta of obj, a mean over n customers: the inverse of the
// Hessian of the total objective, n·∇²obj. The Hessian is taken by central
// differences of the analytic gradient (a step of 1e-4 in each log
// parameter, where the truncation and rounding errors are both near 1e-8
// of the result) and symmetrised. It returns nil when the Hessian is not
// positive definite (a flat direction, as at a boundary): the optimum then
// has no standard errors to give.
func covariance(obj objective, theta []float64, n float64) [][]float64 {
	const h = 1e-4
	k := len(theta)
	hess := mat.NewSymDense(k, nil)
	up, down := make([]float64, k), make([]float64, k)
	gUp, gDown := make([]float64, k), make([]float64, k)
	cols := make([][]float64, k)
	for j := range k {
		copy(up, theta)
		copy(down, theta)
		up[j] += h
		down[j] -= h
		obj(up, gUp)
		obj(down, gDown)
		cols[j] = make([]float64, k)
		for i := range k {
			cols[j][i] = (gUp[i] - gDown[i]) / (2 * h)
		}
	}
	for i := range k {
		for j := i; j < k; j++ {
			v := n * (cols[j][i] + cols[i][j]) / 2
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil
			}
			hess.SetSym(i, j, v)
		}
	}
	var chol mat.Cholesky
	if !chol.Factorize(hess) {
		return nil
	}
	var inv mat.SymDense
	if err := chol.InverseTo(&inv); err != nil {
		return nil
	}
	out := make([][]float64, k)
	for i := range k {
		out[i] = make([]float64, k)
		for j := range k {
			out[i][j] = inv.At(i, j)
		}
		if !(out[i][i] > 0) || math.IsInf(out[i][i], 0) {
			return nil
		}
	}
	return out
}

// stdErrors are the standard errors of the parameters exp(θ) given the
// covariance of θ, by the delta method: se(p) = p·se(log p).
func stdErrors(params []float64, cov [][]float64) []float64 {
	if len(cov) != len(params) {
		return nil
	}
	out := make([]float64, len(params))
	for i, p := range params {
		out[i] = p * math.Sqrt(cov[i][i])
	}
	return out
}

// BGNBDStdErrors are the standard errors of the BG/NBD parameters, false
// when the fit gave none.
func (m *Model) BGNBDStdErrors() (BGNBD, bool) {
	se := stdErrors([]float64{m.BGNBD.R, m.BGNBD.Alpha, m.BGNBD.A, m.BGNBD.B}, m.BGNBDCovariance)
	if se == nil {
		return BGNBD{}, false
	}
	return BGNBD{R: se[0], Alpha: se[1], A: se[2], B: se[3]}, true
}

// GammaGammaStdErrors are the standard errors of the Gamma-Gamma
// parameters, false when the fit gave none.
func (m *Model) GammaGammaStdErrors() (GammaGamma, bool) {
	se := stdErrors([]float64{m.GammaGamma.P, m.GammaGamma.Q, m.GammaGamma.Gamma}, m.GammaGammaCovariance)
	if se == nil {
		return GammaGamma{}, false
	}
	return GammaGamma{P: se[0], Q: se[1], Gamma: se[2]}, true
}

// IntervalZ is the standard normal quantile of the intervals Predict
// gives: 1.2816 either side covers the 10th to the 90th percentile.
const IntervalZ = 1.2815515655446004

// Prediction is what a model says of one customer over a horizon.
type Prediction struct {
	// Purchases is the expected number of purchases in the horizon,
	// PAlive the probability that the customer is still active.
	Purchases float64 `json:"purchases"`
	PAlive    float64 `json:"p_alive"`
	// OrderValue is the expected value of a purchase; CLV the discounted
	// value of the horizon's purchases (Model.CLV).
	OrderValue float64 `json:"order_value"`
	CLV        float64 `json:"clv"`
	// Interval is set when the model has the covariance of its
	// parameters; then [PurchasesLow, PurchasesHigh] and [CLVLow,
	// CLVHigh] run from the 10th to the 90th percentile of what the
	// parameters' sampling distribution allows (see Predict).
	Interval      bool    `json:"interval,omitempty"`
	PurchasesLow  float64 `json:"purchases_low,omitempty"`
	PurchasesHigh float64 `json:"purchases_high,omitempty"`
	CLVLow        float64 `json:"clv_low,omitempty"`
	CLVHigh       float64 `json:"clv_high,omitempty"`
}

// Predict values a customer over o.Horizon: expected purchases, P(alive),
// expected order value and CLV, each as Model's own methods compute them,
// and, when the model carries the covariance of its parameters, an
// interval on the purchases and on the CLV.
//
// The intervals reflect the uncertainty of the fitted parameters, not the
// randomness of the customer's own behaviour: they say how much the
// prediction could move had the base been drawn again. They come from the
// delta method on the log scale: the gradient of ln E[Y(horizon)] with
// respect to the log parameters (exact, summed alongside the expectation's
// series) and of ln E[Z] (closed form) give the variance of each log
// through the parameters' asymptotic covariance, the two fits being
// independent; the interval is exp(ln v ± 1.2816 sd), so it stays
// positive and is wider above than below, as the sampling distribution of
// a positive quantity is. The CLV's discounting is taken to move with the
// undiscounted purchases, which it does to within the discount over the
// horizon. Draws of the parameters would give the same percentiles (the
// tests compare them) at the price of one valuation per draw; this costs
// one more pass of the series per customer.
func (m *Model) Predict(c Customer, o CLVOptions) (Prediction, error) {
	if !m.Unit.valid() {
		return Prediction{}, ErrBadUnit
	}
	purchases, grad, err := m.BGNBD.expectedPurchasesGrad(c, o.Horizon)
	if err != nil {
		return Prediction{}, err
	}
	spend, err := m.GammaGamma.ExpectedSpend(c)
	if err != nil {
		return Prediction{}, err
	}
	value, err := m.clv(c, o, spend, purchases)
	if err != nil {
		return Prediction{}, err
	}
	p := Prediction{Purchases: purchases, PAlive: m.BGNBD.ProbAlive(c), OrderValue: spend, CLV: value}
	if len(m.BGNBDCovariance) != 4 || len(m.GammaGammaCovariance) != 3 || !(purchases > 0) {
		return p, nil
	}
	var varY float64
	for i := range 4 {
		for j := range 4 {
			varY += grad[i] / purchases * m.BGNBDCovariance[i][j] * grad[j] / purchases
		}
	}
	gz := m.GammaGamma.logSpendGrad(c)
	var varZ float64
	for i := range 3 {
		for j := range 3 {
			varZ += gz[i] * m.GammaGammaCovariance[i][j] * gz[j]
		}
	}
	sdY, sdV := math.Sqrt(max(varY, 0)), math.Sqrt(max(varY+varZ, 0))
	if math.IsNaN(sdY) || math.IsInf(sdY, 0) || math.IsNaN(sdV) || math.IsInf(sdV, 0) {
		return p, nil
	}
	p.Interval = true
	p.PurchasesLow, p.PurchasesHigh = purchases*math.Exp(-IntervalZ*sdY), purchases*math.Exp(IntervalZ*sdY)
	p.CLVLow, p.CLVHigh = value*math.Exp(-IntervalZ*sdV), value*math.Exp(IntervalZ*sdV)
	return p, nil
}

// logSpendGrad is the gradient of ln E[Z | x, m] with respect to ln p,
// ln q, ln γ, from E[Z] = p(γ + x m)/(p x + q − 1).
func (g GammaGamma) logSpendGrad(c Customer) [3]float64 {
	x := float64(max(c.X, 0))
	m := c.Monetary
	if c.X <= 0 {
		m = 0
	}
	den := g.P*x + g.Q - 1
	return [3]float64{1 - g.P*x/den, -g.Q / den, g.Gamma / (g.Gamma + x*m)}
}

// expectedPurchasesGrad is ExpectedPurchases with its gradient with
// respect to the log parameters (ln r, ln α, ln a, ln b).
func (p BGNBD) expectedPurchasesGrad(c Customer, t float64) (float64, [4]float64, error) {
	var grad [4]float64
	if err := p.Validate(); err != nil {
		return 0, grad, err
	}
	if err := checkCustomer(0, c); err != nil {
		return 0, grad, err
	}
	if !(t >= 0) || math.IsInf(t, 0) {
		return 0, grad, fmt.Errorf("horizon %v: must be finite and non-negative", t)
	}
	if t == 0 {
		return 0, grad, nil
	}
	x := float64(c.X)
	span := p.Alpha + c.T + t
	z := t / span
	s := purchasesIfAliveGrad(p.R+x, z, p.B+x, p.A+p.B+x)
	if s.err != nil {
		return 0, grad, fmt.Errorf("expected purchases over %v: %w", t, s.err)
	}
	// Through s = r + x, z = t/(α+T+t), b+x and a+b+x, times each
	// parameter for the log scale.
	grad[0] = s.ds * p.R
	grad[1] = s.dz * (-t * p.Alpha / (span * span))
	grad[2] = s.dabx * p.A
	grad[3] = (s.dbx + s.dabx) * p.B
	if c.X == 0 {
		return s.e, grad, nil
	}
	// E = E_alive · P(alive), P = 1/(1 + e^L), dP = −P(1−P) dL.
	alive := p.ProbAlive(c)
	lnRatio := math.Log(p.Alpha+c.T) - math.Log(p.Alpha+c.TX)
	dL := [4]float64{
		p.R * lnRatio,
		p.Alpha * (p.R + x) * (1/(p.Alpha+c.T) - 1/(p.Alpha+c.TX)),
		1,
		-p.B / (p.B + x - 1),
	}
	for i := range grad {
		grad[i] = grad[i]*alive - s.e*alive*(1-alive)*dL[i]
	}
	return s.e * alive, grad, nil
}

// seriesGrad is purchasesIfAlive's value and its partial derivatives.
type seriesGrad struct {
	e, ds, dz, dbx, dabx float64
	err                  error
}

// purchasesIfAliveGrad sums purchasesIfAlive's series with the partial
// derivatives of its terms (see purchasesIfAlive for the series):
//
//	∂ln π_n/∂s = ψ_n = Σ_{j<n} 1/(s+j)   ∂ln π_n/∂z = n/z
//	∂q_k/∂(b+x) = q_k Σ_{j<k} 1/(b+x+j)   ∂q_k/∂(a+b+x) = −q_k Σ_{j<k} 1/(a+b+x+j)
//
// and E = A/N with A = Σ π_n S_n, N = Σ π_n, so ∂E = (∂A − E ∂N)/N. The
// terms of the derivative sums fall off like n·π_n, so the series runs
// until the value's tail bound, times n + 1/(1−ρ), is below 1e-15 of it.
func purchasesIfAliveGrad(s, z, bx, abx float64) seriesGrad {
	if !(z >= 0 && z < 1) || z == 0 {
		if z == 0 {
			return seriesGrad{}
		}
		return seriesGrad{err: fmt.Errorf("%w: z = %v outside [0, 1)", errSeries, z)}
	}
	pm, norm, acc := 1.0, 1.0, 0.0
	sum, q := 0.0, 1.0
	var psi, u, w, sb, sa float64                        // ψ_n, Σ 1/(b+x+j), Σ 1/(a+b+x+j), ∂S/∂(b+x), −∂S/∂(a+b+x)
	var accPsi, normPsi, accN, normN, accB, accA float64 // the derivative sums
	ratio := s * z
	converged := false
	for n := 1.0; n <= maxSeriesTerms; n++ {
		psi += 1 / (s + n - 1)
		pm *= ratio
		sum += q
		sb += q * u
		sa += q * w
		u += 1 / (bx + n - 1)
		w += 1 / (abx + n - 1)
		q *= (bx + n - 1) / (abx + n - 1)
		norm += pm
		acc += pm * sum
		accPsi += pm * psi * sum
		normPsi += pm * psi
		accN += pm * n * sum
		normN += pm * n
		accB += pm * sb
		accA += pm * sa
		if pm > 1e100 {
			norm, acc, accPsi, normPsi, accN, normN, accB, accA = norm/pm, acc/pm, accPsi/pm, normPsi/pm, accN/pm, normN/pm, accB/pm, accA/pm
			pm = 1
		}
		ratio = (s + n) * z / (n + 1)
		if rho := max(ratio, z); rho < 1 {
			if d := 1 - rho; pm*rho*(sum*d+q)*(n+1/d) <= 1e-15*acc*d*d {
				converged = true
				break
			}
		}
	}
	e := acc / norm
	g := seriesGrad{
		e:    e,
		ds:   (accPsi - e*normPsi) / norm,
		dz:   (accN - e*normN) / (norm * z),
		dbx:  accB / norm,
		dabx: -accA / norm,
	}
	if !converged || !allFinite([]float64{g.e, g.ds, g.dz, g.dbx, g.dabx}) {
		return seriesGrad{err: fmt.Errorf("%w: s=%v z=%v b+x=%v a+b+x=%v", errSeries, s, z, bx, abx)}
	}
	return g
}
