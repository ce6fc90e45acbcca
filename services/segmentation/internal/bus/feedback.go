package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/busrouter"
	"github.com/boomerang-loyalty/boomerang/pkg/feedbackbus"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// FeedbackConsumerName is the durable consumer on the FEEDBACK stream;
// FeedbackRoute names it in the router's metrics.
const (
	FeedbackConsumerName = "segmentation-feedback"
	FeedbackRoute        = "segmentation.feedback"
)

// AgonyMarker applies a batch of the feedback service's agony marks in
// one transaction, with the dead letters of the batch, and returns the
// number of marks that took effect (redelivered and older ones do not).
type AgonyMarker interface {
	MarkAgony(ctx context.Context, marks []segment.AgonyMark, dead []outbox.Message, now time.Time) (int, error)
}

// NewFeedback returns the FEEDBACK consumer's route: the agony flag from
// the feedback service's agony and recovery events. The marker keeps each
// customer's agony moving only forward in event time, so a redelivered or
// replayed old event changes nothing (outcome ignored). healthy answers
// when the database does; onCommit is called after each applied batch.
func NewFeedback(app AgonyMarker, now func() time.Time, healthy func(context.Context) error, onCommit func()) busrouter.Route[segment.AgonyMark] {
	return busrouter.Route[segment.AgonyMark]{
		Name: FeedbackRoute,
		Decode: func(_ context.Context, m jetstream.Msg) (segment.AgonyMark, error) {
			mark, reason, err := FromFeedbackEvent(m.Subject(), m.Data())
			if err != nil {
				return mark, &busrouter.Rejection{Reason: reason, Detail: err.Error()}
			}
			return mark, nil
		},
		InvalidReason: ReasonUndecodable,
		DeadLetter: func(m jetstream.Msg, reason, detail string) outbox.Message {
			return orderbus.DeadLetter(m, Service, FeedbackSource(m.Subject()), reason, detail)
		},
		Handle: func(ctx context.Context, b busrouter.Batch[segment.AgonyMark]) (busrouter.Result, error) {
			marks := make([]segment.AgonyMark, len(b.Messages))
			for i, m := range b.Messages {
				marks[i] = m.Body
			}
			if len(b.Messages) > 0 {
				ctx = trace.ContextWithSpan(ctx, trace.SpanFromContext(b.Messages[0].Ctx))
			}
			n, err := app.MarkAgony(ctx, marks, b.Dead, now().UTC())
			if err != nil {
				return busrouter.Result{}, err
			}
			var res busrouter.Result
			if ignored := len(marks) - n; ignored > 0 {
				res.Count = map[string]int{OutcomeIgnored: ignored}
			}
			return res, nil
		},
		Healthy:  healthy,
		OnCommit: onCommit,
	}
}

// OutcomeIgnored counts the feedback events that changed nothing:
// redelivered, or older than the customer's agony state.
const OutcomeIgnored = "ignored"

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
