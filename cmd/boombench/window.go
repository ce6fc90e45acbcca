package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// window publishes asynchronously with at most size publishes awaiting
// their acks. Left to itself, PublishAsync fails with "stalled with too
// many outstanding async published messages" once the client's pending cap
// stays full for 200ms, which a busy server on a small machine does: how far
// a run got would depend on the machine's speed. A window waits for the
// oldest ack before it sends past its size, so the cap is never reached,
// and every ack is checked: a publish the server refused fails the run
// instead of being counted.
type window struct {
	js      jetstream.JetStream
	pending []jetstream.PubAckFuture // in publish order, oldest first
	head    int
}

// windowAckTimeout fails a publish whose ack never comes, so that a lost
// ack fails the run instead of holding a slot for ever.
const windowAckTimeout = time.Minute

// newWindow makes a window of its own publisher on nc: publishing loops
// that run at the same time do not share (and cannot exhaust) one
// client-side cap.
func newWindow(nc *nats.Conn, size int) (*window, error) {
	// The client's cap sits above the window, never reached by it.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(size+1), jetstream.WithPublishAsyncTimeout(windowAckTimeout))
	if err != nil {
		return nil, err
	}
	return &window{js: js, pending: make([]jetstream.PubAckFuture, 0, size)}, nil
}

// Reserve returns once fewer than the window's size await their acks, so
// that a caller timing its publishes can start the clock after the wait.
func (w *window) Reserve(ctx context.Context) error {
	if len(w.pending)-w.head == cap(w.pending) {
		return w.awaitOldest(ctx)
	}
	return nil
}

// Publish sends msg once fewer than the window's size await their acks.
func (w *window) Publish(ctx context.Context, msg *nats.Msg) error {
	if err := w.Reserve(ctx); err != nil {
		return err
	}
	if w.head > 0 && len(w.pending) == cap(w.pending) {
		// Slide the outstanding futures to the front.
		n := copy(w.pending, w.pending[w.head:])
		clear(w.pending[n:])
		w.pending, w.head = w.pending[:n], 0
	}
	f, err := w.js.PublishMsgAsync(msg)
	if err != nil {
		return fmt.Errorf("publish to %s: %w", msg.Subject, err)
	}
	w.pending = append(w.pending, f)
	return nil
}

// Wait returns when every publish has its ack, or with the first error;
// either way the window is empty afterwards, ready for the next round.
func (w *window) Wait(ctx context.Context) error {
	defer func() {
		clear(w.pending)
		w.pending, w.head = w.pending[:0], 0
	}()
	for w.head < len(w.pending) {
		if err := w.awaitOldest(ctx); err != nil {
			return err
		}
	}
	return nil
}

// InFlight is the number of publishes awaiting their acks.
func (w *window) InFlight() int { return len(w.pending) - w.head }

func (w *window) awaitOldest(ctx context.Context) error {
	f := w.pending[w.head]
	select {
	case <-f.Ok():
	case err := <-f.Err():
		return fmt.Errorf("publish to %s: %w", f.Msg().Subject, err)
	case <-ctx.Done():
		return ctx.Err()
	}
	w.pending[w.head] = nil
	w.head++
	return nil
}
