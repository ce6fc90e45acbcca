package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/busrouter"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/app"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// DeadLetterService names the feedback service in dead-letter subjects.
const DeadLetterService = "feedback"

// Dead-letter reasons (and busrouter.ReasonFailed for a message that kept
// failing while the database answered).
const (
	ReasonUnknownKind = "unknown_kind"
	ReasonUndecodable = "undecodable"
	ReasonInvalid     = "invalid_input"
)

// Recorder records a batch of intake with the dead letters of the
// messages that could not be read, in one transaction (app.App).
type Recorder interface {
	Record(ctx context.Context, in []feedback.Input, dead []outbox.Message) (app.Result, error)
}

// Options are the consumer's dependencies and tuning.
type Options struct {
	// MaxAttempts is how often one message may fail, while Healthy says
	// the database answers, before it is dead-lettered (processing_failed).
	MaxAttempts int
	Healthy     func(context.Context) error
	// OnCommit is called after each committed batch (the relay's Notify).
	OnCommit func()
	Log      *slog.Logger
}

// Route is the consumer of FEEDBACK_IN: each message is decoded and
// checked by the .proto rules, the valid ones recorded and the others
// dead-lettered with the reason, in one transaction. Free text is never
// logged.
func Route(rec Recorder, v *grpcx.Validator, o Options) busrouter.Route[feedback.Input] {
	return busrouter.Route[feedback.Input]{
		Name: RouteName,
		Decode: func(_ context.Context, m jetstream.Msg) (feedback.Input, error) {
			x, reason, err := Decode(v, m.Subject(), m.Data())
			if err != nil {
				return x, &busrouter.Rejection{Reason: reason, Detail: err.Error()}
			}
			return x, nil
		},
		InvalidReason: ReasonInvalid,
		DeadLetter:    deadLetter,
		Handle: func(ctx context.Context, b busrouter.Batch[feedback.Input]) (busrouter.Result, error) {
			in := make([]feedback.Input, len(b.Messages))
			for i, m := range b.Messages {
				in[i] = m.Body
				in[i].Ctx = m.Ctx
			}
			res, err := rec.Record(ctx, in, b.Dead)
			if err != nil {
				return busrouter.Result{}, err
			}
			dup := 0
			for _, o := range res.Outcomes {
				if o == feedback.Duplicate {
					dup++
				}
			}
			if len(res.Cases) > 0 && o.Log != nil {
				o.Log.InfoContext(ctx, "agony detected", "cases", len(res.Cases))
			}
			return busrouter.Result{Count: map[string]int{busrouter.OutcomeDuplicate: dup}}, nil
		},
		Parallel:    true,
		MaxAttempts: o.MaxAttempts,
		Healthy:     o.Healthy,
		OnCommit:    o.OnCommit,
	}
}

// deadLetter parks a message under its subject's source.
func deadLetter(m jetstream.Msg, reason, detail string) outbox.Message {
	_, source := split(m.Subject())
	return orderbus.DeadLetter(m, DeadLetterService, source, reason, detail)
}

// Decode reads one intake message: its kind from the subject, the payload
// as that kind's request, checked against the .proto rules. An error comes
// with the dead-letter reason.
func Decode(v *grpcx.Validator, subject string, data []byte) (feedback.Input, string, error) {
	kind, source := split(subject)
	var req proto.Message
	switch kind {
	case InSurvey:
		req = &feedbackv1.SubmitSurveyResponseRequest{}
	case InReview:
		req = &feedbackv1.SubmitReviewRequest{}
	case InReviewResponse:
		req = &feedbackv1.RespondToReviewRequest{}
	case InTicket:
		req = &feedbackv1.RecordTicketEventRequest{}
	default:
		return feedback.Input{}, ReasonUnknownKind, fmt.Errorf("unknown intake kind %q (from %q)", kind, source)
	}
	if err := proto.Unmarshal(data, req); err != nil {
		return feedback.Input{}, ReasonUndecodable, fmt.Errorf("not a %s: %v", req.ProtoReflect().Descriptor().FullName(), err)
	}
	// Survey tools and help desks are the subject's source: a message may
	// leave it out but not name another.
	switch r := req.(type) {
	case *feedbackv1.SubmitSurveyResponseRequest:
		if err := sourceOf(&r.Source, source); err != nil {
			return feedback.Input{}, ReasonInvalid, err
		}
	case *feedbackv1.RecordTicketEventRequest:
		if err := sourceOf(&r.Source, source); err != nil {
			return feedback.Input{}, ReasonInvalid, err
		}
	}
	violations, err := v.Check(req)
	if err != nil {
		return feedback.Input{}, ReasonInvalid, err
	}
	violations = append(violations, app.Check(req)...)
	if len(violations) > 0 {
		return feedback.Input{}, ReasonInvalid, errors.New(grpcx.Summary(violations))
	}
	switch r := req.(type) {
	case *feedbackv1.SubmitSurveyResponseRequest:
		return feedback.Input{Response: app.FromSurvey(r)}, "", nil
	case *feedbackv1.SubmitReviewRequest:
		return feedback.Input{Review: app.FromReview(r)}, "", nil
	case *feedbackv1.RespondToReviewRequest:
		return feedback.Input{ReviewResponse: app.FromReviewResponse(r)}, "", nil
	case *feedbackv1.RecordTicketEventRequest:
		return feedback.Input{Ticket: app.FromTicketEvent(r)}, "", nil
	}
	return feedback.Input{}, ReasonUnknownKind, fmt.Errorf("unknown intake kind %q", kind)
}

// sourceOf fills a message's source in from its subject's.
func sourceOf(field *string, subject string) error {
	switch *field {
	case "":
		*field = subject
	case subject:
	default:
		return fmt.Errorf("source: the message names %q, its subject %q", *field, subject)
	}
	return nil
}

// split returns the kind and source tokens of an intake subject.
func split(subject string) (kind, source string) {
	rest := strings.TrimPrefix(subject, InPrefix)
	kind, source, _ = strings.Cut(rest, ".")
	return kind, source
}
