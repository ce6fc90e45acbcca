package feedback

import "time"

// BucketMS is the width of a rollup bucket: a quarter hour divides every
// time zone's offset from UTC, so local days, weeks and months are unions
// of whole buckets.
const BucketMS = 15 * 60 * 1000

// DayNumber is the local date of t in loc as days since 1970-01-01.
func DayNumber(t time.Time, loc *time.Location) int64 {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

// RollupKey is one row of the rollups.
type RollupKey struct {
	// Zone is "" for the quarter-hour rollup, else the reporting zone of
	// a local-day row.
	Zone string
	// Bucket is the quarter hour since the epoch (BucketMS), or the local
	// day (DayNumber).
	Bucket        int64
	Segment, Kind int
}

// RollupCounts are a row's counts: responses, the high (NPS promoters,
// CSAT 4–5) and low (NPS detractors) among them, and the sum of scores.
type RollupCounts struct{ N, High, Low, Sum int64 }

// Rollup is a change to the rollups: every response counts in its quarter
// hour and in its local day in each reporting zone.
type Rollup struct {
	Zones []*time.Location
	Rows  map[RollupKey]*RollupCounts
}

// NewRollup returns an empty change, by quarter hour and by local day in
// zones.
func NewRollup(zones []*time.Location) *Rollup {
	return &Rollup{Zones: zones, Rows: map[RollupKey]*RollupCounts{}}
}

// Add counts n responses (n < 0 takes them out) of kind k with score,
// given at atMS (milliseconds since the epoch), in segment.
func (r *Rollup) Add(atMS int64, segment int, k Kind, score int, n int64) {
	r.addTo(RollupKey{"", atMS / BucketMS, segment, int(k)}, k, score, n)
	for _, loc := range r.Zones {
		r.addTo(RollupKey{loc.String(), DayNumber(time.UnixMilli(atMS), loc), segment, int(k)}, k, score, n)
	}
}

func (r *Rollup) addTo(key RollupKey, k Kind, score int, n int64) {
	v := r.Rows[key]
	if v == nil {
		v = &RollupCounts{}
		r.Rows[key] = v
	}
	v.N += n
	v.Sum += int64(score) * n
	switch {
	case k == NPS && score >= PromoterMin, k == CSAT && score >= SatisfiedMin:
		v.High += n
	case k == NPS && score <= DetractorMax:
		v.Low += n
	}
}

// Bucket is the rollup of one stretch of time, segment and survey kind.
type Bucket struct {
	Start   time.Time
	Segment int
	Kind    Kind
	// N responses; High: promoters (NPS) or 4-5 (CSAT); Low: detractors
	// (NPS); Sum of the scores.
	N, High, Low, Sum int64
}

// Tally adds the bucket to t.
func (b Bucket) Tally(t *Tally) {
	switch b.Kind {
	case NPS:
		t.NPS += b.N
		t.Promoters += b.High
		t.Detractors += b.Low
	case CSAT:
		t.CSAT += b.N
		t.Satisfied += b.High
		t.CSATSum += b.Sum
	case CES:
		t.CES += b.N
		t.CESSum += b.Sum
	}
}
