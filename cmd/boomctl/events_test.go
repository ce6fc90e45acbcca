package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// bus is a NATS server with an ORDERS-like and a dead-letter-like stream.
type bus struct {
	url string
	js  jetstream.JetStream
}

func startBus(tb testing.TB) *bus {
	tb.Helper()
	_, url := testkit.NATS(tb)
	_, js := testkit.JetStream(tb, url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, cfg := range []jetstream.StreamConfig{
		{Name: "ORDERS", Subjects: []string{"boomerang.orders.v1.>"}},
		{Name: "DEADLETTER", Subjects: []string{"boomerang.deadletter.>"}},
	} {
		if _, err := natsx.EnsureStream(ctx, js, cfg); err != nil {
			tb.Fatal(err)
		}
	}
	return &bus{url: url, js: js}
}

func (b *bus) publish(tb testing.TB, msg *nats.Msg) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		tb.Fatal(err)
	}
}

func (b *bus) publishEvent(tb testing.TB, ev *ordersv1.OrderEvent) {
	tb.Helper()
	data, err := proto.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	b.publish(tb, &nats.Msg{
		Subject: "boomerang.orders.v1.paid." + ev.GetCustomerId(),
		Header:  natsx.ProtoHeader(context.Background(), ev.GetEventId(), ev),
		Data:    data,
	})
}

// waitConsumer waits until the stream has a consumer: the follow command
// is then listening, and what is published next reaches it.
func (b *bus) waitConsumer(tb testing.TB, stream string) {
	tb.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s, err := b.js.Stream(ctx, stream)
		if err != nil {
			tb.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if info.State.Consumers > 0 {
			return
		}
	}
	tb.Fatalf("no consumer on %s within 10s", stream)
}

func TestFollow(t *testing.T) {
	b := startBus(t)
	ev := &ordersv1.OrderEvent{
		EventId: "evt-1", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, Source: "shop-eu", OrderId: "1001",
		CustomerId: "cus_1", Total: &commonv1.Money{MinorUnits: 12000, Currency: "EUR"}, OrderSequence: 1,
	}
	b.publishEvent(t, ev)
	dead := nats.NewMsg("boomerang.deadletter.ingest.shop-eu")
	dead.Data = []byte(`{"order_id": "1001", "kind": "refunded"}`)
	dead.Header.Set("Boomerang-Reason", "refund_exceeds_remaining")
	dead.Header.Set("Boomerang-Error", "refund of 500.00 EUR exceeds the 120.00 EUR left")
	dead.Header.Set("Nats-Msg-Id", "dl-1")
	b.publish(t, dead)
	binary := nats.NewMsg("boomerang.deadletter.ingest.shop-jp")
	binary.Data = []byte{0xff, 0xfe, 0x00, 0x01}
	b.publish(t, binary)

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
		notStdout  []string
	}{
		{
			name:     "order events decoded, stream found by subject",
			args:     []string{"events", "follow", "boomerang.orders.v1.>", "--from", "all", "--limit", "1"},
			wantCode: exitOK,
			wantStdout: []string{
				"--- boomerang.orders.v1.paid.cus_1  (ORDERS #1, ",
				"Nats-Msg-Id: evt-1\n", "Boomerang-Type: boomerang.orders.v1.OrderEvent\n",
				`"eventId": "evt-1"`, `"minorUnits": "12000"`,
			},
		},
		{
			name:     "dead letters raw, with their reasons",
			args:     []string{"events", "follow", "boomerang.deadletter.>", "--from", "all", "--limit", "2"},
			wantCode: exitOK,
			wantStdout: []string{
				"--- boomerang.deadletter.ingest.shop-eu", "Nats-Msg-Id: dl-1\n",
				"Boomerang-Reason: refund_exceeds_remaining\n", "Boomerang-Error: refund of 500.00 EUR exceeds the 120.00 EUR left\n",
				`{"order_id": "1001", "kind": "refunded"}`,
				"--- boomerang.deadletter.ingest.shop-jp", "(4 bytes, not UTF-8)", "ff fe 00 01",
			},
		},
		{
			name:       "explicit stream and a narrower subject",
			args:       []string{"events", "follow", "boomerang.deadletter.ingest.shop-jp", "--stream", "DEADLETTER", "--from", "all", "--limit", "1"},
			wantCode:   exitOK,
			wantStdout: []string{"--- boomerang.deadletter.ingest.shop-jp"},
			notStdout:  []string{"shop-eu"},
		},
		{
			name:       "all headers",
			args:       []string{"events", "follow", "boomerang.orders.v1.>", "--from", "all", "--limit", "1", "--all-headers"},
			wantCode:   exitOK,
			wantStdout: []string{"Content-Type: application/protobuf\n", "Nats-Msg-Id: evt-1\n"},
		},
		{
			name:       "no stream for the subject",
			args:       []string{"events", "follow", "nowhere.>", "--from", "all"},
			wantCode:   exitFailure,
			wantStderr: []string{`no stream captures "nowhere.>"; name one with --stream`},
		},
		{
			name:       "bad --from",
			args:       []string{"events", "follow", "boomerang.orders.v1.>", "--from", "yesterday"},
			wantCode:   exitUsage,
			wantStderr: []string{`--from: want new or all, got "yesterday"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got := boomctl(t, ctx, nil, "", append([]string{"--timeout", "5s"}, append(tt.args, "--nats", b.url)...)...)
			if got.code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", got.code, tt.wantCode, got.stdout, got.stderr)
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(got.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, got.stdout)
				}
			}
			for _, s := range tt.notStdout {
				if strings.Contains(got.stdout, s) {
					t.Errorf("stdout has %q:\n%s", s, got.stdout)
				}
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(got.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, got.stderr)
				}
			}
		})
	}
}

func TestFollowJSON(t *testing.T) {
	b := startBus(t)
	ev := &ordersv1.OrderEvent{EventId: "evt-1", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, CustomerId: "cus_1", OrderSequence: 1}
	b.publishEvent(t, ev)
	text := nats.NewMsg("boomerang.deadletter.ingest.shop-eu")
	text.Data = []byte("not json at all")
	text.Header.Set("Boomerang-Reason", "malformed")
	b.publish(t, text)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := boomctl(t, ctx, nil, "", "-o", "json", "events", "follow", "boomerang.>", "--stream", "ORDERS", "--from", "all", "--limit", "1", "--nats", b.url)
	if got.code != exitOK {
		t.Fatalf("exit code %d: %s", got.code, got.stderr)
	}
	got2 := boomctl(t, ctx, nil, "", "-o", "json", "events", "follow", "boomerang.deadletter.>", "--from", "all", "--limit", "1", "--nats", b.url)
	if got2.code != exitOK {
		t.Fatalf("exit code %d: %s", got2.code, got2.stderr)
	}

	lines := strings.Split(strings.TrimSpace(got.stdout+got2.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per message:\n%s", len(lines), got.stdout+got2.stdout)
	}
	var first, second followedMessage
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	back := &ordersv1.OrderEvent{}
	if err := protojson.Unmarshal(first.Payload, back); err != nil || !proto.Equal(back, ev) {
		t.Errorf("payload %s does not decode to the event (%v)", first.Payload, err)
	}
	if first.Subject != "boomerang.orders.v1.paid.cus_1" || first.Stream != "ORDERS" || first.Sequence != 1 || first.Headers["Nats-Msg-Id"] != "evt-1" {
		t.Errorf("first message: %+v", first)
	}
	var payload string
	if err := json.Unmarshal(second.Payload, &payload); err != nil || payload != "not json at all" || second.Headers["Boomerang-Reason"] != "malformed" {
		t.Errorf("second message: %+v (%v)", second, err)
	}
}

// TestFollowNew checks that --from new skips what the stream already
// holds.
func TestFollowNew(t *testing.T) {
	b := startBus(t)
	b.publishEvent(t, &ordersv1.OrderEvent{EventId: "old", CustomerId: "cus_1"})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		done <- boomctl(t, ctx, nil, "", "events", "follow", "boomerang.orders.v1.>", "--limit", "1", "--nats", b.url)
	}()
	b.waitConsumer(t, "ORDERS")
	b.publishEvent(t, &ordersv1.OrderEvent{EventId: "new", CustomerId: "cus_1"})
	got := <-done
	if got.code != exitOK {
		t.Errorf("exit code %d, want 0: %s", got.code, got.stderr)
	}
	if !strings.Contains(got.stdout, "Nats-Msg-Id: new") || strings.Contains(got.stdout, "Nats-Msg-Id: old") {
		t.Errorf("stdout:\n%s\nwant only the message published after the start", got.stdout)
	}
}

// TestFollowInterrupt checks that cancelling the context, which Ctrl-C
// does in main, ends following with success.
func TestFollowInterrupt(t *testing.T) {
	b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	interrupt, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan result, 1)
	go func() {
		done <- boomctl(t, interrupt, nil, "", "events", "follow", "boomerang.orders.v1.>", "--nats", b.url)
	}()
	b.waitConsumer(t, "ORDERS")
	stop()
	select {
	case got := <-done:
		if got.code != exitOK || got.stderr != "" {
			t.Errorf("exit code %d, stderr %q; want 0 and nothing", got.code, got.stderr)
		}
	case <-ctx.Done():
		t.Fatal("follow did not stop after the interrupt")
	}
}
