package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// slowAcks answers publishes to subject as a JetStream server that takes
// delay over each ack would: one ack at a time, in order.
func slowAcks(tb testing.TB, nc *nats.Conn, subject string, delay time.Duration) {
	tb.Helper()
	seq := 0
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		time.Sleep(delay)
		seq++
		_ = m.Respond([]byte(fmt.Sprintf(`{"stream":"SLOW","seq":%d}`, seq)))
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sub.Unsubscribe() })
}

// A publisher whose acks come slower than its client-side cap allows:
// unbounded PublishAsync stalls out, a window never does.
func TestWindowDoesNotStallOnSlowAcks(t *testing.T) {
	_, url := testkit.NATS(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	slowAcks(t, nc, "slow.acks", 250*time.Millisecond)
	const n, size = 6, 2

	t.Run("unbounded", func(t *testing.T) {
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(size))
		if err != nil {
			t.Fatal(err)
		}
		var stalled error
		for range n {
			if _, err := js.PublishAsync("slow.acks", []byte("x")); err != nil {
				stalled = err
				break
			}
		}
		<-js.PublishAsyncComplete()
		if !errors.Is(stalled, jetstream.ErrTooManyStalledMsgs) {
			t.Fatalf("unbounded publish of %d with acks 250ms apart (over the client's 200ms stall wait): got %v, want %v (the failure the window prevents)", n, stalled, jetstream.ErrTooManyStalledMsgs)
		}
	})
	t.Run("window", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		w, err := newWindow(nc, size)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := w.Publish(ctx, &nats.Msg{Subject: "slow.acks", Data: []byte("x")}); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
			if got := w.InFlight(); got > size {
				t.Fatalf("publish %d: %d in flight, want at most %d", i, got, size)
			}
		}
		if err := w.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if got := w.InFlight(); got != 0 {
			t.Fatalf("after Wait: %d in flight, want 0", got)
		}
	})
}

// Every message a window publishes to a real stream is stored once, and a
// publish the server refuses fails Wait.
func TestWindowStoresEveryMessage(t *testing.T) {
	_, url := testkit.NATS(t)
	nc, js := testkit.JetStream(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "W", Subjects: []string{"w.>"}, MaxMsgSize: 64}); err != nil {
		t.Fatal(err)
	}
	w, err := newWindow(nc, 64)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	for i := range n {
		if err := w.Publish(ctx, &nats.Msg{Subject: fmt.Sprintf("w.%d", i%7), Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "W")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Fatalf("stream holds %d messages, want %d", info.State.Msgs, n)
	}

	if err := w.Publish(ctx, &nats.Msg{Subject: "w.big", Data: make([]byte, 1024)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(ctx); err == nil {
		t.Fatal("Wait after a message over the stream's MaxMsgSize: got nil, want the server's error")
	}
}
