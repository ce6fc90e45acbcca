// Package feedbackbus is the contract of the FEEDBACK stream that the
// feedback service writes and other services (segmentation) read: the
// stream's name and configuration and its per-customer subjects. It lives
// in pkg so that a reader can create the stream before the feedback
// service first runs, with the same configuration, without importing the
// feedback service's internals.
package feedbackbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
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

// StreamConfig is the FEEDBACK stream's configuration. Every service that
// ensures the stream passes the same values (BOOMERANG_STREAM_REPLICAS,
// FEEDBACK_EVENTS_MAX_AGE), so that whichever starts first creates it as
// the feedback service would.
func StreamConfig(replicas int, maxAge time.Duration) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: Stream, Subjects: []string{Prefix + ">"}, Storage: jetstream.FileStorage,
		MaxAge: maxAge, Duplicates: natsx.DuplicateWindow, Replicas: max(replicas, 1),
		Description: "Agony detected and recovery resolved, per customer subject",
	}
}

// EnsureStream creates the FEEDBACK stream when missing, for a service
// that reads it; the feedback service, which owns it (busauth), keeps its
// configuration up to date.
func EnsureStream(ctx context.Context, js jetstream.JetStream, replicas int, maxAge time.Duration) error {
	_, err := natsx.EnsureStreamExists(ctx, js, StreamConfig(replicas, maxAge))
	return err
}

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
