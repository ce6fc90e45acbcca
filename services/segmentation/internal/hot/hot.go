// Package hot is segmentation's hot store: the derived state reads need
// fast — profiles, leaderboards by CLV and by spend, segment membership,
// population counters and the summary of the last scoring run. It holds
// nothing that cannot be rebuilt from the SQL store. Two implementations
// serve the same interface: Redis for the distributed deployment, and an
// in-process one for the single process without Redis; one contract suite
// runs against both.
package hot

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// ErrNotFound is returned for a customer the hot store does not hold.
var ErrNotFound = errors.New("customer not found")

// Ranking is what a leaderboard orders customers by.
type Ranking int

const (
	ByCLV Ranking = iota + 1
	BySpend
)

// Ranked is one leaderboard entry; Value is in minor units.
type Ranked struct {
	CustomerID string
	Value      int64
}

// Summary is the population-wide result of the last scoring run.
type Summary struct {
	ScoredAt time.Time `json:"scored_at"`
	// Customers scored in the run.
	Customers int `json:"customers"`
	// Model is nil until a fit succeeded.
	Model *clv.Model `json:"model,omitempty"`
	// CLV is the distribution of predicted CLV over the base.
	CLV []segment.Quantile `json:"clv,omitempty"`
}

// Store is the hot store. Writes come from one writer at a time (the
// scoring job and the consumer take turns); reads may run at any time.
type Store interface {
	// Put writes profiles, moving each customer between leaderboards,
	// segments and counters by the difference from the profile it held.
	Put(ctx context.Context, profiles []segment.Profile) error
	// Profile returns one customer's profile, or ErrNotFound.
	Profile(ctx context.Context, customerID string) (segment.Profile, error)
	// Top returns up to n customers with the highest value, ties in
	// descending customer id order.
	Top(ctx context.Context, by Ranking, n int) ([]Ranked, error)
	// Members returns up to n customers of a segment with ids after the
	// given one, in id order: a stable cursor for paging.
	Members(ctx context.Context, s segment.Segment, after string, n int) ([]string, error)
	// Population returns segment sizes and value and the order-count
	// histogram.
	Population(ctx context.Context) (*segment.Population, error)
	// SetSummary and Summary keep the last scoring run's summary.
	SetSummary(ctx context.Context, s Summary) error
	Summary(ctx context.Context) (Summary, error)
	// Replace rebuilds everything from profiles and a summary, then marks
	// the store built.
	Replace(ctx context.Context, profiles []segment.Profile, s Summary) error
	// Built reports whether the store was rebuilt since it was last empty
	// (a flushed Redis is not, and must be rebuilt before it is trusted).
	Built(ctx context.Context) (bool, error)
}

// onBoard is whether a profile has a place on a leaderboard, and its value.
func onBoard(p *segment.Profile, by Ranking) (int64, bool) {
	if p == nil || p.Orders <= 0 {
		return 0, false
	}
	if by == ByCLV {
		if p.Prediction == nil {
			return 0, false
		}
		return p.Prediction.CLV, true
	}
	return p.TotalValue, true
}

// inSegment is the segment whose membership the profile holds, if any.
func inSegment(p *segment.Profile) (segment.Segment, bool) {
	if p == nil || p.Orders <= 0 || p.Segment == segment.Unscored {
		return 0, false
	}
	return p.Segment, true
}

// topN keeps the n greatest of the entries offered, ordered as Top
// promises, without sorting everything offered.
type topN struct {
	n   int
	out []Ranked
}

func before(a, b Ranked) bool {
	if a.Value != b.Value {
		return a.Value > b.Value
	}
	return a.CustomerID > b.CustomerID
}

func (t *topN) offer(r Ranked) {
	if len(t.out) == t.n && !before(r, t.out[len(t.out)-1]) {
		return
	}
	i, _ := slices.BinarySearchFunc(t.out, r, func(a, b Ranked) int {
		if before(a, b) {
			return -1
		}
		if before(b, a) {
			return 1
		}
		return 0
	})
	t.out = slices.Insert(t.out, i, r)
	if len(t.out) > t.n {
		t.out = t.out[:t.n]
	}
}

// firstN keeps the n smallest ids after a cursor, in order.
type firstN struct {
	n     int
	after string
	out   []string
}

func (f *firstN) offer(id string) {
	if id <= f.after || (len(f.out) == f.n && id >= f.out[len(f.out)-1]) {
		return
	}
	i, _ := slices.BinarySearchFunc(f.out, id, strings.Compare)
	f.out = slices.Insert(f.out, i, id)
	if len(f.out) > f.n {
		f.out = f.out[:f.n]
	}
}
