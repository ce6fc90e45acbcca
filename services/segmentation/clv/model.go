package clv

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Model is a fitted pair of BG/NBD (purchase counts) and Gamma-Gamma
// (spend) models over one customer base, enough to value any customer
// summarised the same way (same Unit, same currency).
type Model struct {
	Unit     Unit      `json:"unit"`
	FittedAt time.Time `json:"fitted_at"`

	BGNBD                   BGNBD       `json:"bgnbd"`
	BGNBDLogLikelihood      float64     `json:"bgnbd_log_likelihood"`
	BGNBDConvergence        Convergence `json:"bgnbd_convergence"`
	GammaGamma              GammaGamma  `json:"gamma_gamma"`
	GammaGammaLogLikelihood float64     `json:"gamma_gamma_log_likelihood"`
	GammaGammaConvergence   Convergence `json:"gamma_gamma_convergence"`

	// Customers is the number of customers in the BG/NBD fit;
	// RepeatCustomers those in the Gamma-Gamma fit (x > 0 with a positive
	// mean repeat value); ZeroValueRepeatCustomers the repeat customers
	// left out of it for a zero mean.
	Customers                int `json:"customers"`
	RepeatCustomers          int `json:"repeat_customers"`
	ZeroValueRepeatCustomers int `json:"zero_value_repeat_customers"`

	// BGNBDPenalty and GammaGammaPenalty are the L2 penalty coefficients
	// the fits used (0: plain maximum likelihood); see
	// PenalizedBelowRepeatCustomers.
	BGNBDPenalty      float64 `json:"bgnbd_penalty,omitempty"`
	GammaGammaPenalty float64 `json:"gamma_gamma_penalty,omitempty"`

	// BGNBDCovariance (ln r, ln α, ln a, ln b) and GammaGammaCovariance
	// (ln p, ln q, ln γ) are the asymptotic covariances of the log
	// parameters, the inverse Hessian of the (penalised) negative
	// log-likelihood at the optimum; nil when it is not positive definite
	// or the model was fitted before they were kept. They give the
	// standard errors (BGNBDStdErrors) and Predict's intervals.
	BGNBDCovariance      [][]float64 `json:"bgnbd_covariance,omitempty"`
	GammaGammaCovariance [][]float64 `json:"gamma_gamma_covariance,omitempty"`
}

// Fit fits both models to the customers, summarised in unit. fittedAt is
// recorded as given (the caller's clock, so tests and replays are
// reproducible). Below MinRepeatCustomers or MinHistoryDays it fits
// nothing and returns ErrNotEnoughHistory; below
// PenalizedBelowRepeatCustomers it penalises both fits.
func Fit(ctx context.Context, cs []Customer, unit Unit, fittedAt time.Time) (*Model, error) {
	if !unit.valid() {
		return nil, ErrBadUnit
	}
	if len(cs) == 0 {
		return nil, ErrNoCustomers
	}
	repeat, err := checkEvidence(cs, unit)
	if err != nil {
		return nil, err
	}
	var bgPenalty, ggPenalty float64
	if repeat < PenalizedBelowRepeatCustomers {
		bgPenalty, ggPenalty = 1/float64(len(cs)), 1/float64(repeat)
	}
	bg, err := FitBGNBDPenalized(ctx, cs, bgPenalty)
	if err != nil {
		return nil, err
	}
	gg, err := FitGammaGammaPenalized(ctx, cs, ggPenalty)
	if err != nil {
		return nil, err
	}
	return &Model{
		Unit:                     unit,
		FittedAt:                 fittedAt,
		BGNBD:                    bg.Params,
		BGNBDLogLikelihood:       bg.LogLikelihood,
		BGNBDConvergence:         bg.Convergence,
		GammaGamma:               gg.Params,
		GammaGammaLogLikelihood:  gg.LogLikelihood,
		GammaGammaConvergence:    gg.Convergence,
		Customers:                bg.Customers,
		RepeatCustomers:          gg.Customers,
		ZeroValueRepeatCustomers: gg.Skipped,
		BGNBDPenalty:             bgPenalty,
		GammaGammaPenalty:        ggPenalty,
		BGNBDCovariance:          bg.Covariance,
		GammaGammaCovariance:     gg.Covariance,
	}, nil
}

// CLVOptions set the horizon and discounting of Model.CLV.
type CLVOptions struct {
	// Horizon is how far ahead to value purchases, in the model's Unit.
	Horizon float64
	// Step is the length of one discounting period in the model's Unit;
	// 0 means one month (365.25/12 days).
	Step float64
	// AnnualDiscountRate is the yearly cost of capital, e.g. 0.10 for
	// 10 %; 0 leaves future purchases undiscounted.
	AnnualDiscountRate float64
}

// DaysPerMonth is the mean calendar month, the default discounting step.
const DaysPerMonth = 365.25 / 12

// CLV is the expected discounted value of the customer's purchases over
// the next o.Horizon time units. The horizon is cut into steps of o.Step
// (the last one shorter if it does not divide evenly); in step k, ending
// at t_k, the customer is expected to make
//
//	E[Y(t_k) | x, t_x, T] − E[Y(t_{k−1}) | x, t_x, T]
//
// purchases (BG/NBD, conditional on their history), each worth the
// Gamma-Gamma expected spend E[Z | x, m], discounted from the end of the
// step by (1 + AnnualDiscountRate)^(−t_k in years). Purchases are counted
// as if made at the end of their step, a conservative choice the step
// length bounds. The value is in the currency units of Monetary.
func (m *Model) CLV(c Customer, o CLVOptions) (float64, error) {
	if !m.Unit.valid() {
		return 0, ErrBadUnit
	}
	spend, err := m.GammaGamma.ExpectedSpend(c)
	if err != nil {
		return 0, err
	}
	return m.clv(c, o, spend, -1)
}

// clv is CLV with the expected spend known and, when last is not
// negative, the expected purchases over the whole horizon too (the last
// step's), which Predict has already summed.
func (m *Model) clv(c Customer, o CLVOptions, spend, last float64) (float64, error) {
	if !(o.Horizon >= 0) || math.IsInf(o.Horizon, 0) {
		return 0, fmt.Errorf("CLV horizon %v: must be finite and non-negative", o.Horizon)
	}
	if !(o.AnnualDiscountRate >= 0) || math.IsInf(o.AnnualDiscountRate, 0) {
		return 0, fmt.Errorf("CLV discount rate %v: must be finite and non-negative", o.AnnualDiscountRate)
	}
	step := o.Step
	if step == 0 {
		step = DaysPerMonth / m.Unit.Days()
	}
	if !(step > 0) || math.IsInf(step, 0) {
		return 0, fmt.Errorf("CLV step %v: must be finite and positive", o.Step)
	}
	if o.Horizon/step > 100_000 {
		return 0, fmt.Errorf("CLV horizon %v in steps of %v: more than 100000 steps", o.Horizon, step)
	}
	yearsPerUnit := m.Unit.Days() / 365.25
	logDiscount := math.Log1p(o.AnnualDiscountRate)
	var value, prev float64
	for k := 1; ; k++ {
		t := min(float64(k)*step, o.Horizon)
		cum := last
		if t < o.Horizon || last < 0 {
			var err error
			if cum, err = m.BGNBD.ExpectedPurchases(c, t); err != nil {
				return 0, err
			}
		}
		value += (cum - prev) * math.Exp(-logDiscount*t*yearsPerUnit)
		prev = cum
		if t >= o.Horizon {
			break
		}
	}
	return value * spend, nil
}
