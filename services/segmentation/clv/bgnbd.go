package clv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"gonum.org/v1/gonum/mathext"
)

// BGNBD holds the parameters of the BG/NBD model (Fader, Hardie & Lee
// 2005). While active, a customer buys at a Poisson rate λ ~ Gamma(R,
// Alpha) (shape R, rate Alpha, in purchases per time unit); after each
// repeat purchase they drop out for good with probability p ~ Beta(A, B).
type BGNBD struct {
	R     float64 `json:"r"`
	Alpha float64 `json:"alpha"`
	A     float64 `json:"a"`
	B     float64 `json:"b"`
}

// Validate reports parameters outside the model's domain (each must be a
// finite positive number).
func (p BGNBD) Validate() error {
	for _, v := range []float64{p.R, p.Alpha, p.A, p.B} {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: BG/NBD %+v: every parameter must be finite and positive", ErrInvalidParams, p)
		}
	}
	return nil
}

// BGNBDFit is a maximum-likelihood fit of the BG/NBD model.
type BGNBDFit struct {
	Params        BGNBD       `json:"params"`
	LogLikelihood float64     `json:"log_likelihood"`
	Customers     int         `json:"customers"`
	Convergence   Convergence `json:"convergence"`
	// Covariance is the asymptotic covariance of the log parameters at
	// the optimum, nil when the Hessian is not positive definite.
	Covariance [][]float64 `json:"covariance,omitempty"`
}

// bgRow is a distinct (x, t_x, T) with the number of customers sharing it:
// summaries in whole days repeat a lot, so a million customers collapse to
// far fewer rows.
type bgRow struct {
	xi        int32 // index into bgData.xs
	x, tx, T  float64
	weight    float64
	countOnly bool // x == 0: only the "still alive at T" term exists
}

// bgData is a customer base prepared for repeated likelihood evaluations:
// everything that depends on x alone is computed once per distinct x.
type bgData struct {
	rows    []bgRow
	xs      []float64 // distinct x values
	xWeight []float64 // customers per distinct x
	total   float64   // customers
	sumX    float64
	sumT    float64
}

func checkCustomer(i int, c Customer) error {
	bad := func(why string) error {
		return fmt.Errorf("customer %d (%q): %w: %s", i, c.ID, ErrInvalidCustomer, why)
	}
	switch {
	case c.X < 0:
		return bad("negative x")
	case !(c.T >= 0) || math.IsInf(c.T, 0):
		return bad("T must be finite and non-negative")
	case c.X > 0 && (!(c.TX >= 0) || c.TX > c.T):
		return bad("t_x must lie between 0 and T")
	}
	return nil
}

func newBGData(cs []Customer) (*bgData, error) {
	if len(cs) == 0 {
		return nil, ErrNoCustomers
	}
	d := &bgData{}
	xIndex := map[int]int32{}
	rowIndex := make(map[[3]float64]int32)
	for i, c := range cs {
		if err := checkCustomer(i, c); err != nil {
			return nil, err
		}
		xi, ok := xIndex[c.X]
		if !ok {
			xi = int32(len(d.xs))
			xIndex[c.X] = xi
			d.xs = append(d.xs, float64(c.X))
			d.xWeight = append(d.xWeight, 0)
		}
		d.xWeight[xi]++
		tx := c.TX
		if c.X == 0 {
			tx = 0 // t_x means nothing without a repeat purchase
		}
		key := [3]float64{float64(c.X), tx, c.T}
		ri, ok := rowIndex[key]
		if !ok {
			ri = int32(len(d.rows))
			rowIndex[key] = ri
			d.rows = append(d.rows, bgRow{xi: xi, x: float64(c.X), tx: tx, T: c.T, countOnly: c.X == 0})
		}
		d.rows[ri].weight++
		d.total++
		d.sumX += float64(c.X)
		d.sumT += c.T
	}
	return d, nil
}

// bgPartial is the sum of the row terms over some rows.
type bgPartial struct {
	ll, gr, gAlpha, ga, gb float64
}

// parallelRows is the number of rows from which splitting the row pass
// over two goroutines pays for their start-up.
const parallelRows = 20000

// eval returns the negative mean log-likelihood at theta = log(r, alpha,
// a, b) and, when grad is not nil, its gradient with respect to theta.
//
// Per customer (FHL 2005, eq. 6, in logs):
//
//	LL = A1 + A2 + log(exp(A3) + δ(x>0) exp(A4))
//	A1 = lnΓ(r+x) − lnΓ(r) + r ln α
//	A2 = lnΓ(a+b) + lnΓ(b+x) − lnΓ(b) − lnΓ(a+b+x)
//	A3 = −(r+x) ln(α+T)
//	A4 = ln a − ln(b+x−1) − (r+x) ln(α+t_x)
//
// A1 and A2 depend on x only, so they and their derivatives are computed
// per distinct x; the rows carry only the two-term log-sum-exp, whose
// derivative is the same two-term mix weighted by w4 = exp(A4 − LSE).
func (d *bgData) eval(theta, grad []float64) float64 {
	r, alpha, a, b := math.Exp(theta[0]), math.Exp(theta[1]), math.Exp(theta[2]), math.Exp(theta[3])
	lnAlpha := math.Log(alpha)
	lgR, _ := math.Lgamma(r)
	lgAB, _ := math.Lgamma(a + b)
	lgB, _ := math.Lgamma(b)
	psiR, psiAB, psiB := mathext.Digamma(r), mathext.Digamma(a+b), mathext.Digamma(b)

	// Per distinct x: the log of a/(b+x−1), and its derivative in b.
	lnA4 := make([]float64, len(d.xs))
	dbA4 := make([]float64, len(d.xs))
	var ll, gr, gAlpha, ga, gb float64
	for i, x := range d.xs {
		w := d.xWeight[i]
		lgRX, _ := math.Lgamma(r + x)
		lgBX, _ := math.Lgamma(b + x)
		lgABX, _ := math.Lgamma(a + b + x)
		ll += w * (lgRX - lgR + r*lnAlpha + lgAB + lgBX - lgB - lgABX)
		if grad != nil {
			psiABX := mathext.Digamma(a + b + x)
			gr += w * (mathext.Digamma(r+x) - psiR + lnAlpha)
			gAlpha += w * r / alpha
			ga += w * (psiAB - psiABX)
			gb += w * (psiAB + mathext.Digamma(b+x) - psiB - psiABX)
		}
		if x > 0 {
			lnA4[i] = math.Log(a) - math.Log(b+x-1)
			dbA4[i] = -1 / (b + x - 1)
		}
	}

	rows := d.rows
	var p bgPartial
	if len(rows) < parallelRows {
		p = bgRows(rows, r, alpha, a, lnA4, dbA4)
	} else {
		// Two halves: the machines this runs on have two cores to share,
		// and more goroutines would only queue.
		var wg sync.WaitGroup
		var p2 bgPartial
		half := len(rows) / 2
		wg.Go(func() { p2 = bgRows(rows[half:], r, alpha, a, lnA4, dbA4) })
		p = bgRows(rows[:half], r, alpha, a, lnA4, dbA4)
		wg.Wait()
		p.ll += p2.ll
		p.gr += p2.gr
		p.gAlpha += p2.gAlpha
		p.ga += p2.ga
		p.gb += p2.gb
	}
	ll += p.ll
	if grad != nil {
		// Chain rule to the log scale (dθ = param · dparam), negated and
		// averaged like the value.
		grad[0] = -(gr + p.gr) * r / d.total
		grad[1] = -(gAlpha + p.gAlpha) * alpha / d.total
		grad[2] = -(ga + p.ga) * a / d.total
		grad[3] = -(gb + p.gb) * b / d.total
	}
	return -ll / d.total
}

// bgRows sums the row-dependent part (log-sum-exp of A3 and A4) and its
// partial derivatives. The gradient terms are cheap next to the logs and
// exps, so they are always computed.
func bgRows(rows []bgRow, r, alpha, a float64, lnA4, dbA4 []float64) bgPartial {
	var p bgPartial
	for i := range rows {
		row := &rows[i]
		rx := r + row.x
		lnT := math.Log(alpha + row.T)
		a3 := -rx * lnT
		if row.countOnly {
			p.ll += row.weight * a3
			p.gr -= row.weight * lnT
			p.gAlpha -= row.weight * rx / (alpha + row.T)
			continue
		}
		lnTx := math.Log(alpha + row.tx)
		a4 := lnA4[row.xi] - rx*lnTx
		// log(e^a3 + e^a4) without overflow, and w4 = e^a4 / (e^a3 + e^a4).
		var lse, w4 float64
		if diff := a4 - a3; diff > 0 {
			e := math.Exp(-diff)
			lse = a4 + math.Log1p(e)
			w4 = 1 / (1 + e)
		} else {
			e := math.Exp(diff)
			lse = a3 + math.Log1p(e)
			w4 = e / (1 + e)
		}
		w3 := 1 - w4
		p.ll += row.weight * lse
		p.gr -= row.weight * (w3*lnT + w4*lnTx)
		p.gAlpha -= row.weight * rx * (w3/(alpha+row.T) + w4/(alpha+row.tx))
		p.ga += row.weight * w4 / a
		p.gb += row.weight * w4 * dbA4[row.xi]
	}
	return p
}

// LogLikelihood is the BG/NBD log-likelihood of the customers under p.
func (p BGNBD) LogLikelihood(cs []Customer) (float64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	d, err := newBGData(cs)
	if err != nil {
		return 0, err
	}
	return -d.eval(p.theta(), nil) * d.total, nil
}

func (p BGNBD) theta() []float64 {
	return []float64{math.Log(p.R), math.Log(p.Alpha), math.Log(p.A), math.Log(p.B)}
}

// FitBGNBD fits the BG/NBD model to the customers by maximum likelihood.
// The parameters are optimised on the log scale, so they stay positive
// without constraints, with BFGS and the analytic gradient.
func FitBGNBD(ctx context.Context, cs []Customer) (BGNBDFit, error) {
	return FitBGNBDPenalized(ctx, cs, 0)
}

// FitBGNBDPenalized is FitBGNBD with an L2 penalty on the log parameters
// (see penalize), pulling them toward the starting point r = 1, α = the
// observed time per repeat purchase, a = 1, b = 2. LogLikelihood is the
// likelihood's own, without the penalty.
func FitBGNBDPenalized(ctx context.Context, cs []Customer, penalty float64) (BGNBDFit, error) {
	d, err := newBGData(cs)
	if err != nil {
		return BGNBDFit{}, err
	}
	if d.sumX == 0 {
		return BGNBDFit{}, ErrNoRepeatCustomers
	}
	// Start from a Gamma with shape 1 whose mean rate is the observed
	// repeat rate, and a dropout probability of a third: the optimiser
	// then starts on the right scale whatever the time unit.
	start := BGNBD{R: 1, Alpha: max(d.sumT, 1e-9) / d.sumX, A: 1, B: 2}
	obj, err := penalize(d.eval, start.theta(), penalty)
	if err != nil {
		return BGNBDFit{}, fmt.Errorf("BG/NBD: %w", err)
	}
	theta, conv, err := maximize(ctx, obj, start.theta())
	if err != nil {
		return BGNBDFit{Convergence: conv}, fmt.Errorf("BG/NBD: %w", err)
	}
	v := expAll(theta)
	fit := BGNBDFit{
		Params:      BGNBD{R: v[0], Alpha: v[1], A: v[2], B: v[3]},
		Customers:   len(cs),
		Convergence: conv,
	}
	if err := fit.Params.Validate(); err != nil {
		// exp of a finite log can still underflow to 0 or overflow: a
		// degenerate maximum on the boundary, not a fit to report.
		return BGNBDFit{Convergence: conv}, fmt.Errorf("BG/NBD: %w: %w", ErrNotConverged, err)
	}
	fit.LogLikelihood = -d.eval(theta, nil) * d.total
	fit.Covariance = covariance(obj, theta, d.total)
	return fit, nil
}

// ProbAlive is the probability that a customer with this history is still
// active at the end of the calibration period (FHL 2005, eq. 13 in the
// technical note):
//
//	P(alive) = 1 / (1 + δ(x>0) a/(b+x−1) ((α+T)/(α+t_x))^(r+x))
func (p BGNBD) ProbAlive(c Customer) float64 {
	if c.X == 0 {
		return 1 // nobody drops out before a repeat purchase
	}
	return 1 / (1 + math.Exp(p.lnDropTerm(c)))
}

// lnDropTerm is ln[a/(b+x−1) ((α+T)/(α+t_x))^(r+x)] for x > 0, the log of
// the odds that the customer has dropped out.
func (p BGNBD) lnDropTerm(c Customer) float64 {
	x := float64(c.X)
	return math.Log(p.A) - math.Log(p.B+x-1) + (p.R+x)*(math.Log(p.Alpha+c.T)-math.Log(p.Alpha+c.TX))
}

// ExpectedPurchases is the expected number of purchases in the next t time
// units of a customer with this history (FHL 2005, eq. 10):
//
//	E[Y(t) | x, t_x, T] = (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x)
//	                      · 2F1(r+x, b+x; a+b+x−1; z)] · P(alive)
//
// with z = t/(α+T+t). It is not computed through 2F1: see
// purchasesIfAlive for the series used instead, which needs no 2F1, has
// no singularity at a = 1 and sums positive terms only, so it stays
// accurate for any positive parameters, including a and b in the millions
// that a fit returns when dropout hardly varies between customers.
func (p BGNBD) ExpectedPurchases(c Customer, t float64) (float64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if err := checkCustomer(0, c); err != nil {
		return 0, err
	}
	if !(t >= 0) || math.IsInf(t, 0) {
		return 0, fmt.Errorf("horizon %v: must be finite and non-negative", t)
	}
	if t == 0 {
		return 0, nil
	}
	x := float64(c.X)
	z := t / (p.Alpha + c.T + t)
	e, err := purchasesIfAlive(p.R+x, z, p.B+x, p.A+p.B+x)
	if err != nil {
		return 0, fmt.Errorf("expected purchases over %v: %w", t, err)
	}
	if c.X == 0 {
		return e, nil
	}
	return e * p.ProbAlive(c), nil
}

// ExpectedPurchasesNew is the expected number of repeat purchases of a
// customer in the first t time units after their first purchase, that is
// before anything is known about them (FHL 2005, eq. 9):
//
//	E[X(t)] = (a+b−1)/(a−1) · [1 − (α/(α+t))^r · 2F1(r, b; a+b−1; t/(α+t))]
//
// computed like ExpectedPurchases, of which it is the case x = T = 0.
func (p BGNBD) ExpectedPurchasesNew(t float64) (float64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if !(t >= 0) || math.IsInf(t, 0) {
		return 0, fmt.Errorf("horizon %v: must be finite and non-negative", t)
	}
	if t == 0 {
		return 0, nil
	}
	z := t / (p.Alpha + t)
	e, err := purchasesIfAlive(p.R, z, p.B, p.A+p.B)
	if err != nil {
		return 0, fmt.Errorf("expected purchases over %v: %w", t, err)
	}
	return e, nil
}

// errSeries reports an expectation whose series cannot be summed to full
// precision within the term budget.
var errSeries = errors.New("expected purchases series does not converge")

// maxSeriesTerms bounds the work of one expectation (a few milliseconds).
// The series needs somewhat more terms than the purchases the customer
// would make in the horizon if they never dropped out (s·z/(1−z) below),
// so only a customer expected to buy about a million times reaches it.
const maxSeriesTerms = 1_000_000

// purchasesIfAlive is the expected number of purchases in the horizon of a
// customer still active now, whose purchase rate λ and dropout probability
// p have the posteriors Gamma(s, α+T) and Beta(a, b+x) (s = r+x; bx = b+x,
// abx = a+b+x), with z = t/(α+T+t).
//
// While active, the customer would make N purchases in the horizon, N
// negative binomial with P(N = n) = π_n = (s)_n/n! · (1−z)^s z^n once λ is
// integrated out. Each purchase is followed by a dropout with probability
// p, so the (k+1)-th of them happens only if none of the k before ended
// the relationship, which has probability
//
//	q_k = E[(1−p)^k] = (b+x)_k / (a+b+x)_k,
//
// and the expectation is
//
//	E = Σ_{n≥1} π_n S_n,   S_n = q_0 + … + q_{n−1}.
//
// This is FHL's closed form summed another way (it equals the 2F1 form
// term by term after Euler's transformation), but every term is positive,
// so there is no cancellation for short horizons, no 1/(a−1) to treat
// near a = 1, and nothing that grows with a and b: as a, b → ∞ at a fixed
// mean, q_k → (1−p)^k smoothly. Its cost is set by N and not by the
// parameters: the π_n fall off like z^n past the mode s·z/(1−z).
//
// The π_n are computed up to the common factor (1−z)^s, by their ratios
// from π_0 = 1, and the sum is divided by their sum Σ π_n (which is 1 in
// exact arithmetic) instead of multiplied by (1−z)^s: the factor, which
// underflows for frequent buyers, is never needed, and the rounding of z,
// raised to the power n in π_n, cancels out (without it, sums over 1e5
// terms drifted by 1e-11 and broke monotonicity in t).
//
// The sum stops when the bound on what is left falls below 1e-16 of it:
// past term n, π_{n+m} ≤ π_n ρ^m where ρ bounds the ratio
// π_{j+1}/π_j = (s+j)z/(j+1) for j ≥ n (it decreases toward z when s ≥ 1
// and increases toward z when s < 1), and S_{n+m} ≤ S_n + m·q_n since the
// q_k decrease, so the tail is at most π_n (S_n ρ/(1−ρ) + q_n ρ/(1−ρ)²).
func purchasesIfAlive(s, z, bx, abx float64) (float64, error) {
	if !(z >= 0 && z < 1) {
		return 0, fmt.Errorf("%w: z = %v outside [0, 1)", errSeries, z)
	}
	pm, norm, acc := 1.0, 1.0, 0.0 // π_n, Σ π_n and Σ π_n S_n so far, all up to (1−z)^s and a common scale
	sum, q := 0.0, 1.0             // S_n and q_n
	ratio := s * z                 // π_n/π_{n−1}
	converged := false
	for n := 1.0; n <= maxSeriesTerms; n++ {
		pm *= ratio
		sum += q
		q *= (bx + n - 1) / (abx + n - 1)
		norm += pm
		acc += pm * sum
		if pm > 1e100 {
			// Rescale on the way up to the mode; positive terms lose
			// nothing to it.
			norm /= pm
			acc /= pm
			pm = 1
		}
		ratio = (s + n) * z / (n + 1)
		// The tail test without divisions: pm (S ρ/(1−ρ) + q ρ/(1−ρ)²)
		// ≤ 1e-16 acc, multiplied through by (1−ρ)². It implies the same
		// test on the tail of Σ π_n, since acc ≤ S·norm.
		if rho := max(ratio, z); rho < 1 {
			if d := 1 - rho; pm*rho*(sum*d+q) <= 1e-16*acc*d*d {
				converged = true
				break
			}
		}
	}
	e := acc / norm
	if !converged || math.IsNaN(e) || math.IsInf(e, 0) {
		return 0, fmt.Errorf("%w: s=%v z=%v b+x=%v a+b+x=%v", errSeries, s, z, bx, abx)
	}
	return e, nil
}
