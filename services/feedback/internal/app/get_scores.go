package app

import (
	"context"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// Scores reads the rollups for [from, to) in loc, for periods of g,
// overall (segment 0) or of one segment: whole local days from
// the day rollup when loc is a reporting zone, everything else from the
// quarter hours.
func (a *App) Scores(ctx context.Context, loc *time.Location, g feedback.Granularity, from, to time.Time, segment int) ([]feedback.Bucket, error) {
	quarters := func(from, to time.Time) ([]feedback.Bucket, error) {
		origin, width := Plan(loc, g, from, to)
		return a.store.Scores(ctx, from, to, origin, width, segment)
	}
	zone, ok, err := a.store.ScoreZone(ctx, loc.String())
	if err != nil {
		return nil, err
	}
	if !ok {
		return quarters(from, to)
	}
	midnight := func(day int64) time.Time {
		y, m, d := time.Unix(day*86400, 0).UTC().Date()
		return time.Date(y, m, d, 0, 0, 0, 0, zone)
	}
	first := feedback.DayNumber(from, zone)
	if !midnight(first).Equal(from) {
		first++
	}
	last := feedback.DayNumber(to, zone)
	if first >= last {
		return quarters(from, to)
	}
	out, err := a.store.ScoreDays(ctx, zone, first, last, segment)
	if err != nil {
		return nil, err
	}
	for _, part := range [][2]time.Time{{from, midnight(first)}, {midnight(last), to}} {
		if !part[0].Before(part[1]) {
			continue
		}
		bs, err := quarters(part[0], part[1])
		if err != nil {
			return nil, err
		}
		out = append(out, bs...)
	}
	return out, nil
}

// Plan is how the quarter-hour rollup is summed in SQL for periods of g in
// loc between from and to: while the zone keeps one offset (no daylight
// saving change in between), a day or week is a fixed number of quarter
// hours counted from the first period's start, so SQL sums whole periods;
// otherwise it sums the widest stretch that never crosses a period
// boundary (Width) and the periods are summed from those.
func Plan(loc *time.Location, g feedback.Granularity, from, to time.Time) (origin time.Time, width time.Duration) {
	if g == feedback.Day || g == feedback.Week {
		start := feedback.PeriodStart(from, g, loc)
		_, end := start.ZoneBounds()
		if end.IsZero() || !end.Before(to) {
			if g == feedback.Week {
				return start, 7 * 24 * time.Hour
			}
			return start, 24 * time.Hour
		}
	}
	return time.Unix(0, 0), Width(loc, from, to)
}

// Width is the widest stretch the rollup can be summed over in SQL
// without crossing a local period boundary of loc between from and to: an
// hour when every offset of the zone in that time is whole hours, a
// quarter hour otherwise (India, Nepal, Newfoundland...).
func Width(loc *time.Location, from, to time.Time) time.Duration {
	t := from.In(loc)
	for range 1000 { // a zone changes offset at most a few times a year
		_, off := t.Zone()
		if off%3600 != 0 {
			return feedback.BucketMS * time.Millisecond
		}
		_, end := t.ZoneBounds()
		if end.IsZero() || !end.Before(to) {
			return time.Hour
		}
		t = end
	}
	return feedback.BucketMS * time.Millisecond
}
