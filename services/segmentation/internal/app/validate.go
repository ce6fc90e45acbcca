package app

import (
	"context"
	"fmt"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// Validation is a holdout validation on the live customers.
type Validation struct {
	*clv.Validation
	// CalibrationEnd and HoldoutEnd are the last days (UTC) of the two
	// periods; HoldoutDays the length of the holdout.
	CalibrationEnd, HoldoutEnd time.Time
	HoldoutDays                int
}

// Validate fits the models on every customer's purchase days up to
// calibrationEnd and compares what they predict for the days after it, up
// to holdoutEnd (the zero time: the latest purchase day), with what the
// customers bought then (clv.Validate). Both are UTC calendar days,
// inclusive. Customers whose first purchase is after calibrationEnd are
// left out. It reads a snapshot and changes nothing: the model in use
// stays.
func (s *App) Validate(ctx context.Context, calibrationEnd, holdoutEnd time.Time) (Validation, error) {
	cs, err := s.st.Customers(ctx)
	if err != nil {
		return Validation{}, err
	}
	calDay := segment.DayNumber(calibrationEnd)
	holdDay := segment.DayNumber(holdoutEnd)
	if holdoutEnd.IsZero() {
		holdDay = 0
		for _, c := range cs {
			holdDay = max(holdDay, c.Features.LastOrderDay())
		}
	}
	if holdDay <= calDay {
		return Validation{}, fmt.Errorf("%w: the holdout period must end after the calibration end %s, not on %s", clv.ErrBadHoldout,
			dayDate(calDay).Format(time.DateOnly), dayDate(holdDay).Format(time.DateOnly))
	}
	sums, hold := splitHoldout(cs, calDay, holdDay)
	v, err := clv.Validate(ctx, sums, hold, clv.ValidateOptions{Unit: clv.Day, Length: float64(holdDay - calDay), FittedAt: s.opts.Now().UTC()})
	if err != nil {
		return Validation{}, err
	}
	return Validation{Validation: v, CalibrationEnd: dayDate(calDay), HoldoutEnd: dayDate(holdDay), HoldoutDays: int(holdDay - calDay)}, nil
}

// splitHoldout summarises each customer's purchase days up to calDay, in
// days, and counts those after it up to holdDay, as clv.SplitHoldout does
// with transactions.
func splitHoldout(cs []segment.Customer, calDay, holdDay int32) ([]clv.Customer, []clv.Holdout) {
	sums := make([]clv.Customer, 0, len(cs))
	hold := make([]clv.Holdout, 0, len(cs))
	for _, c := range cs {
		days := c.Features.Days
		if c.Features.Orders <= 0 || len(days) == 0 || days[0].Day > calDay {
			continue
		}
		first, last := days[0].Day, days[0].Day
		sum := clv.Customer{ID: c.Features.CustomerID, T: float64(calDay - first)}
		var repeat int64
		var h clv.Holdout
		for _, d := range days[1:] {
			switch {
			case d.Day <= calDay:
				sum.X++
				repeat += d.Value
				last = d.Day
			case d.Day <= holdDay:
				h.Purchases++
				h.Value += float64(d.Value)
			}
		}
		if sum.X > 0 {
			sum.TX = float64(last - first)
			sum.Monetary = float64(repeat) / float64(sum.X)
		}
		sums = append(sums, sum)
		hold = append(hold, h)
	}
	return sums, hold
}

// dayDate is the UTC midnight of a day number.
func dayDate(day int32) time.Time {
	return time.Unix(int64(day)*86400, 0).UTC()
}
