package events

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/feedbackbus"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// FeedbackConsumerName is the durable consumer on the FEEDBACK stream.
const FeedbackConsumerName = "segmentation-feedback"

// Dead-letter reasons of FEEDBACK messages.
const (
	ReasonUndecodable = "undecodable"
	ReasonInvalid     = "invalid_feedback_event"
)

// FromFeedbackEvent reads an agony mark from a message on the FEEDBACK
// stream: agony detected marks the customer; a recovery resolution clears
// the mark only when the customer was recovered and has no other open
// case (see segment.AgonyMark). An event on another subject than its own
// kind's and customer's is invalid. An error comes with the dead-letter
// reason.
func FromFeedbackEvent(subject string, data []byte) (segment.AgonyMark, string, error) {
	ev := &feedbackv1.FeedbackEvent{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return segment.AgonyMark{}, ReasonUndecodable, fmt.Errorf("not a %s: %v", ev.ProtoReflect().Descriptor().FullName(), err)
	}
	var missing []string
	if ev.GetEventId() == "" {
		missing = append(missing, "event_id")
	}
	if ev.GetCustomerId() == "" {
		missing = append(missing, "customer_id")
	}
	if ev.GetOccurredAt() == nil {
		missing = append(missing, "occurred_at")
	} else if err := ev.GetOccurredAt().CheckValid(); err != nil {
		return segment.AgonyMark{}, ReasonInvalid, fmt.Errorf("occurred_at: %v", err)
	}
	if len(missing) > 0 {
		return segment.AgonyMark{}, ReasonInvalid, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	m := segment.AgonyMark{EventID: ev.GetEventId(), CustomerID: ev.GetCustomerId(), At: ev.GetOccurredAt().AsTime()}
	token := feedbackbus.SubjectAgony
	switch e := ev.GetEvent().(type) {
	case *feedbackv1.FeedbackEvent_Agony:
		m.On = true
	case *feedbackv1.FeedbackEvent_RecoveryResolved:
		// Only a recovery clears; lost, no answer or an outcome this
		// version does not know keep the customer in agony.
		r := e.RecoveryResolved
		m.On = r.GetOutcome() != feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_RECOVERED || r.GetStillInAgony()
		token = feedbackbus.SubjectRecovered
	default:
		return segment.AgonyMark{}, ReasonInvalid, errors.New("no event (agony or recovery_resolved)")
	}
	if err := feedbackbus.CheckSubject(subject, token, m.CustomerID); err != nil {
		return segment.AgonyMark{}, ReasonInvalid, err
	}
	return m, "", nil
}

// FeedbackSource is the dead-letter source of a FEEDBACK subject: its
// event token.
func FeedbackSource(subject string) string {
	token, _, _ := strings.Cut(strings.TrimPrefix(subject, feedbackbus.Prefix), ".")
	if token == "" {
		return "feedback"
	}
	return "feedback_" + token
}
