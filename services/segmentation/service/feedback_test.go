package service_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/feedbackbus"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/service"
)

func agonyEvent(id, customer string, at time.Time) *feedbackv1.FeedbackEvent {
	return &feedbackv1.FeedbackEvent{EventId: id, CustomerId: customer, OccurredAt: timestamppb.New(at),
		Event: &feedbackv1.FeedbackEvent_Agony{Agony: &feedbackv1.AgonyDetected{CaseId: "case-" + id,
			Reason: feedbackv1.AgonyReason_AGONY_REASON_NEGATIVE_REVIEW}}}
}

func resolvedEvent(id, customer string, at time.Time, outcome feedbackv1.RecoveryOutcome) *feedbackv1.FeedbackEvent {
	return &feedbackv1.FeedbackEvent{EventId: id, CustomerId: customer, OccurredAt: timestamppb.New(at),
		Event: &feedbackv1.FeedbackEvent_RecoveryResolved{RecoveryResolved: &feedbackv1.RecoveryResolved{CaseId: "case",
			Outcome: outcome, Agent: "ann"}}}
}

// publishFeedback publishes ev as the feedback service's outbox does; with
// msgID false it has no Nats-Msg-Id, so that JetStream stores it again as
// a replay from after the duplicate window would.
func publishFeedback(tb testing.TB, js jetstream.JetStream, token string, ev *feedbackv1.FeedbackEvent, msgID bool) {
	tb.Helper()
	data, err := proto.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	h := natsx.ProtoHeader(context.Background(), ev.GetEventId(), ev)
	if !msgID {
		h.Del(jetstream.MsgIDHeader)
	}
	msg := &nats.Msg{Subject: feedbackbus.Subject(token, ev.GetCustomerId()), Data: data, Header: h}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		tb.Fatal(err)
	}
}

// TestFeedbackAgony runs the service before the feedback service ever
// did: it creates FEEDBACK itself, and agony and recovery events published
// there set and clear the agony flag of GetProfile. A redelivered old
// agony event after the clearing, agony reported before a customer's first
// order, a lost case and junk on the stream are covered too.
func TestFeedbackAgony(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "seg.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg, err := service.LoadConfig(config.Map(map[string]string{"BOOMERANG_BASE_CURRENCY": "EUR"}))
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	svc, err := service.New(ctx, cfg, service.Deps{DB: db, JetStream: js,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Tracer: tracenoop.NewTracerProvider(), Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, feedbackbus.Stream)
	if err != nil {
		t.Fatalf("FEEDBACK not created: %v", err)
	}
	st, _ := streams.Lookup(feedbackbus.Stream)
	if want := st.Config(1, 0); !slices.Equal(stream.CachedInfo().Config.Subjects, want.Subjects) ||
		stream.CachedInfo().Config.Duplicates != want.Duplicates {
		t.Errorf("FEEDBACK config %+v, want %+v", stream.CachedInfo().Config, want)
	}
	g := grpc.NewServer()
	svc.Register(g)
	cc, err := grpc.NewClient(testkit.GRPC(t, g), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := segmentationv1.NewSegmentationServiceClient(cc)
	agony := func(id string) (bool, error) {
		p, err := client.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: id})
		if err != nil {
			return false, err
		}
		return slices.Contains(p.GetFlags(), segmentationv1.Flag_FLAG_AGONY), nil
	}
	waitAgony := func(id string, want bool) {
		t.Helper()
		waitFor(t, func() bool {
			got, err := agony(id)
			return err == nil && got == want
		})
	}
	// settled waits until the FEEDBACK consumer has applied everything
	// published.
	settled := func() {
		t.Helper()
		waitFor(t, func() bool {
			c, err := js.Consumer(ctx, feedbackbus.Stream, "segmentation-feedback")
			if err != nil {
				return false
			}
			info, err := c.Info(ctx)
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0
		})
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	now := time.Now().UTC()
	paid := ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
	publish(t, js, "paid", orderEvent("e1", "ann", "o1", paid, now.AddDate(0, 0, -3), 5000))
	publish(t, js, "paid", orderEvent("e2", "lou", "o2", paid, now.AddDate(0, 0, -3), 5000))
	waitFor(t, func() bool {
		_, errA := agony("ann")
		_, errL := agony("lou")
		return errA == nil && errL == nil
	})

	t1, t2, t3 := now.Add(-time.Hour), now.Add(-30*time.Minute), now.Add(-10*time.Minute)
	old := agonyEvent("agony-1", "ann", t1)
	publishFeedback(t, js, feedbackbus.SubjectAgony, old, true)
	waitAgony("ann", true)

	publishFeedback(t, js, feedbackbus.SubjectRecovered, resolvedEvent("resolved-1", "ann", t2, feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_RECOVERED), true)
	waitAgony("ann", false)

	// The old agony event again, as a replay would deliver it: older than
	// the recovery, it changes nothing.
	publishFeedback(t, js, feedbackbus.SubjectAgony, old, false)
	settled()
	if on, err := agony("ann"); err != nil || on {
		t.Errorf("ann after an old agony event replayed: agony %v, %v; want cleared", on, err)
	}

	// A lost case keeps the flag.
	publishFeedback(t, js, feedbackbus.SubjectAgony, agonyEvent("agony-2", "lou", t1), true)
	publishFeedback(t, js, feedbackbus.SubjectRecovered, resolvedEvent("resolved-2", "lou", t2, feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_LOST), true)
	// Agony before the first order: the order finds it.
	publishFeedback(t, js, feedbackbus.SubjectAgony, agonyEvent("agony-3", "new", t3), true)
	if _, err := js.Publish(ctx, feedbackbus.Subject(feedbackbus.SubjectAgony, "junk"), []byte("not protobuf \xff")); err != nil {
		t.Fatal(err)
	}
	settled()
	publish(t, js, "paid", orderEvent("e3", "new", "o3", paid, now.AddDate(0, 0, -1), 3000))
	waitAgony("new", true)
	if on, err := agony("lou"); err != nil || !on {
		t.Errorf("lou after a lost case: agony %v, %v; want kept", on, err)
	}
	waitFor(t, func() bool {
		_ = svc.Relay().Flush(ctx)
		return streamCount(ctx, js, orderbus.DeadLetterStream) == 1
	})
	waitFor(t, func() bool {
		got := testkit.Counter(t, reader, "boomerang.deadletters", "service")
		return len(got) == 1 && got["segmentation"] == 1
	})

	// The hot store rebuilt from SQL has the same flags.
	if _, err := svc.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"ann": false, "lou": true, "new": true} {
		if on, err := agony(id); err != nil || on != want {
			t.Errorf("%s after rebuild: agony %v, %v; want %v", id, on, err, want)
		}
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
