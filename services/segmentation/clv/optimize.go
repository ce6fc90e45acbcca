package clv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/optimize"
)

var (
	// ErrNoCustomers reports a fit asked of no customers.
	ErrNoCustomers = errors.New("no customers")
	// ErrNoRepeatCustomers reports a fit that needs repeat purchases and
	// got none: with every x = 0 the BG/NBD dropout and the Gamma-Gamma
	// spend parameters are not identified, and the likelihood has no
	// maximum.
	ErrNoRepeatCustomers = errors.New("no customers with repeat purchases")
	// ErrInvalidCustomer reports a summary no model can hold (negative
	// times, t_x > T, a repeat customer without monetary value...).
	ErrInvalidCustomer = errors.New("invalid customer summary")
	// ErrNotConverged reports that maximum likelihood found no maximum:
	// the optimiser stopped early or the likelihood was not finite.
	ErrNotConverged = errors.New("fit did not converge")
	// ErrInvalidParams reports model parameters outside their domain.
	ErrInvalidParams = errors.New("invalid model parameters")
)

// Convergence says how a maximum-likelihood fit ended.
type Convergence struct {
	// Status is gonum's termination status, e.g. "GradientThreshold".
	Status          string `json:"status"`
	Iterations      int    `json:"iterations"`
	FuncEvaluations int    `json:"func_evaluations"`
	// GradientNorm is the largest partial derivative of the mean
	// log-likelihood per customer, with respect to the log parameters,
	// at the optimum: close to zero at a true maximum.
	GradientNorm float64       `json:"gradient_norm"`
	Runtime      time.Duration `json:"runtime_ns"`
}

// objective is a negative mean log-likelihood over log parameters: it
// returns the value and, when grad is not nil, fills the gradient.
type objective func(theta, grad []float64) float64

// ErrBadPenalty reports a penalty coefficient that is negative or not
// finite.
var ErrBadPenalty = errors.New("penalty must be finite and non-negative")

// penalize adds coef·Σ(θᵢ − centerᵢ)² to obj, the L2 penalty on the log
// parameters that lifetimes' penalizer_coef puts on the parameters: a
// Gaussian prior on each log parameter, centred on the data-scaled
// starting point rather than on 1, so it does not pull α or γ toward a
// time unit or a currency. obj is a mean over customers, so the penalty
// weighs as much as the likelihood of 1/coef customers would.
func penalize(obj objective, center []float64, coef float64) (objective, error) {
	if !(coef >= 0) || math.IsInf(coef, 0) {
		return nil, fmt.Errorf("%w: %v", ErrBadPenalty, coef)
	}
	if coef == 0 {
		return obj, nil
	}
	return func(theta, grad []float64) float64 {
		f := obj(theta, grad)
		for i, t := range theta {
			d := t - center[i]
			f += coef * d * d
			if grad != nil {
				grad[i] += 2 * coef * d
			}
		}
		return f
	}, nil
}

// gradientTolerance is the largest gradient norm (of the mean
// log-likelihood, per log parameter) accepted as a maximum when the line
// search stops before the optimiser's own test passes: at 1e-5 the
// parameters are far inside the precision anyone publishes them at.
const gradientTolerance = 1e-5

// maximize minimises obj from theta0 with BFGS. Value and gradient are
// computed together and cached, because gonum asks for them separately at
// the same point and each costs a pass over every customer.
func maximize(ctx context.Context, obj objective, theta0 []float64) ([]float64, Convergence, error) {
	n := len(theta0)
	var (
		lastX    []float64
		lastF    float64
		lastGrad = make([]float64, n)
	)
	eval := func(x []float64) {
		if lastX != nil && slices.Equal(x, lastX) {
			return
		}
		lastX = append(lastX[:0], x...)
		lastF = obj(x, lastGrad)
		// A point where the likelihood overflows is a point the line
		// search must back away from, not a number to carry on with.
		if math.IsNaN(lastF) || math.IsInf(lastF, 0) || !allFinite(lastGrad) {
			lastF = math.Inf(1)
			clear(lastGrad)
		}
	}
	problem := optimize.Problem{
		Func: func(x []float64) float64 { eval(x); return lastF },
		Grad: func(grad, x []float64) { eval(x); copy(grad, lastGrad) },
		Status: func() (optimize.Status, error) {
			if err := ctx.Err(); err != nil {
				return optimize.Failure, err
			}
			return optimize.NotTerminated, nil
		},
	}
	settings := &optimize.Settings{
		GradientThreshold: 1e-7,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-13, Relative: 1e-13, Iterations: 50},
		MajorIterations:   1000,
	}
	res, err := optimize.Minimize(problem, theta0, settings, &optimize.BFGS{})
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, Convergence{}, ctxErr
	}
	if res == nil {
		return nil, Convergence{}, fmt.Errorf("%w: %w", ErrNotConverged, err)
	}
	grad := make([]float64, n)
	f := obj(res.X, grad)
	conv := Convergence{
		Status:          res.Status.String(),
		Iterations:      res.MajorIterations,
		FuncEvaluations: res.FuncEvaluations,
		GradientNorm:    infNorm(grad),
		Runtime:         res.Runtime,
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || !allFinite(res.X) || !allFinite(grad) {
		return nil, conv, fmt.Errorf("%w: likelihood not finite at the optimum (%s)", ErrNotConverged, conv.Status)
	}
	// A line search that can make no more progress ends gonum with an
	// error even at the maximum; the gradient says whether it is one.
	if conv.GradientNorm > gradientTolerance {
		if err == nil {
			err = errors.New(conv.Status)
		}
		return nil, conv, fmt.Errorf("%w: gradient norm %.3g after %d iterations: %w", ErrNotConverged, conv.GradientNorm, conv.Iterations, err)
	}
	return res.X, conv, nil
}

func allFinite(v []float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

func infNorm(v []float64) float64 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(x))
	}
	return m
}

// expAll turns log parameters back into parameters.
func expAll(theta []float64) []float64 {
	out := make([]float64, len(theta))
	for i, t := range theta {
		out[i] = math.Exp(t)
	}
	return out
}
