package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/feedback/service"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := service.LoadConfig(config.Map(map[string]string{
		"FEEDBACK_BATCH_SIZE": "0", "FEEDBACK_SWEEP_INTERVAL": "1ms", "FEEDBACK_SEGMENTATION_ADDR": "seg:7443",
		"FEEDBACK_FIRST_RESPONSE_THRESHOLD": "soon",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	// A variable that does not parse is reported before the ranges are
	// checked.
	if !strings.Contains(err.Error(), "FEEDBACK_FIRST_RESPONSE_THRESHOLD") {
		t.Errorf("%q does not name FEEDBACK_FIRST_RESPONSE_THRESHOLD", err)
	}
	_, err = service.LoadConfig(config.Map(map[string]string{
		"FEEDBACK_BATCH_SIZE": "0", "FEEDBACK_SWEEP_INTERVAL": "1ms", "FEEDBACK_SEGMENTATION_ADDR": "seg:7443",
		"FEEDBACK_SCORE_TIME_ZONES": "UTC, Europe/Atlantis",
	}))
	for _, want := range []string{"FEEDBACK_BATCH_SIZE", "FEEDBACK_SWEEP_INTERVAL", "FEEDBACK_SEGMENTATION_TOKEN", `"Europe/Atlantis"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not name %s", err, want)
		}
	}
}

// profiles is segmentation as the feedback service sees it: a table of
// customers, unavailable while down is set.
type profiles struct {
	mu    sync.Mutex
	down  bool
	known map[string]money.Money
	calls atomic.Int64
}

func (p *profiles) Profile(_ context.Context, id string) (segmentationv1.Segment, money.Money, error) {
	p.calls.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return 0, money.Money{}, errors.New("unavailable")
	}
	clv, ok := p.known[id]
	if !ok {
		return 0, money.Money{}, service.ErrUnknownCustomer
	}
	return segmentationv1.Segment_SEGMENT_CHAMPIONS, clv, nil
}

type harness struct {
	svc    *service.Service
	js     jetstream.JetStream
	client feedbackv1.FeedbackServiceClient
	clock  *testkit.Clock
	logs   *strings.Builder
	reader *sdkmetric.ManualReader
}

const token = "feedback-writer-0123456789"

func start(t *testing.T, p service.Profiles, env map[string]string) *harness {
	t.Helper()
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	vars := map[string]string{"FEEDBACK_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "feedback.db"),
		"FEEDBACK_SWEEP_INTERVAL": "1h", "FEEDBACK_FILL_INTERVAL": "1h"}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := service.LoadConfig(config.Map(vars))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	db, err := sqldb.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	c := testkit.NewClock(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	logs := &strings.Builder{}
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(b)
	}), nil))
	svc, err := service.New(ctx, cfg, service.Deps{DB: db, JetStream: js, Log: log, Tracer: tracenoop.NewTracerProvider(),
		Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Profiles: p, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	tokens := &grpcx.Tokens{}
	tokens.Add(token, "feedback:write", "feedback:read", "feedback:recovery")
	gs, err := grpcx.NewServer(grpcx.ServerOptions{Tokens: tokens, Scopes: svc.Scopes(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	svc.Register(gs.Server)
	addr := testkit.GRPC(t, gs.Server)
	conn, err := grpcx.Dial(addr, grpcx.ClientOptions{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		conn.Close()
		db.Close()
	})
	return &harness{svc: svc, js: js, client: feedbackv1.NewFeedbackServiceClient(conn), clock: c, logs: logs, reader: reader}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(b []byte) (int, error) { return w(b) }

func (h *harness) publish(t *testing.T, subject string, m proto.Message) {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) next(t *testing.T, stream string, cons *jetstream.Consumer) jetstream.Msg {
	t.Helper()
	if *cons == nil {
		c, err := h.js.OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		*cons = c
	}
	m, err := (*cons).Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("no message on %s within 10s: %v", stream, err)
	}
	return m
}

func feedbackEvent(t *testing.T, m jetstream.Msg) *feedbackv1.FeedbackEvent {
	t.Helper()
	ev := &feedbackv1.FeedbackEvent{}
	if err := proto.Unmarshal(m.Data(), ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBusIntake: the same rules as gRPC on the bus; a bad message is
// dead-lettered with the reason and acked; a detractor's answer is an agony
// event; free text stays out of the logs.
func TestBusIntake(t *testing.T) {
	seg := &profiles{known: map[string]money.Money{"cus_a": {Minor: 120_00, Currency: "EUR"}}}
	h := start(t, seg, nil)
	at := timestamppb.New(h.clock.Now())
	h.publish(t, "boomerang.feedback.in.survey.typeform", &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r1", CustomerId: "cus_a",
		Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 3, Comment: "secret complaint text", RespondedAt: at})
	h.publish(t, "boomerang.feedback.in.survey.typeform", &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r2", CustomerId: "cus_a",
		Kind: feedbackv1.SurveyKind_SURVEY_KIND_CSAT, Score: 9, RespondedAt: at})
	h.publish(t, "boomerang.feedback.in.nonsense.x", &feedbackv1.SubmitReviewRequest{})
	h.publish(t, "boomerang.feedback.in.survey.typeform", &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r1", CustomerId: "cus_a",
		Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 3, RespondedAt: at}) // redelivered by the source

	var dl, fb jetstream.Consumer
	reasons := map[string]string{}
	for range 2 {
		m := h.next(t, orderbus.DeadLetterStream, &dl)
		reasons[m.Subject()+" "+m.Headers().Get(orderbus.HeaderReason)] = m.Headers().Get(orderbus.HeaderError)
	}
	if e, ok := reasons["boomerang.deadletter.feedback.typeform invalid_input"]; !ok || !strings.Contains(e, "score out of range") {
		t.Errorf("dead letters %v: want the CSAT of 9 as invalid_input", reasons)
	}
	if _, ok := reasons["boomerang.deadletter.feedback.x unknown_kind"]; !ok {
		t.Errorf("dead letters %v: want the unknown kind", reasons)
	}
	ev := feedbackEvent(t, h.next(t, "FEEDBACK", &fb))
	if ev.GetCustomerId() != "cus_a" || ev.GetAgony().GetReason() != feedbackv1.AgonyReason_AGONY_REASON_NPS_DETRACTOR {
		t.Errorf("event %v", ev)
	}
	q, err := h.client.ListRecoveryQueue(context.Background(), &feedbackv1.ListRecoveryQueueRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.GetCases()) != 1 || q.GetCases()[0].GetClvValue().GetMinorUnits() != 120_00 || q.GetCases()[0].GetClv() != 120 {
		t.Errorf("queue %v", q)
	}
	for customer, want := range map[string]int{"cus_a": 1, "cus_b": 0} {
		q, err := h.client.ListRecoveryQueue(context.Background(), &feedbackv1.ListRecoveryQueueRequest{CustomerId: customer})
		if err != nil || len(q.GetCases()) != want || (want > 0 && q.GetCases()[0].GetCustomerId() != customer) {
			t.Errorf("open cases of %s: %v %v, want %d", customer, q, err, want)
		}
	}
	waitFor(t, "the redelivered response consumed", func() bool {
		info, err := h.js.Consumer(context.Background(), "FEEDBACK_IN", "feedback-intake")
		if err != nil {
			return false
		}
		ci, err := info.Info(context.Background())
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	counts, _ := h.svc.Store().Counts(context.Background())
	if counts["responses"] != 1 || counts["cases"] != 1 {
		t.Errorf("counts %v", counts)
	}
	if strings.Contains(h.logs.String(), "secret complaint") {
		t.Error("free text in the logs")
	}
}

// TestSweepAndFill: a ticket unanswered past the threshold is found by the
// sweep at the service's clock; segments segmentation could not tell at
// intake are filled in once it answers.
func TestSweepAndFill(t *testing.T) {
	seg := &profiles{down: true, known: map[string]money.Money{"cus_b": {Minor: 50_00, Currency: "EUR"}}}
	h := start(t, seg, nil)
	ctx := context.Background()
	opened := h.clock.Now()
	if _, err := h.client.RecordTicketEvent(ctx, &feedbackv1.RecordTicketEventRequest{EventId: "e1", TicketId: "T1", Source: "zendesk", CustomerId: "cus_b",
		Kind: feedbackv1.TicketEventKind_TICKET_EVENT_KIND_OPENED, Channel: "chat", OccurredAt: timestamppb.New(opened)}); err != nil {
		t.Fatalf("intake while segmentation is down: %v", err)
	}
	if _, err := h.client.SubmitSurveyResponse(ctx, &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r1", Source: "typeform", CustomerId: "cus_b",
		Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 10, RespondedAt: timestamppb.New(opened)}); err != nil {
		t.Fatal(err)
	}
	_, err := h.client.SubmitSurveyResponse(ctx, &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "r2", Source: "typeform", CustomerId: "cus_b",
		Kind: feedbackv1.SurveyKind_SURVEY_KIND_CES, Score: 8, RespondedAt: timestamppb.New(opened)})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("CES 8: %v, want InvalidArgument", err)
	}
	h.clock.Add(5 * time.Hour)
	if n, err := h.svc.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep at 5h: %d %v", n, err)
	}
	h.clock.Add(90 * time.Minute)
	if n, err := h.svc.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep at 6h30: %d %v", n, err)
	}
	if n, _ := h.svc.Sweep(ctx); n != 0 {
		t.Errorf("second sweep opened %d cases", n)
	}
	var fb jetstream.Consumer
	ev := feedbackEvent(t, h.next(t, "FEEDBACK", &fb))
	if ev.GetAgony().GetReason() != feedbackv1.AgonyReason_AGONY_REASON_SLOW_FIRST_RESPONSE || ev.GetAgony().GetSourceRef() != "zendesk/T1" {
		t.Errorf("event %v", ev)
	}
	day := &feedbackv1.GetScoresRequest{Granularity: feedbackv1.Granularity_GRANULARITY_DAY, TimeZone: "Europe/Berlin",
		From: timestamppb.New(opened.Add(-24 * time.Hour)), To: timestamppb.New(opened.Add(24 * time.Hour)), BySegment: true}
	sc, err := h.client.GetScores(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.GetRows()) != 1 || sc.GetRows()[0].GetSegment() != segmentationv1.Segment_SEGMENT_UNSPECIFIED || sc.GetRows()[0].GetNps() != 100 {
		t.Errorf("scores before the fill: %v", sc)
	}
	seg.mu.Lock()
	seg.down = false
	seg.mu.Unlock()
	// The intake backs off from an unavailable segmentation for a while;
	// the fill-in asks once that has passed.
	waitFor(t, "segment filled in", func() bool {
		if _, err := h.svc.Fill(ctx); err != nil {
			t.Fatal(err)
		}
		sc, err = h.client.GetScores(ctx, day)
		return err == nil && len(sc.GetRows()) == 1 && sc.GetRows()[0].GetSegment() == segmentationv1.Segment_SEGMENT_CHAMPIONS
	})
	row := sc.GetRows()[0]
	if row.GetNpsResponses() != 1 || row.GetNps() != 100 || !row.GetPeriodStart().AsTime().Equal(time.Date(2026, 11, 1, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("row %v: want one promoter on the Berlin day starting 23:00 UTC", row)
	}
	st, err := h.client.GetTicketStats(ctx, &feedbackv1.GetTicketStatsRequest{From: timestamppb.New(opened.Add(-time.Hour)), To: timestamppb.New(opened.Add(time.Hour))})
	if err != nil || st.GetTickets() != 1 || st.GetFirstResponse().GetP50().AsDuration() != 0 {
		t.Errorf("ticket stats %v %v", st, err)
	}
}

// TestReviews: a negative review is agony and heads the response queue;
// answering it takes it off; a response to an unknown review is NotFound
// over gRPC, where a person can correct it.
func TestReviews(t *testing.T) {
	h := start(t, nil, nil)
	ctx := context.Background()
	at := h.clock.Now()
	for i, r := range []struct {
		id     string
		rating int32
		age    time.Duration
	}{{"R1", 5, 48 * time.Hour}, {"R2", 1, time.Hour}, {"R3", 4, 72 * time.Hour}} {
		resp, err := h.client.SubmitReview(ctx, &feedbackv1.SubmitReviewRequest{ReviewId: r.id, Platform: "trustpilot",
			CustomerId: fmt.Sprintf("cus_%d", i), Rating: r.rating, Text: "text", Product: "SKU-9", CreatedAt: timestamppb.New(at.Add(-r.age))})
		if err != nil || resp.GetDuplicate() {
			t.Fatalf("review %s: %v %v", r.id, resp, err)
		}
	}
	list := func() []string {
		resp, err := h.client.ListUnansweredReviews(ctx, &feedbackv1.ListUnansweredReviewsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range resp.GetReviews() {
			ids = append(ids, r.GetReviewId())
		}
		return ids
	}
	if got := strings.Join(list(), ","); got != "R2,R3,R1" {
		t.Errorf("unanswered %s, want R2,R3,R1 (negative first, then oldest)", got)
	}
	if _, err := h.client.RespondToReview(ctx, &feedbackv1.RespondToReviewRequest{ReviewId: "R2", Platform: "trustpilot",
		Text: "We are sorry", RespondedAt: timestamppb.New(at)}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(list(), ","); got != "R3,R1" {
		t.Errorf("unanswered after a response %s", got)
	}
	_, err := h.client.RespondToReview(ctx, &feedbackv1.RespondToReviewRequest{ReviewId: "R9", Platform: "trustpilot",
		Text: "?", RespondedAt: timestamppb.New(at)})
	if status.Code(err) != codes.NotFound {
		t.Errorf("response to an unknown review: %v", err)
	}
	q, err := h.client.ListRecoveryQueue(ctx, &feedbackv1.ListRecoveryQueueRequest{})
	if err != nil || len(q.GetCases()) != 1 || q.GetCases()[0].GetReason() != feedbackv1.AgonyReason_AGONY_REASON_NEGATIVE_REVIEW ||
		q.GetCases()[0].GetSourceRef() != "trustpilot/R2" {
		t.Errorf("queue %v %v", q, err)
	}
	if _, err := h.client.SubmitReview(ctx, &feedbackv1.SubmitReviewRequest{ReviewId: "R4", Platform: "trustpilot",
		CustomerId: "cus.with.dots", Rating: 3, CreatedAt: timestamppb.New(at)}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a customer id that is no subject token: %v", err)
	}
}

// TestPoisonIntakeIsDeadLettered, on PostgreSQL: a NUL byte in a text is
// invalid input over gRPC and the bus (PostgreSQL refuses it in text); a
// message the database keeps refusing is dead-lettered after
// FEEDBACK_MAX_ATTEMPTS instead of holding up the intake behind it; a
// review platform with "/" is refused, as its key would collide.
func TestPoisonIntakeIsDeadLettered(t *testing.T) {
	url := testkit.Postgres(t)
	h := start(t, nil, map[string]string{"FEEDBACK_DATABASE_URL": url, "FEEDBACK_MAX_ATTEMPTS": "2"})
	ctx := context.Background()
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A response the database refuses whatever the attempt.
	if _, err := db.W.ExecContext(ctx, `CREATE FUNCTION poison() RETURNS trigger AS $$
BEGIN IF NEW.comment = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER poison BEFORE INSERT ON responses FOR EACH ROW EXECUTE FUNCTION poison()`); err != nil {
		t.Fatal(err)
	}
	at := timestamppb.New(h.clock.Now())
	survey := func(id, comment string) *feedbackv1.SubmitSurveyResponseRequest {
		return &feedbackv1.SubmitSurveyResponseRequest{ResponseId: id, CustomerId: "cus_a",
			Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 10, Comment: comment, RespondedAt: at}
	}
	g1 := survey("g1", "nul\x00")
	g1.Source = "typeform"
	if _, err := h.client.SubmitSurveyResponse(ctx, g1); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a NUL over gRPC: %v, want InvalidArgument", err)
	}
	if _, err := h.client.SubmitReview(ctx, &feedbackv1.SubmitReviewRequest{ReviewId: "c", Platform: "a/b", CustomerId: "cus_a",
		Rating: 5, CreatedAt: at}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a platform with a slash: %v, want InvalidArgument", err)
	}
	if _, err := h.client.SubmitSurveyResponse(ctx, &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "d1", Source: "typeform", CustomerId: "cus_a",
		Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 0, RespondedAt: at}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.ResolveRecovery(ctx, &feedbackv1.ResolveRecoveryRequest{CaseId: "nps:typeform/d1", Agent: "ann",
		Outcome: feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_RECOVERED, Note: "called\x00"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a NUL in a note: %v, want InvalidArgument", err)
	}
	h.publish(t, "boomerang.feedback.in.survey.typeform", survey("r1", "fine"))
	h.publish(t, "boomerang.feedback.in.survey.typeform", survey("r2", "nul\x00"))
	h.publish(t, "boomerang.feedback.in.survey.hotjar", survey("r3", "poison"))
	h.publish(t, "boomerang.feedback.in.review.x", &feedbackv1.SubmitReviewRequest{ReviewId: "c", Platform: "a/b", CustomerId: "cus_a",
		Rating: 5, CreatedAt: at})
	h.publish(t, "boomerang.feedback.in.survey.typeform", survey("r4", "fine"))

	var dl jetstream.Consumer
	reasons := map[string]string{}
	for range 3 {
		m := h.next(t, orderbus.DeadLetterStream, &dl)
		reasons[m.Subject()+" "+m.Headers().Get(orderbus.HeaderReason)] = m.Headers().Get(orderbus.HeaderError)
	}
	for _, want := range []string{"boomerang.deadletter.feedback.typeform invalid_input", "boomerang.deadletter.feedback.hotjar processing_failed",
		"boomerang.deadletter.feedback.x invalid_input"} {
		if _, ok := reasons[want]; !ok {
			t.Errorf("dead letters %v: want %s", reasons, want)
		}
	}
	waitFor(t, "the good responses stored", func() bool {
		counts, err := h.svc.Store().Counts(ctx)
		return err == nil && counts["responses"] == 3
	})
	// Each dead letter is counted once, when DEADLETTER stores it, under
	// its reason, although a batch holding one is applied again message by
	// message (here, because of the processing failure) and writes it
	// again.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := h.svc.Relay().Flush(fctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"feedback/invalid_input": 2, "feedback/processing_failed": 1}
	if got := testkit.Counter(t, h.reader, "boomerang.deadletters", "service", "reason"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("boomerang.deadletters = %v, want %v", got, want)
	}
}

// TestRecoveryWork: ids are scoped by their source, so two survey tools'
// response "1" are two responses; only the agent holding a case may
// resolve it until the claim lapses; the queue follows the customers'
// current value, asked again once it is FEEDBACK_VALUE_MAX_AGE old.
func TestRecoveryWork(t *testing.T) {
	seg := &profiles{known: map[string]money.Money{"cus_a": {Minor: 100_00, Currency: "EUR"}, "cus_b": {Minor: 300_00, Currency: "EUR"}}}
	h := start(t, seg, map[string]string{"FEEDBACK_CLAIM_TTL": "2h"})
	ctx := context.Background()
	at := timestamppb.New(h.clock.Now())
	detractor := func(source, customer string) *feedbackv1.SubmitSurveyResponseRequest {
		return &feedbackv1.SubmitSurveyResponseRequest{ResponseId: "1", Source: source, CustomerId: customer,
			Kind: feedbackv1.SurveyKind_SURVEY_KIND_NPS, Score: 2, RespondedAt: at}
	}
	_, err := h.client.SubmitSurveyResponse(ctx, detractor("", "cus_a"))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "source") {
		t.Errorf("a response without its source: %v, want InvalidArgument naming source", err)
	}
	for _, r := range []*feedbackv1.SubmitSurveyResponseRequest{detractor("typeform", "cus_a"), detractor("delighted", "cus_b"), detractor("typeform", "cus_a")} {
		if _, err := h.client.SubmitSurveyResponse(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if counts, _ := h.svc.Store().Counts(ctx); counts["responses"] != 2 || counts["cases"] != 2 {
		t.Fatalf("counts %v: want the two tools' response 1 as two responses and two cases", counts)
	}
	queue := func() []*feedbackv1.RecoveryCase {
		q, err := h.client.ListRecoveryQueue(ctx, &feedbackv1.ListRecoveryQueueRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return q.GetCases()
	}
	q := queue()
	if len(q) != 2 || q[0].GetCaseId() != "nps:delighted/1" || q[1].GetCaseId() != "nps:typeform/1" ||
		!q[0].GetClvAsOf().AsTime().Equal(h.clock.Now()) {
		t.Fatalf("queue %v: want cus_b (300) before cus_a (100), valued now", q)
	}

	// Claims: ann takes cus_b's case; bob may neither take nor resolve it.
	resolve := func(id, agent string) (*feedbackv1.ResolveRecoveryResponse, error) {
		return h.client.ResolveRecovery(ctx, &feedbackv1.ResolveRecoveryRequest{CaseId: id, Agent: agent,
			Outcome: feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_RECOVERED})
	}
	if _, err := h.client.ClaimRecovery(ctx, &feedbackv1.ClaimRecoveryRequest{CaseId: "nps:delighted/1", Agent: "ann"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.ClaimRecovery(ctx, &feedbackv1.ClaimRecoveryRequest{CaseId: "nps:delighted/1", Agent: "bob"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("claim of ann's case by bob: %v, want FailedPrecondition", err)
	}
	if _, err := resolve("nps:delighted/1", "bob"); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("resolution of ann's case by bob: %v, want FailedPrecondition", err)
	}
	if _, err := h.client.ResolveRecovery(ctx, &feedbackv1.ResolveRecoveryRequest{CaseId: "nps:delighted/1",
		Outcome: feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_LOST}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("resolution without an agent: %v, want InvalidArgument", err)
	}
	// Two hours on, ann's claim has lapsed and bob closes the case.
	h.clock.Add(2 * time.Hour)
	res, err := resolve("nps:delighted/1", "bob")
	if err != nil || res.GetCase().GetClaimedBy() != "bob" || res.GetCase().GetCaseId() != "nps:delighted/1" {
		t.Fatalf("resolution after the claim lapsed: %v %v", res, err)
	}

	// cus_a's value rose since the case was opened: the fill-in asks again
	// and the queue shows the new value.
	seg.mu.Lock()
	seg.known["cus_a"] = money.Money{Minor: 5000_00, Currency: "EUR"}
	seg.mu.Unlock()
	if _, err := h.svc.Fill(ctx); err != nil {
		t.Fatal(err)
	}
	q = queue()
	if len(q) != 1 || q[0].GetClvValue().GetMinorUnits() != 5000_00 || !q[0].GetClvAsOf().AsTime().Equal(h.clock.Now()) {
		t.Errorf("queue after the value refresh: %v", q)
	}
	// An unclaimed case is claimed by whoever resolves it.
	if res, err := resolve("nps:typeform/1", "carl"); err != nil || res.GetCase().GetClaimedBy() != "carl" {
		t.Errorf("resolution of an unclaimed case: %v %v", res, err)
	}
}
