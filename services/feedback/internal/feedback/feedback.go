// Package feedback is the domain of the feedback service: survey responses
// (NPS, CSAT, CES), reviews, support tickets, the measures taken over them,
// the agony rules and the recovery cases they open. It knows nothing of
// gRPC, NATS or SQL.
package feedback

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Errors.
var (
	ErrScoreOutOfRange = errors.New("score out of range for the survey kind")
	ErrNotFound        = errors.New("not found")
	ErrResolved        = errors.New("recovery case already resolved")
	ErrClaimed         = errors.New("recovery case claimed by another agent")
	ErrInvalid         = errors.New("invalid input")
	// ErrAlreadyDone: the change asked for was made before; nothing to do.
	ErrAlreadyDone = errors.New("already done")
)

// Kind is a survey's kind; the values are those of feedback.v1.SurveyKind.
type Kind int

const (
	NPS  Kind = 1
	CSAT Kind = 2
	CES  Kind = 3
)

// Range is the inclusive score range of the kind.
func (k Kind) Range() (lo, hi int, ok bool) {
	switch k {
	case NPS:
		return 0, 10, true
	case CSAT:
		return 1, 5, true
	case CES:
		return 1, 7, true
	}
	return 0, 0, false
}

// Check rejects a score outside the kind's range.
func (k Kind) Check(score int) error {
	lo, hi, ok := k.Range()
	if !ok {
		return fmt.Errorf("%w: unknown survey kind %d", ErrInvalid, k)
	}
	if score < lo || score > hi {
		return fmt.Errorf("%w: %d not in %d..%d", ErrScoreOutOfRange, score, lo, hi)
	}
	return nil
}

// Response is one survey answer. Comment is personal data.
type Response struct {
	ID         string
	CustomerID string
	Kind       Kind
	Score      int
	Channel    string
	Comment    string
	OrderID    string
	TicketID   string
	At         time.Time
}

// Review is a customer's review on a platform. Text is personal data.
type Review struct {
	ID         string
	Platform   string
	CustomerID string
	Rating     int
	Text       string
	Product    string
	CreatedAt  time.Time
}

// ReviewResponse is the seller's answer to a review.
type ReviewResponse struct {
	ReviewID    string
	Platform    string
	Text        string
	RespondedAt time.Time
}

// Reason is why a customer is in agony; values are feedback.v1.AgonyReason.
type Reason int

const (
	SlowFirstResponse Reason = 1
	NegativeReview    Reason = 2
	NPSDetractor      Reason = 3
)

func (r Reason) String() string {
	switch r {
	case SlowFirstResponse:
		return "slow_first_response"
	case NegativeReview:
		return "negative_review"
	case NPSDetractor:
		return "nps_detractor"
	}
	return "unknown"
}

// Outcome closes a recovery case; values are feedback.v1.RecoveryOutcome.
type Outcome int

const (
	Recovered Outcome = 1
	NoAnswer  Outcome = 2
	Lost      Outcome = 3
)

// Thresholds of the scales.
const (
	PromoterMin      = 9 // NPS 9–10
	DetractorMax     = 6 // NPS 0–6
	SatisfiedMin     = 4 // CSAT 4–5
	NegativeReviewAt = 2 // a review of 2 stars or fewer
)

// Detractor reports whether a response is an NPS detractor, which puts the
// customer in agony.
func Detractor(r Response) bool { return r.Kind == NPS && r.Score <= DetractorMax }

// Negative reports whether a review puts the customer in agony.
func Negative(rating int) bool { return rating <= NegativeReviewAt }

// CaseID is a recovery case's id, derived from what raised it so that a
// redelivered input opens no second case.
func CaseID(r Reason, sourceRef string) string {
	switch r {
	case SlowFirstResponse:
		return "slow:" + sourceRef
	case NegativeReview:
		return "review:" + sourceRef
	}
	return "nps:" + sourceRef
}

// Case is a recovery case: one occasion of agony, worked by an agent.
type Case struct {
	ID         string
	CustomerID string
	Reason     Reason
	SourceRef  string
	OpenedAt   time.Time
	ClaimedBy  string
	ClaimedAt  time.Time
	ResolvedAt time.Time
	Outcome    Outcome
	Note       string
	// CLV is the customer's predicted value in minor units of Currency,
	// as segmentation last told it (0 when unknown).
	CLV      int64
	Currency string
	// CLVAsOf is when segmentation told it (zero: never).
	CLVAsOf time.Time
}

// Claim gives the case to agent, or renews the agent's claim. Another
// agent's claim stands until it is ttl old (0: a claim never lapses);
// then anyone may take the case over.
func (c *Case) Claim(agent string, now time.Time, ttl time.Duration) error {
	if !c.ResolvedAt.IsZero() {
		return ErrResolved
	}
	if c.heldByOther(agent, now, ttl) {
		return fmt.Errorf("%w: %s", ErrClaimed, c.ClaimedBy)
	}
	c.ClaimedBy, c.ClaimedAt = agent, now
	return nil
}

// Resolve closes the case with an outcome. Only the agent holding the
// claim may, or anyone once it has lapsed (see Claim); an unclaimed case
// is claimed by the agent who resolves it, so the record says who did.
// The same resolution again returns ErrAlreadyDone and changes nothing.
func (c *Case) Resolve(agent string, o Outcome, note string, now time.Time, ttl time.Duration) error {
	if !c.ResolvedAt.IsZero() {
		if c.ClaimedBy == agent && c.Outcome == o && c.Note == note {
			// A retry of the resolution that closed it (its answer was
			// lost): the same answer, nothing changes.
			return ErrAlreadyDone
		}
		return ErrResolved
	}
	if o < Recovered || o > Lost {
		return fmt.Errorf("%w: outcome %d", ErrInvalid, o)
	}
	if agent == "" {
		return fmt.Errorf("%w: no agent", ErrInvalid)
	}
	if c.heldByOther(agent, now, ttl) {
		return fmt.Errorf("%w: %s", ErrClaimed, c.ClaimedBy)
	}
	if c.ClaimedBy != agent {
		c.ClaimedBy, c.ClaimedAt = agent, now
	}
	c.Outcome, c.Note, c.ResolvedAt = o, note, now
	return nil
}

// heldByOther reports whether an agent other than agent holds a claim
// that has not lapsed.
func (c *Case) heldByOther(agent string, now time.Time, ttl time.Duration) bool {
	if c.ClaimedBy == "" || c.ClaimedBy == agent {
		return false
	}
	return ttl <= 0 || now.Sub(c.ClaimedAt) < ttl
}

// Tally counts responses for the measures. Sums are of scores.
type Tally struct {
	NPS, Promoters, Detractors int64
	CSAT, Satisfied, CSATSum   int64
	CES, CESSum                int64
}

// Add counts n responses of kind k with score.
func (t *Tally) Add(k Kind, score int, n int64) {
	switch k {
	case NPS:
		t.NPS += n
		if score >= PromoterMin {
			t.Promoters += n
		} else if score <= DetractorMax {
			t.Detractors += n
		}
	case CSAT:
		t.CSAT += n
		t.CSATSum += int64(score) * n
		if score >= SatisfiedMin {
			t.Satisfied += n
		}
	case CES:
		t.CES += n
		t.CESSum += int64(score) * n
	}
}

// Merge adds o to t.
func (t *Tally) Merge(o Tally) {
	t.NPS += o.NPS
	t.Promoters += o.Promoters
	t.Detractors += o.Detractors
	t.CSAT += o.CSAT
	t.Satisfied += o.Satisfied
	t.CSATSum += o.CSATSum
	t.CES += o.CES
	t.CESSum += o.CESSum
}

// NetPromoterScore is % promoters − % detractors, from −100 to 100; ok is
// false when there are no NPS responses (no score, rather than 0).
func (t Tally) NetPromoterScore() (nps float64, ok bool) {
	if t.NPS == 0 {
		return 0, false
	}
	return 100 * float64(t.Promoters-t.Detractors) / float64(t.NPS), true
}

// CSATShare is the share (0–1) of CSAT answers of 4 or 5.
func (t Tally) CSATShare() (float64, bool) {
	if t.CSAT == 0 {
		return 0, false
	}
	return float64(t.Satisfied) / float64(t.CSAT), true
}

// CSATMean is the mean CSAT score.
func (t Tally) CSATMean() (float64, bool) {
	if t.CSAT == 0 {
		return 0, false
	}
	return float64(t.CSATSum) / float64(t.CSAT), true
}

// CESMean is the mean effort score.
func (t Tally) CESMean() (float64, bool) {
	if t.CES == 0 {
		return 0, false
	}
	return float64(t.CESSum) / float64(t.CES), true
}

// Granularity is a reporting period; values are feedback.v1.Granularity.
type Granularity int

const (
	Day   Granularity = 1
	Week  Granularity = 2
	Month Granularity = 3
)

// PeriodStart is the start of the local day, ISO week (Monday) or month
// of t in loc.
func PeriodStart(t time.Time, g Granularity, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	switch g {
	case Week:
		day := time.Date(y, m, d, 0, 0, 0, 0, loc)
		return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	case Month:
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
	}
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// Percentiles returns the nearest-rank percentiles ps (0–100) of ds; zeros
// when ds is empty. ds is sorted in place.
func Percentiles(ds []time.Duration, ps ...float64) []time.Duration {
	out := make([]time.Duration, len(ps))
	if len(ds) == 0 {
		return out
	}
	slices.Sort(ds)
	for i, p := range ps {
		rank := int(math.Ceil(p / 100 * float64(len(ds))))
		out[i] = ds[min(max(rank, 1), len(ds))-1]
	}
	return out
}

// Profile is what segmentation says of a customer: the segment (values of
// segmentation.v1.Segment, 0 when not scored yet) and the predicted
// customer lifetime value in minor units of Currency.
type Profile struct {
	Segment  int
	CLV      int64
	Currency string
}

// Event is what the service publishes: a case opened (agony) or resolved.
type Event struct {
	ID         string
	CustomerID string
	At         time.Time
	Case       Case
	// Resolved is false for agony detected, true for a resolution;
	// StillInAgony tells whether other open cases remain.
	Resolved     bool
	StillInAgony bool
}

// AgonyEvent is the event of a newly opened case.
func AgonyEvent(c Case) Event {
	return Event{ID: "agony-" + c.ID, CustomerID: c.CustomerID, At: c.OpenedAt, Case: c}
}

// CaseUpdate is a recovery case as one transaction reads it, with how
// many other cases of its customer are open, and the events the change
// raises.
type CaseUpdate struct {
	Case      Case
	OtherOpen int
	// Now is when the change is made.
	Now    time.Time
	Events []Raised
}

// Claim gives the case to agent at now (see Case.Claim).
func (u *CaseUpdate) Claim(agent string, now time.Time, ttl time.Duration) error {
	u.Now = now
	return u.Case.Claim(agent, now, ttl)
}

// Resolve closes the case (see Case.Resolve) and raises its resolution,
// which tells whether the customer is still in agony (other cases open).
func (u *CaseUpdate) Resolve(agent string, o Outcome, note string, now time.Time, ttl time.Duration) error {
	u.Now = now
	if err := u.Case.Resolve(agent, o, note, now, ttl); err != nil {
		return err
	}
	u.Events = append(u.Events, Raised{Event: Event{ID: "resolved-" + u.Case.ID, CustomerID: u.Case.CustomerID, At: now, Case: u.Case,
		Resolved: true, StillInAgony: u.OtherOpen > 0}})
	return nil
}
