package natsx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func consumer(tb testing.TB, n int) (jetstream.Consumer, jetstream.JetStream) {
	tb.Helper()
	ctx := context.Background()
	_, url := testkit.NATS(tb)
	_, js := testkit.JetStream(tb, url)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "IN", Subjects: []string{"in.>"}}); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := js.Publish(ctx, "in.x", []byte(fmt.Sprint(i))); err != nil {
			tb.Fatal(err)
		}
	}
	c, err := js.CreateConsumer(ctx, "IN", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 3 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return c, js
}

// A failing batch is retried in place: nothing after it is applied first,
// panics are survived, and every message is applied once, in order.
func TestBatchConsumerKeepsOrderThroughFailures(t *testing.T) {
	cons, _ := consumer(t, 200)
	bc := natsx.NewBatchConsumer(cons, natsx.BatchOptions{MaxBatch: 16, LaterDelay: 100 * time.Millisecond, AckWait: 3 * time.Second}, quiet)
	var (
		mu      sync.Mutex
		applied []string
		calls   int
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- bc.Run(ctx, func(_ context.Context, msgs []jetstream.Msg, attempt int) ([]jetstream.Msg, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			switch {
			case calls == 2:
				return nil, errors.New("database restarting")
			case calls == 4:
				panic("bug")
			}
			for _, m := range msgs {
				applied = append(applied, string(m.Data()))
			}
			if len(applied) >= 200 {
				cancel()
			}
			return nil, nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("stuck after %d of 200", len(applied))
	}
	for i, s := range applied {
		if s != fmt.Sprint(i) {
			t.Fatalf("applied[%d] = %s: out of order or twice", i, s)
		}
	}
	// Acks are asynchronous: give the last ones a moment to land.
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ack pending %d, pending %d after the run", info.NumAckPending, info.NumPending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Messages a handler puts off come back later; the rest are acked.
func TestBatchConsumerLater(t *testing.T) {
	cons, _ := consumer(t, 10)
	bc := natsx.NewBatchConsumer(cons, natsx.BatchOptions{MaxBatch: 10, LaterDelay: 100 * time.Millisecond}, quiet)
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := bc.Run(ctx, func(_ context.Context, msgs []jetstream.Msg, _ int) ([]jetstream.Msg, error) {
		var later []jetstream.Msg
		for _, m := range msgs {
			seen[string(m.Data())]++
			if string(m.Data()) == "3" && seen["3"] < 3 {
				later = append(later, m)
			}
		}
		if seen["3"] == 3 {
			cancel()
		}
		return later, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen["3"] != 3 || seen["4"] != 1 {
		t.Fatalf("seen %v: want message 3 three times, the others once", seen)
	}
}
