package feedback

import (
	"context"
	"sort"
	"time"
)

// Input is one piece of intake; exactly one of the pointers is set.
type Input struct {
	// Ctx is the trace of the call or message the input came with; the
	// rules only hand it on to the events the input raises.
	Ctx            context.Context
	Response       *Response
	Review         *Review
	ReviewResponse *ReviewResponse
	Ticket         *TicketEvent
}

// customerID is the customer the input is about ("" for a seller's
// response).
func (x Input) customerID() string {
	switch {
	case x.Response != nil:
		return x.Response.CustomerID
	case x.Review != nil:
		return x.Review.CustomerID
	case x.Ticket != nil:
		return x.Ticket.CustomerID
	}
	return ""
}

// Customers are the customers a batch of intake is about, each once, in
// the order they come.
func Customers(in []Input) []string {
	var ids []string
	seen := map[string]bool{}
	for _, x := range in {
		if id := x.customerID(); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// InputOutcome is what became of one input.
type InputOutcome int

const (
	Applied InputOutcome = iota + 1
	// Duplicate: the source's id was seen before; nothing changed.
	Duplicate
)

// ReviewKey is a review's key across platforms.
func ReviewKey(platform, reviewID string) string { return platform + "/" + reviewID }

// Customer is what the service keeps of a customer: what segmentation
// last told of it.
type Customer struct {
	Profile
	// Known: segmentation told the profile. Otherwise the customer's
	// responses have waited for their segment since PendingSince (zero:
	// none waits).
	Known        bool
	PendingSince time.Time
	// Changed: the batch changed it.
	Changed bool
}

// Scored is a stored response as the rollups count it.
type Scored struct {
	AtMS  int64
	Kind  Kind
	Score int
}

// SegmentedResponse is a response with the segment it counts in; Pending:
// the segment is not known yet (0 until it is filled in).
type SegmentedResponse struct {
	*Response
	Segment int
	Pending bool
}

// Raised is an event to publish; Ctx is the trace it continues (nil: the
// batch's).
type Raised struct {
	Ctx   context.Context
	Event Event
}

// Keys are what a batch of intake reads.
type Keys struct {
	Responses, Reviews, ReviewResponses, TicketEvents, Tickets, Customers []string
	// Profiled are the customers the batch brings segmentation's profiles
	// of: their responses waiting for a segment are read (Batch.Pending).
	Profiled []string
}

// IntakeKeys are the keys a batch of intake with profiles reads.
func IntakeKeys(in []Input, profiles map[string]Profile) Keys {
	var k Keys
	for _, x := range in {
		switch {
		case x.Response != nil:
			k.Responses = append(k.Responses, x.Response.ID)
			k.Customers = append(k.Customers, x.Response.CustomerID)
		case x.Review != nil:
			k.Reviews = append(k.Reviews, ReviewKey(x.Review.Platform, x.Review.ID))
			k.Customers = append(k.Customers, x.Review.CustomerID)
		case x.ReviewResponse != nil:
			k.ReviewResponses = append(k.ReviewResponses, ReviewKey(x.ReviewResponse.Platform, x.ReviewResponse.ReviewID))
		case x.Ticket != nil:
			k.TicketEvents = append(k.TicketEvents, x.Ticket.ID)
			k.Tickets = append(k.Tickets, x.Ticket.TicketID)
			k.Customers = append(k.Customers, x.Ticket.CustomerID)
		}
	}
	for id := range profiles {
		k.Customers = append(k.Customers, id)
		k.Profiled = append(k.Profiled, id)
	}
	return k
}

// Batch is one transaction's worth of intake or sweeping: what the store
// read for it (the fields above Now), and what the rules changed, which
// the store writes.
type Batch struct {
	// Seen* are the keys of Keys already stored.
	SeenResponses, SeenReviews, SeenReviewResponses, SeenTicketEvents map[string]bool
	// Customers and Tickets are those of Keys that are stored; the rules
	// add the new ones.
	Customers map[string]*Customer
	Tickets   map[string]*Ticket
	// Pending are the responses still waiting for their segment of the
	// Keys.Profiled customers.
	Pending map[string][]Scored
	// Rollup counts by quarter hour and by local day in the reporting
	// zones the store read; nil when the batch writes no scores.
	Rollup *Rollup

	// Now is when the batch is recorded.
	Now             time.Time
	Outcomes        []InputOutcome
	Responses       []SegmentedResponse
	Reviews         []*Review
	ReviewResponses []*ReviewResponse
	TicketEvents    []*TicketEvent
	// ChangedTickets are the ids of the tickets to write.
	ChangedTickets []string
	Cases          []Case
	Events         []Raised
	// Filled are the customers whose pending responses take the segment
	// segmentation now told.
	Filled []string
}

// NewBatch returns an empty batch for a store to fill in.
func NewBatch() *Batch {
	return &Batch{SeenResponses: map[string]bool{}, SeenReviews: map[string]bool{}, SeenReviewResponses: map[string]bool{},
		SeenTicketEvents: map[string]bool{}, Customers: map[string]*Customer{}, Tickets: map[string]*Ticket{},
		Pending: map[string][]Scored{}}
}

// Record applies segmentation's profiles and a batch of intake at now. An
// input whose source id was seen before is a duplicate and changes
// nothing. A response counts in the segment its customer has, or waits
// for it (segment 0) when segmentation has not told it; a profile gives
// the customer's waiting responses its segment. An NPS detractor, a
// negative review and a ticket answered later than threshold (or still
// unanswered past it) open a recovery case, whose event is raised.
func (b *Batch) Record(in []Input, profiles map[string]Profile, now time.Time, threshold time.Duration) {
	b.Now = now
	for id, p := range profiles {
		c := b.customer(id)
		if !c.PendingSince.IsZero() {
			b.Filled = append(b.Filled, id)
			for _, r := range b.Pending[id] {
				b.Rollup.Add(r.AtMS, 0, r.Kind, r.Score, -1)
				b.Rollup.Add(r.AtMS, p.Segment, r.Kind, r.Score, 1)
			}
		}
		c.Profile, c.Known, c.PendingSince, c.Changed = p, true, time.Time{}, true
	}
	sort.Strings(b.Filled)
	b.Outcomes = make([]InputOutcome, len(in))
	changed := map[string]context.Context{}
	for i, x := range in {
		if b.record(x, now, changed) {
			b.Outcomes[i] = Applied
		} else {
			b.Outcomes[i] = Duplicate
		}
	}
	for id := range changed {
		b.ChangedTickets = append(b.ChangedTickets, id)
	}
	sort.Strings(b.ChangedTickets)
	for _, id := range b.ChangedTickets {
		if t := b.Tickets[id]; t.SlowFirstResponse(now, threshold) {
			b.open(changed[id], t.OpenCase(now))
		}
	}
}

// record applies one input and reports whether it was new; changed
// collects the tickets it changed with the trace of their latest event.
func (b *Batch) record(x Input, now time.Time, changed map[string]context.Context) bool {
	switch {
	case x.Response != nil:
		r := x.Response
		if b.SeenResponses[r.ID] {
			return false
		}
		b.SeenResponses[r.ID] = true
		seg, pending := b.segmentOf(r.CustomerID, now)
		b.Responses = append(b.Responses, SegmentedResponse{Response: r, Segment: seg, Pending: pending})
		b.Rollup.Add(epochMS(r.At), seg, r.Kind, r.Score, 1)
		if Detractor(*r) {
			b.open(x.Ctx, Case{ID: CaseID(NPSDetractor, r.ID), CustomerID: r.CustomerID, Reason: NPSDetractor, SourceRef: r.ID, OpenedAt: now})
		}
	case x.Review != nil:
		r := x.Review
		key := ReviewKey(r.Platform, r.ID)
		if b.SeenReviews[key] {
			return false
		}
		b.SeenReviews[key] = true
		b.segmentOf(r.CustomerID, now)
		b.Reviews = append(b.Reviews, r)
		if Negative(r.Rating) {
			b.open(x.Ctx, Case{ID: CaseID(NegativeReview, key), CustomerID: r.CustomerID, Reason: NegativeReview, SourceRef: key, OpenedAt: now})
		}
	case x.ReviewResponse != nil:
		r := x.ReviewResponse
		key := ReviewKey(r.Platform, r.ReviewID)
		if b.SeenReviewResponses[key] {
			return false
		}
		b.SeenReviewResponses[key] = true
		b.ReviewResponses = append(b.ReviewResponses, r)
	case x.Ticket != nil:
		ev := x.Ticket
		if b.SeenTicketEvents[ev.ID] {
			return false
		}
		b.SeenTicketEvents[ev.ID] = true
		b.segmentOf(ev.CustomerID, now)
		t := b.Tickets[ev.TicketID]
		if t == nil {
			t = &Ticket{}
			b.Tickets[ev.TicketID] = t
		}
		t.Apply(*ev)
		changed[ev.TicketID] = x.Ctx
		b.TicketEvents = append(b.TicketEvents, ev)
	}
	return true
}

// Sweep opens the case of every ticket of the batch that has waited
// longer than threshold for its first response by now.
func (b *Batch) Sweep(now time.Time, threshold time.Duration) {
	b.Now = now
	ids := make([]string, 0, len(b.Tickets))
	for id := range b.Tickets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if t := b.Tickets[id]; t.SlowFirstResponse(now, threshold) {
			b.ChangedTickets = append(b.ChangedTickets, id)
			b.open(nil, t.OpenCase(now))
		}
	}
}

func (b *Batch) open(ctx context.Context, c Case) {
	b.Cases = append(b.Cases, c)
	b.Events = append(b.Events, Raised{Ctx: ctx, Event: AgonyEvent(c)})
}

func (b *Batch) customer(id string) *Customer {
	c := b.Customers[id]
	if c == nil {
		c = &Customer{}
		b.Customers[id] = c
	}
	return c
}

// segmentOf is the segment a new response of the customer counts in, and
// whether it waits for it, in which case the customer is marked waiting.
func (b *Batch) segmentOf(id string, now time.Time) (int, bool) {
	c := b.customer(id)
	if c.Known {
		return c.Segment, false
	}
	if c.PendingSince.IsZero() {
		c.PendingSince, c.Changed = now, true
	}
	return 0, true
}

// epochMS is t in milliseconds since the epoch, 0 for the zero time.
func epochMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
