package bus_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/bus"
)

func TestFromFeedbackEvent(t *testing.T) {
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	resolved := func(o feedbackv1.RecoveryOutcome, still bool) *feedbackv1.FeedbackEvent {
		return &feedbackv1.FeedbackEvent{EventId: "e", CustomerId: "c", OccurredAt: timestamppb.New(at),
			Event: &feedbackv1.FeedbackEvent_RecoveryResolved{RecoveryResolved: &feedbackv1.RecoveryResolved{CaseId: "k", Outcome: o, StillInAgony: still}}}
	}
	const agonyOfC, resolvedOfC = "boomerang.feedback.v1.agony.c", "boomerang.feedback.v1.recovery_resolved.c"
	agony := &feedbackv1.FeedbackEvent{EventId: "e", CustomerId: "c", OccurredAt: timestamppb.New(at),
		Event: &feedbackv1.FeedbackEvent_Agony{Agony: &feedbackv1.AgonyDetected{CaseId: "k"}}}
	tests := []struct {
		name    string
		msg     *feedbackv1.FeedbackEvent
		raw     []byte
		on      bool
		reason  string
		subject string
	}{
		{"agony", agony, nil, true, "", agonyOfC},
		{"recovered", resolved(feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_RECOVERED, false), nil, false, "", resolvedOfC},
		{"recovered, other cases open", resolved(feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_RECOVERED, true), nil, true, "", resolvedOfC},
		{"lost", resolved(feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_LOST, false), nil, true, "", resolvedOfC},
		{"no answer", resolved(feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_NO_ANSWER, false), nil, true, "", resolvedOfC},
		{"unknown outcome", resolved(feedbackv1.RecoveryOutcome(42), false), nil, true, "", resolvedOfC},
		{"no event", &feedbackv1.FeedbackEvent{EventId: "e", CustomerId: "c", OccurredAt: timestamppb.New(at)}, nil, false, bus.ReasonInvalid, agonyOfC},
		{"no time", &feedbackv1.FeedbackEvent{EventId: "e", CustomerId: "c",
			Event: &feedbackv1.FeedbackEvent_Agony{Agony: &feedbackv1.AgonyDetected{}}}, nil, false, bus.ReasonInvalid, agonyOfC},
		{"no customer", &feedbackv1.FeedbackEvent{EventId: "e", OccurredAt: timestamppb.New(at),
			Event: &feedbackv1.FeedbackEvent_Agony{Agony: &feedbackv1.AgonyDetected{}}}, nil, false, bus.ReasonInvalid, agonyOfC},
		{"not protobuf", nil, []byte("{\"agony\": true} \xff"), false, bus.ReasonUndecodable, agonyOfC},
		{"agony on another customer's subject", agony, nil, false, bus.ReasonInvalid, "boomerang.feedback.v1.agony.victim"},
		{"agony on a recovery subject", agony, nil, false, bus.ReasonInvalid, resolvedOfC},
		{"recovery on an agony subject", resolved(feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_RECOVERED, false), nil, false, bus.ReasonInvalid, agonyOfC},
		{"customer a prefix of the token", agony, nil, false, bus.ReasonInvalid, "boomerang.feedback.v1.agony.cc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.raw
			if tt.msg != nil {
				var err error
				if data, err = proto.Marshal(tt.msg); err != nil {
					t.Fatal(err)
				}
			}
			m, reason, err := bus.FromFeedbackEvent(tt.subject, data)
			if reason != tt.reason || (err == nil) != (tt.reason == "") {
				t.Fatalf("reason %q, error %v; want %q", reason, err, tt.reason)
			}
			if err != nil {
				return
			}
			if m.On != tt.on || m.CustomerID != "c" || m.EventID != "e" || !m.At.Equal(at) {
				t.Errorf("got %+v; want on %v for c at %v", m, tt.on, at)
			}
		})
	}
}

func TestFeedbackSource(t *testing.T) {
	for subject, want := range map[string]string{
		"boomerang.feedback.v1.agony.c1":             "feedback_agony",
		"boomerang.feedback.v1.recovery_resolved.c1": "feedback_recovery_resolved",
		"boomerang.feedback.v1.":                     "feedback",
	} {
		if got := bus.FeedbackSource(subject); got != want {
			t.Errorf("FeedbackSource(%q) = %q, want %q", subject, got, want)
		}
	}
}
