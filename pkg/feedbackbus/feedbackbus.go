// Package feedbackbus is the contract of the FEEDBACK stream that the
// feedback service writes and other services (segmentation) read: the
// stream's name and its per-customer subjects. It lives in pkg so that a
// reader finds them without importing the feedback service's internals;
// the stream's configuration is in pkg/streams.
package feedbackbus

import (
	"errors"
	"fmt"
)

// Stream and subjects.
const (
	// Stream holds the feedback service's events.
	Stream = "FEEDBACK"
	// Prefix + <event>.<customer_id> is an event's subject.
	Prefix = "boomerang.feedback.v1."
	// SubjectAgony and SubjectRecovered are the event tokens of the
	// subjects: agony detected, recovery resolved.
	SubjectAgony     = "agony"
	SubjectRecovered = "recovery_resolved"
)

// Subject is the subject of an event about a customer.
func Subject(token, customerID string) string { return Prefix + token + "." + customerID }

// ErrSubjectMismatch is returned for an event whose subject is not the
// one of its own kind and customer.
var ErrSubjectMismatch = errors.New("subject disagrees with payload")

// CheckSubject tells whether an event with this token and customer was
// published on its own subject. Readers apply the payload, but the bus's
// permissions, ordering and erasure go by the subject: an event about one
// customer on another's subject is refused.
func CheckSubject(subject, token, customerID string) error {
	if want := Subject(token, customerID); subject != want {
		return fmt.Errorf("%w: on %q, want %q", ErrSubjectMismatch, subject, want)
	}
	return nil
}
