package app

import (
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

// The boomerang.feedback.v1 intake requests arrive over gRPC and the bus
// alike; both ports turn them into the domain's inputs here, checked by
// the same rules.

// Scoped is the key of a source's id: ids are unique only within their
// source (a survey tool, a help desk), and a source holds no "/".
func Scoped(source, id string) string { return source + "/" + id }

// FromSurvey is a survey response's domain input; its ID is scoped by its
// source.
func FromSurvey(r *feedbackv1.SubmitSurveyResponseRequest) *feedback.Response {
	return &feedback.Response{ID: Scoped(r.GetSource(), r.GetResponseId()), CustomerID: r.GetCustomerId(), Kind: feedback.Kind(r.GetKind()),
		Score: int(r.GetScore()), Channel: r.GetChannel(), Comment: r.GetComment(), OrderID: r.GetOrderId(),
		TicketID: r.GetTicketId(), At: r.GetRespondedAt().AsTime()}
}

// FromReview is a review's domain input.
func FromReview(r *feedbackv1.SubmitReviewRequest) *feedback.Review {
	return &feedback.Review{ID: r.GetReviewId(), Platform: r.GetPlatform(), CustomerID: r.GetCustomerId(),
		Rating: int(r.GetRating()), Text: r.GetText(), Product: r.GetProduct(), CreatedAt: r.GetCreatedAt().AsTime()}
}

// FromReviewResponse is a seller's response's domain input.
func FromReviewResponse(r *feedbackv1.RespondToReviewRequest) *feedback.ReviewResponse {
	return &feedback.ReviewResponse{ReviewID: r.GetReviewId(), Platform: r.GetPlatform(), Text: r.GetText(),
		RespondedAt: r.GetRespondedAt().AsTime()}
}

// FromTicketEvent is a ticket event's domain input; its ID and TicketID
// are scoped by its source.
func FromTicketEvent(r *feedbackv1.RecordTicketEventRequest) *feedback.TicketEvent {
	return &feedback.TicketEvent{ID: Scoped(r.GetSource(), r.GetEventId()), TicketID: Scoped(r.GetSource(), r.GetTicketId()), CustomerID: r.GetCustomerId(),
		Kind: feedback.TicketEventKind(r.GetKind()), Channel: r.GetChannel(), At: r.GetOccurredAt().AsTime()}
}

// Check applies the rules the .proto files cannot say to an intake
// request, over gRPC and the bus alike: no string may hold a NUL byte
// (PostgreSQL refuses it in text, and a message it refuses would be tried
// forever), and a review's platform may not hold "/" (the review key is
// "<platform>/<review id>", so ("a/b", "c") and ("a", "b/c") would be one
// review).
func Check(m proto.Message) []grpcx.FieldViolation {
	var out []grpcx.FieldViolation
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
			return true
		}
		s := v.String()
		if strings.ContainsRune(s, 0) {
			out = append(out, grpcx.FieldViolation{Field: string(fd.Name()), Description: "must not contain a NUL byte"})
		}
		if fd.Name() == "platform" && strings.Contains(s, "/") {
			out = append(out, grpcx.FieldViolation{Field: string(fd.Name()), Description: `must not contain "/"`})
		}
		return true
	})
	return out
}
