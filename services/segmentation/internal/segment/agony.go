package segment

import "time"

// AgonyMark is one fact about a customer's agony from the feedback
// service: as of At, the customer is in agony (On) or no longer is.
//
// An agony event is a mark On. A recovery resolution is a mark Off only
// when its outcome is "recovered" and no other recovery case of the
// customer is still open; a resolution "lost" or "no answer" (or one
// that leaves cases open) is a mark On: the customer was in agony and
// was not won back, so the flag stays — until a later recovered
// resolution clears it.
type AgonyMark struct {
	// EventID names the event (logs only: ordering, not ids, makes the
	// marks idempotent).
	EventID    string
	CustomerID string
	On         bool
	At         time.Time
}

// AgonyState is a customer's agony and the time of the mark it comes
// from; the zero value is a customer without agony and without marks.
type AgonyState struct {
	On   bool
	AsOf time.Time
}

// Apply returns the state after mark m and whether m took effect. A mark
// older than the state is ignored, so that an old agony event replayed
// after a newer clearing does not set the flag again; of two marks at the
// same instant, agony wins, whatever their order of arrival. A mark that
// repeats the state still moves AsOf forward.
func (s AgonyState) Apply(m AgonyMark) (AgonyState, bool) {
	switch {
	case m.At.After(s.AsOf):
		return AgonyState{On: m.On, AsOf: m.At}, true
	case m.At.Equal(s.AsOf) && m.On && !s.On:
		return AgonyState{On: true, AsOf: m.At}, true
	}
	return s, false
}
