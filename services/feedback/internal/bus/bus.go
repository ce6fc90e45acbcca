// Package bus is the feedback service's side of the bus: the FEEDBACK
// stream of its events and their encoding, and the FEEDBACK_IN stream of
// intake with the consumer that records it.
package bus

import (
	"context"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/feedbackbus"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// Streams and subjects.
const (
	// Stream holds the feedback service's events (the contract shared
	// with its readers is in pkg/feedbackbus).
	Stream = feedbackbus.Stream
	// Prefix + <event>.<customer_id> is an event's subject.
	Prefix = feedbackbus.Prefix
	// InStream captures intake published on the bus.
	InStream = streams.FeedbackIn
	// InPrefix + <kind>.<source> is where shops, survey tools and help
	// desks publish; <kind> is one of the In* tokens, <source> names the
	// survey tool or help desk whose ids the message carries (ids are
	// scoped by it) and labels dead letters.
	InPrefix = streams.FeedbackInPrefix
	// ConsumerName is the durable consumer of FEEDBACK_IN.
	ConsumerName = "feedback-intake"
	// RouteName names that consumer in the consumer metrics, logs and
	// spans, as <service>.<what it reads> like every service's routes.
	RouteName = "feedback.in"
)

// Event tokens of the subjects.
const (
	SubjectAgony     = feedbackbus.SubjectAgony
	SubjectRecovered = feedbackbus.SubjectRecovered
)

// Intake kinds: the payload is the protobuf request of the same gRPC
// method.
const (
	InSurvey         = "survey"          // SubmitSurveyResponseRequest
	InReview         = "review"          // SubmitReviewRequest
	InReviewResponse = "review_response" // RespondToReviewRequest
	InTicket         = "ticket"          // RecordTicketEventRequest
)

// InSubject is the intake subject of a kind from a source.
func InSubject(kind, source string) string { return InPrefix + kind + "." + source }

// Subject is the subject of an event.
func Subject(token, customerID string) string { return feedbackbus.Subject(token, customerID) }

// Encode is the store's encoder: the event as protobuf on its subject, its
// id as Nats-Msg-Id, with the trace of ctx.
func Encode(ctx context.Context, ev feedback.Event) (outbox.Message, error) {
	m, token := Proto(ev)
	data, err := proto.Marshal(m)
	if err != nil {
		return outbox.Message{}, err
	}
	return outbox.Message{ID: ev.ID, Subject: Subject(token, ev.CustomerID), Header: natsx.ProtoHeader(ctx, ev.ID, m), Data: data}, nil
}

// Proto is the protobuf form of an event and its subject token.
func Proto(ev feedback.Event) (*feedbackv1.FeedbackEvent, string) {
	m := &feedbackv1.FeedbackEvent{EventId: ev.ID, CustomerId: ev.CustomerID, OccurredAt: timestamppb.New(ev.At)}
	if ev.Resolved {
		m.Event = &feedbackv1.FeedbackEvent_RecoveryResolved{RecoveryResolved: &feedbackv1.RecoveryResolved{
			CaseId: ev.Case.ID, Outcome: feedbackv1.RecoveryOutcome(ev.Case.Outcome), Agent: ev.Case.ClaimedBy, StillInAgony: ev.StillInAgony}}
		return m, SubjectRecovered
	}
	m.Event = &feedbackv1.FeedbackEvent_Agony{Agony: &feedbackv1.AgonyDetected{
		CaseId: ev.Case.ID, Reason: feedbackv1.AgonyReason(ev.Case.Reason), SourceRef: ev.Case.SourceRef}}
	return m, SubjectAgony
}
