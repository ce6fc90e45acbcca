package busrouter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// Through a real durable consumer: a message that always fails is parked
// after MaxAttempts while the dependencies answer, the messages around it
// are applied, and nothing is parked while the dependencies are down.
func TestRunParksOnlyTheBadMessage(t *testing.T) {
	ctx := context.Background()
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "IN", Subjects: []string{"in.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := js.Publish(ctx, "in.x", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.CreateConsumer(ctx, "IN", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu      sync.Mutex
		applied = map[int]int{}
		parked  []string
		down    = errors.New("database down")
	)
	r, _ := newRouter(t)
	route := Route[int]{Name: "test", Decode: decodeInt, DeadLetter: deadLetter, MaxAttempts: 3,
		Healthy: func(context.Context) error { mu.Lock(); defer mu.Unlock(); return down },
		Handle: func(_ context.Context, b Batch[int]) (Result, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range b.Messages {
				if m.Body == 7 {
					return Result{}, errors.New("poison")
				}
			}
			for _, m := range b.Messages {
				applied[m.Body]++
			}
			for _, d := range b.Dead {
				parked = append(parked, d.ID)
			}
			return Result{}, nil
		}}
	bc := natsx.NewBatchConsumer(cons, natsx.BatchOptions{MaxBatch: 8, AckWait: 3 * time.Second}, r.log)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, r, bc, route) }()
	time.Sleep(1500 * time.Millisecond) // several attempts while down
	mu.Lock()
	if len(parked) != 0 {
		t.Errorf("parked %v while the dependencies were down", parked)
	}
	down = nil
	mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n, p := len(applied), len(parked)
		mu.Unlock()
		if n == 19 && p == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("applied %d, parked %d; want 19 and 1", n, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if parked[0] != "dl-7" || applied[7] != 0 {
		t.Errorf("parked %v, applied[7] = %d", parked, applied[7])
	}
	for i := 0; i < 20; i++ {
		if i != 7 && applied[i] < 1 {
			t.Errorf("%s never applied", strconv.Itoa(i))
		}
	}
}
