package feedback

import "time"

// TicketEventKind values are those of feedback.v1.TicketEventKind.
type TicketEventKind int

const (
	TicketOpened        TicketEventKind = 1
	TicketFirstResponse TicketEventKind = 2
	TicketResolved      TicketEventKind = 3
	TicketReopened      TicketEventKind = 4
)

// TicketEvent is one step of a support ticket, idempotent by ID.
type TicketEvent struct {
	ID         string
	TicketID   string
	CustomerID string
	Kind       TicketEventKind
	Channel    string
	At         time.Time
}

// Ticket is a support ticket's state, folded from its events. Events may
// arrive out of order, so each time keeps the earliest (opening, first
// response) or the latest (resolution, reopening) seen, and whether the
// ticket is resolved follows from the last two (Resolved).
type Ticket struct {
	ID              string
	CustomerID      string
	Channel         string
	OpenedAt        time.Time
	FirstResponseAt time.Time
	// ResolvedAt and ReopenedAt are the latest resolution and reopening.
	ResolvedAt time.Time
	ReopenedAt time.Time
	// FirstAnsweredAt is when the customer first heard back: the earliest
	// first response or resolution seen; a reopening does not change it:
	// the customer was answered all the same.
	FirstAnsweredAt time.Time
	Reopens         int
	// Agony is set once the ticket has raised its slow-response case, so
	// the sweep and later events never raise it twice.
	Agony bool
}

// Apply folds one event into the ticket.
func (t *Ticket) Apply(ev TicketEvent) {
	if t.ID == "" {
		t.ID, t.CustomerID = ev.TicketID, ev.CustomerID
	}
	if t.Channel == "" {
		t.Channel = ev.Channel
	}
	switch ev.Kind {
	case TicketOpened:
		if t.OpenedAt.IsZero() || ev.At.Before(t.OpenedAt) {
			t.OpenedAt = ev.At
		}
	case TicketFirstResponse:
		if t.FirstResponseAt.IsZero() || ev.At.Before(t.FirstResponseAt) {
			t.FirstResponseAt = ev.At
		}
		t.answered(ev.At)
	case TicketResolved:
		if ev.At.After(t.ResolvedAt) {
			t.ResolvedAt = ev.At
		}
		t.answered(ev.At)
	case TicketReopened:
		t.Reopens++
		if ev.At.After(t.ReopenedAt) {
			t.ReopenedAt = ev.At
		}
	}
}

// Resolved is when the ticket was resolved, or zero while it is open: its
// latest resolution, unless it was reopened then or later.
func (t *Ticket) Resolved() time.Time {
	if t.ResolvedAt.After(t.ReopenedAt) {
		return t.ResolvedAt
	}
	return time.Time{}
}

func (t *Ticket) answered(at time.Time) {
	if t.FirstAnsweredAt.IsZero() || at.Before(t.FirstAnsweredAt) {
		t.FirstAnsweredAt = at
	}
}

// Answered is when the customer first heard back: the first response, or
// the resolution when it came without one, whether or not the ticket was
// reopened since.
func (t *Ticket) Answered() time.Time { return t.FirstAnsweredAt }

// SlowFirstResponse reports whether the ticket has waited longer than
// threshold for its first response by now: answered late, or still
// unanswered past it. A ticket whose case was already raised is not
// reported again.
func (t *Ticket) SlowFirstResponse(now time.Time, threshold time.Duration) bool {
	if t.Agony || t.OpenedAt.IsZero() {
		return false
	}
	if a := t.Answered(); !a.IsZero() {
		return a.Sub(t.OpenedAt) > threshold
	}
	return now.Sub(t.OpenedAt) > threshold
}

// OpenCase marks the ticket's agony raised and returns its recovery case.
func (t *Ticket) OpenCase(now time.Time) Case {
	t.Agony = true
	return Case{ID: CaseID(SlowFirstResponse, t.ID), CustomerID: t.CustomerID, Reason: SlowFirstResponse, SourceRef: t.ID, OpenedAt: now}
}
