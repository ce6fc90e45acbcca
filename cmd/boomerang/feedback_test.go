package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

// baseOrders is a customer base segmentation can fit its models to:
// customers with their own purchase rates and chances of dropping out,
// ordering over the last 200 days.
func baseOrders(n int, now time.Time) []*ingestv1.Order {
	src := rand.New(rand.NewPCG(5, 6))
	var out []*ingestv1.Order
	start := now.AddDate(0, 0, -200)
	for c := range n {
		rate := 0.005 + src.ExpFloat64()*0.03 // orders a day
		drop := 0.1 + src.Float64()*0.5
		day := src.IntN(100)
		for k := 0; day < 199; k++ {
			out = append(out, &ingestv1.Order{
				Source: "shop", OrderId: fmt.Sprintf("B-%d-%d", c, k), Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
				OccurredAt: timestamppb.New(start.AddDate(0, 0, day)), Channel: "web",
				Total:    &commonv1.Money{MinorUnits: int64(2000 + src.IntN(6000)), Currency: "EUR"},
				Customer: &ingestv1.CustomerInput{Email: fmt.Sprintf("base-%d@example.com", c)},
			})
			if src.Float64() < drop {
				break
			}
			day += 1 + int(src.ExpFloat64()/rate)
		}
	}
	return out
}

// TestFeedbackEndToEnd: orders make two customers known to segmentation,
// one worth much more than the other; each opens a support ticket nobody
// answers; past the (short) threshold the sweep puts both in agony, the
// events go out on FEEDBACK, and the recovery queue lists the valuable
// customer first. A survey over the bus and one over gRPC reach the scores.
func TestFeedbackEndToEnd(t *testing.T) {
	const agent = "feedback-agent-0123456789abcdef"
	const intakeOnly = "feedback-intake-0123456789abcdef"
	p := startPlatform(t, t.TempDir(), map[string]string{
		"BOOMERANG_API_TOKENS": writerToken + ":ingest:write,ingest:read,segmentation:read;" +
			agent + ":feedback:read,feedback:write,feedback:recovery;" + intakeOnly + ":feedback:write",
		"SEGMENTATION_MIN_SCORE_INTERVAL":   "0s",
		"FEEDBACK_FIRST_RESPONSE_THRESHOLD": "1s",
		"FEEDBACK_SWEEP_INTERVAL":           "200ms",
		"FEEDBACK_FILL_INTERVAL":            "200ms",
	})
	ctx := context.Background()
	ingest := ingestv1.NewIngestServiceClient(p.conn)
	seg := segmentationv1.NewSegmentationServiceClient(p.conn)
	ac, err := grpcx.Dial(p.m.GRPCAddr(), grpcx.ClientOptions{Token: agent})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	fb := feedbackv1.NewFeedbackServiceClient(ac)

	now := time.Now().UTC().Truncate(time.Second)
	orders := baseOrders(150, now)
	buyer := func(email string, n int, minor int64) {
		for k := range n {
			orders = append(orders, &ingestv1.Order{
				Source: "shop", OrderId: fmt.Sprintf("%s-%d", email, k), Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
				OccurredAt: timestamppb.New(now.AddDate(0, 0, -90+k*15)), Channel: "web",
				Total: &commonv1.Money{MinorUnits: minor, Currency: "EUR"}, Customer: &ingestv1.CustomerInput{Email: email},
			})
		}
	}
	buyer("rich@example.com", 6, 400_00)
	buyer("modest@example.com", 2, 15_00)
	ids := map[string]string{}
	for start := 0; start < len(orders); start += 500 {
		chunk := orders[start:min(start+500, len(orders))]
		resp, err := ingest.SubmitOrders(ctx, &ingestv1.SubmitOrdersRequest{Orders: chunk})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range resp.GetResults() {
			if r.GetOutcome() != ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED {
				t.Fatalf("order %d: %v", start+i, r)
			}
			ids[chunk[i].GetCustomer().GetEmail()] = r.GetCustomerId()
		}
	}
	rich, modest := ids["rich@example.com"], ids["modest@example.com"]

	// Segmentation values both once it has seen every order and fitted
	// its models.
	clv := func(id string) int64 {
		pr, err := seg.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: id})
		if err != nil {
			return -1
		}
		return pr.GetPrediction().GetClv().GetMinorUnits()
	}
	deadline := time.Now().Add(20 * time.Second)
	var fitErr error
	for clv(rich) <= 0 || clv(modest) <= 0 || !scored(ctx, t, seg, int64(len(ids))) {
		if time.Now().After(deadline) {
			t.Fatalf("no predictions within 20s: rich %d, modest %d (%v)", clv(rich), clv(modest), fitErr)
		}
		if scored(ctx, t, seg, int64(len(ids))) {
			res, err := p.m.Segmentation.Refit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			fitErr = fmt.Errorf("fit %v, model %v, unvalued %d of %d", res.FitErr, res.Model != nil, res.Unvalued, res.Customers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if clv(rich) <= clv(modest) {
		t.Fatalf("rich customer's CLV %d not above the modest one's %d", clv(rich), clv(modest))
	}

	events := p.reader(t, "FEEDBACK")
	// The modest customer's ticket opens first: the queue orders by value,
	// not by age.
	for i, id := range []string{modest, rich} {
		_, err := fb.RecordTicketEvent(ctx, &feedbackv1.RecordTicketEventRequest{EventId: fmt.Sprintf("open-%d", i),
			TicketId: fmt.Sprintf("T-%d", i), Source: "zendesk", CustomerId: id, Kind: feedbackv1.TicketEventKind_TICKET_EVENT_KIND_OPENED,
			Channel: "email", OccurredAt: timestamppb.New(time.Now())})
		if err != nil {
			t.Fatal(err)
		}
	}
	agony := map[string]bool{}
	for range 2 {
		m := events.next(t)
		ev := &feedbackv1.FeedbackEvent{}
		if err := proto.Unmarshal(m.Data(), ev); err != nil {
			t.Fatal(err)
		}
		if ev.GetAgony().GetReason() != feedbackv1.AgonyReason_AGONY_REASON_SLOW_FIRST_RESPONSE {
			t.Errorf("event %v", ev)
		}
		if m.Subject() != "boomerang.feedback.v1.agony."+ev.GetCustomerId() {
			t.Errorf("subject %s", m.Subject())
		}
		agony[ev.GetCustomerId()] = true
	}
	if !agony[rich] || !agony[modest] {
		t.Fatalf("agony events for %v", agony)
	}
	events.none(t, 700*time.Millisecond) // swept once
	// Segmentation consumes the same events: both customers carry the
	// agony flag.
	flagged := func(id string) bool {
		pr, err := seg.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: id})
		return err == nil && slices.Contains(pr.GetFlags(), segmentationv1.Flag_FLAG_AGONY)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil("agony flag in segmentation", func() bool { return flagged(rich) && flagged(modest) })

	q, err := fb.ListRecoveryQueue(ctx, &feedbackv1.ListRecoveryQueueRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cs := q.GetCases()
	if len(cs) != 2 || cs[0].GetCustomerId() != rich || cs[1].GetCustomerId() != modest {
		t.Fatalf("queue %v: want the rich customer first", cs)
	}
	if cs[0].GetClvValue().GetMinorUnits() != clv(rich) || cs[0].GetClvValue().GetCurrency() != "EUR" || cs[0].GetAge().AsDuration() <= 0 {
		t.Errorf("case %v: want the CLV segmentation gives (%d EUR minor) and an age", cs[0], clv(rich))
	}
	// A token for intake alone may not work the queue.
	ic, err := grpcx.Dial(p.m.GRPCAddr(), grpcx.ClientOptions{Token: intakeOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if _, err := feedbackv1.NewFeedbackServiceClient(ic).ClaimRecovery(ctx, &feedbackv1.ClaimRecoveryRequest{CaseId: cs[0].GetCaseId(),
		Agent: "ann"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("claim with an intake token: %v, want PermissionDenied", err)
	}
	claimed, err := fb.ClaimRecovery(ctx, &feedbackv1.ClaimRecoveryRequest{CaseId: cs[0].GetCaseId(), Agent: "ann"})
	if err != nil || claimed.GetCase().GetClaimedBy() != "ann" {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if _, err := fb.ClaimRecovery(ctx, &feedbackv1.ClaimRecoveryRequest{CaseId: cs[0].GetCaseId(), Agent: "bob"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("claim by another agent: %v", err)
	}
	if _, err := fb.ResolveRecovery(ctx, &feedbackv1.ResolveRecoveryRequest{CaseId: cs[0].GetCaseId(), Agent: "ann",
		Outcome: feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_RECOVERED, Note: "called back"}); err != nil {
		t.Fatal(err)
	}
	m := events.next(t)
	if m.Subject() != "boomerang.feedback.v1.recovery_resolved."+rich {
		t.Errorf("resolution on %s", m.Subject())
	}
	// Recovered, the rich customer loses the flag; the other keeps it.
	waitUntil("agony flag cleared after the recovery", func() bool { return !flagged(rich) })
	if !flagged(modest) {
		t.Error("the customer still in agony lost the flag")
	}

	// A survey over the bus and one over gRPC, the same rules either way.
	data, _ := proto.Marshal(&feedbackv1.SubmitSurveyResponseRequest{ResponseId: "s1", CustomerId: rich,
		Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 10, RespondedAt: timestamppb.New(now)})
	p.publish(t, "boomerang.feedback.in.survey.delighted", string(data), nil)
	if _, err := fb.SubmitSurveyResponse(ctx, &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "s2", Source: "delighted", CustomerId: modest,
		Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 11, RespondedAt: timestamppb.New(now)}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("NPS 11: %v, want InvalidArgument", err)
	}
	if _, err := fb.SubmitSurveyResponse(ctx, &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "s2", Source: "delighted", CustomerId: modest,
		Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 8, RespondedAt: timestamppb.New(now)}); err != nil {
		t.Fatal(err)
	}
	var row *feedbackv1.ScoreRow
	deadline = time.Now().Add(10 * time.Second)
	for row.GetNpsResponses() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("scores: %v", row)
		}
		time.Sleep(50 * time.Millisecond)
		sc, err := fb.GetScores(ctx, &feedbackv1.GetScoresRequest{Granularity: feedbackv1.Granularity_GRANULARITY_MONTH,
			TimeZone: "Asia/Tokyo", From: timestamppb.New(now.AddDate(0, 0, -1)), To: timestamppb.New(now.AddDate(0, 0, 1))})
		if err != nil {
			t.Fatal(err)
		}
		row = nil
		for _, r := range sc.GetRows() {
			if !r.GetPeriodStart().AsTime().After(now) {
				row = r
			}
		}
	}
	if row.GetNps() != 50 {
		t.Errorf("NPS %v, want 50 (one promoter, one passive)", row.GetNps())
	}
	// The writer token has no feedback scope.
	if _, err := feedbackv1.NewFeedbackServiceClient(p.conn).ListRecoveryQueue(ctx, &feedbackv1.ListRecoveryQueueRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("queue with another service's token: %v", err)
	}
}
