package bus

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

func mustMarshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestDecode(t *testing.T) {
	v, err := grpcx.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	at := timestamppb.New(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	tests := []struct {
		name    string
		subject string
		msg     proto.Message
		raw     []byte
		reason  string
	}{
		{"survey", InSubject(InSurvey, "typeform"), &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r", CustomerId: "c",
			Kind: feedbackv1.SurveyKind_SURVEY_KIND_CES, Score: 7, RespondedAt: at}, nil, ""},
		{"ces out of range", InSubject(InSurvey, "typeform"), &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r", CustomerId: "c",
			Kind: feedbackv1.SurveyKind_SURVEY_KIND_CES, Score: 8, RespondedAt: at}, nil, ReasonInvalid},
		{"review without a time", InSubject(InReview, "trustpilot"), &feedbackv1.SubmitReviewRequest{ReviewId: "r", Platform: "p",
			CustomerId: "c", Rating: 3}, nil, ReasonInvalid},
		{"ticket", InSubject(InTicket, "zendesk"), &feedbackv1.RecordTicketEventRequest{EventId: "e", TicketId: "t", CustomerId: "c",
			Kind: feedbackv1.TicketEventKind_TICKET_EVENT_KIND_OPENED, OccurredAt: at}, nil, ""},
		{"review response", InSubject(InReviewResponse, "x"), &feedbackv1.RespondToReviewRequest{ReviewId: "r", Platform: "p",
			Text: "thanks", RespondedAt: at}, nil, ""},
		{"NUL in a comment", InSubject(InSurvey, "typeform"), &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r", CustomerId: "c",
			Kind: feedbackv1.SurveyKind_SURVEY_KIND_CES, Score: 7, Comment: "a\x00b", RespondedAt: at}, nil, ReasonInvalid},
		{"NUL in a product", InSubject(InReview, "x"), &feedbackv1.SubmitReviewRequest{ReviewId: "r", Platform: "p",
			CustomerId: "c", Rating: 3, Product: "\x00", CreatedAt: at}, nil, ReasonInvalid},
		{"slash in a platform", InSubject(InReview, "x"), &feedbackv1.SubmitReviewRequest{ReviewId: "c", Platform: "a/b",
			CustomerId: "c", Rating: 3, CreatedAt: at}, nil, ReasonInvalid},
		{"survey naming its subject's source", InSubject(InSurvey, "typeform"), &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r",
			Source: "typeform", CustomerId: "c", Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 7, RespondedAt: at}, nil, ""},
		{"survey naming another source", InSubject(InSurvey, "typeform"), &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r",
			Source: "delighted", CustomerId: "c", Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 7, RespondedAt: at}, nil, ReasonInvalid},
		{"ticket naming another source", InSubject(InTicket, "zendesk"), &feedbackv1.RecordTicketEventRequest{EventId: "e", TicketId: "t",
			Source: "freshdesk", CustomerId: "c", Kind: feedbackv1.TicketEventKind_TICKET_EVENT_KIND_OPENED, OccurredAt: at}, nil, ReasonInvalid},
		{"survey on a subject whose source is no token", InPrefix + InSurvey + ".a.b", &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r",
			CustomerId: "c", Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 7, RespondedAt: at}, nil, ReasonInvalid},
		{"not protobuf", InSubject(InSurvey, "x"), nil, []byte("{\"score\": 3}"), ReasonUndecodable},
		{"unknown kind", InSubject("complaint", "x"), nil, nil, ReasonUnknownKind},
		{"no kind", InPrefix, nil, nil, ReasonUnknownKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.raw
			if tt.msg != nil {
				data = mustMarshal(t, tt.msg)
			}
			x, reason, err := Decode(v, tt.subject, data)
			if reason != tt.reason || (err == nil) != (tt.reason == "") {
				t.Fatalf("reason %q, error %v; want %q", reason, err, tt.reason)
			}
			if err == nil && x.Response == nil && x.Review == nil && x.ReviewResponse == nil && x.Ticket == nil {
				t.Error("no input decoded")
			}
			// Ids are scoped by the subject's source.
			if x.Response != nil && x.Response.ID != "typeform/r" {
				t.Errorf("response id %q, want typeform/r", x.Response.ID)
			}
			if x.Ticket != nil && (x.Ticket.ID != "zendesk/e" || x.Ticket.TicketID != "zendesk/t") {
				t.Errorf("ticket event %q of ticket %q, want zendesk/e of zendesk/t", x.Ticket.ID, x.Ticket.TicketID)
			}
		})
	}
}

// FuzzDecode: no payload on any subject crashes the decoder, and whatever
// it accepts has passed the .proto rules.
func FuzzDecode(f *testing.F) {
	v, err := grpcx.NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	at := timestamppb.New(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	f.Add(InSurvey, mustMarshal(f, &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r", CustomerId: "c",
		Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 9, RespondedAt: at}))
	f.Add(InTicket, mustMarshal(f, &feedbackv1.RecordTicketEventRequest{EventId: "e", TicketId: "t", CustomerId: "c",
		Kind: feedbackv1.TicketEventKind_TICKET_EVENT_KIND_RESOLVED, OccurredAt: at}))
	f.Add(InReview, []byte{0x0a, 0x01})
	f.Fuzz(func(t *testing.T, kind string, data []byte) {
		x, _, err := Decode(v, InSubject(kind, "fuzz"), data)
		if err != nil {
			return
		}
		if r := x.Response; r != nil {
			if err := r.Kind.Check(r.Score); err != nil {
				t.Fatalf("accepted %+v: %v", r, err)
			}
		}
		if r := x.Review; r != nil && (r.Rating < 1 || r.Rating > 5) {
			t.Fatalf("accepted a rating of %d", r.Rating)
		}
	})
}
