package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// BatchHandler applies a batch of messages; attempt counts from 1 for
// each try of the same batch. On success it returns the messages to see
// again later (redelivered after BatchOptions.LaterDelay); every other
// message is done with (applied, or dead-lettered in the same transaction)
// and is acked. An error means nothing was applied: the same batch is tried
// again in place, so that later messages never overtake it.
type BatchHandler func(ctx context.Context, msgs []jetstream.Msg, attempt int) (later []jetstream.Msg, err error)

// BatchOptions tunes a BatchConsumer.
type BatchOptions struct {
	// MaxBatch is the most messages handed to the handler at once.
	MaxBatch int
	// Linger is how long to wait for more messages once one has arrived
	// (0: take only what is already buffered).
	Linger time.Duration
	// LaterDelay is when messages a handler put off come back.
	LaterDelay time.Duration
	// AckWait is the consumer's ack wait: a batch being retried renews its
	// lease well within it.
	AckWait time.Duration
}

// BatchConsumer feeds a durable pull consumer's messages to a handler in
// batches, acking after the handler succeeds. One consumer applies batches
// one after another, so messages on a subject are applied in order.
type BatchConsumer struct {
	cons jetstream.Consumer
	opts BatchOptions
	log  *slog.Logger
}

// NewBatchConsumer returns a consumer; Run starts it.
func NewBatchConsumer(cons jetstream.Consumer, opts BatchOptions, log *slog.Logger) *BatchConsumer {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.LaterDelay <= 0 {
		opts.LaterDelay = 30 * time.Second
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 30 * time.Second
	}
	return &BatchConsumer{cons: cons, opts: opts, log: log}
}

// Run consumes until ctx is cancelled. In-flight batches finish; messages
// buffered but not handled are left unacked and will be redelivered.
func (c *BatchConsumer) Run(ctx context.Context, handle BatchHandler) error {
	return RunPipeline(ctx, c,
		func(context.Context, []jetstream.Msg) struct{} { return struct{}{} },
		func(ctx context.Context, msgs []jetstream.Msg, _ struct{}, attempt int) ([]jetstream.Msg, error) {
			return handle(ctx, msgs, attempt)
		})
}

// Prepared is a batch with the result of its preparation.
type prepared[T any] struct {
	msgs []jetstream.Msg
	work T
}

// RunPipeline is Run in two stages: prepare does a batch's CPU work
// (decoding, checking) while the previous batch is applied, and apply
// applies batches strictly one after another, as Run's handler does. A
// prepared batch waits until every batch before it is applied, so order is
// kept.
func RunPipeline[T any](ctx context.Context, c *BatchConsumer,
	prepare func(ctx context.Context, msgs []jetstream.Msg) T,
	apply func(ctx context.Context, msgs []jetstream.Msg, work T, attempt int) (later []jetstream.Msg, err error),
) error {
	msgs := make(chan jetstream.Msg, c.opts.MaxBatch*2)
	cc, err := c.cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	},
		jetstream.PullMaxMessages(c.opts.MaxBatch*2),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				c.log.Warn("consume", "error", err)
			}
		}),
	)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()

	ready := make(chan prepared[T], 1)
	stopped := make(chan struct{})
	go func() {
		defer close(ready)
		for {
			batch := make([]jetstream.Msg, 0, c.opts.MaxBatch)
			select {
			case <-ctx.Done():
				return
			case <-stopped:
				return
			case m := <-msgs:
				batch = append(batch, m)
			}
			batch = c.fill(ctx, msgs, batch)
			work, err := safePrepare(ctx, prepare, batch)
			if err != nil {
				// Preparing must not fail; should it panic, the batch is
				// handed back rather than lost.
				c.log.Error("prepare failed; handing the batch back", "size", len(batch), "error", err)
				for _, m := range batch {
					_ = m.NakWithDelay(c.opts.LaterDelay)
				}
				continue
			}
			select {
			case ready <- prepared[T]{msgs: batch, work: work}:
			case <-stopped:
				nakAll(batch)
				return
			}
		}
	}()
	defer func() {
		close(stopped)
		for p := range ready {
			nakAll(p.msgs) // prepared but never applied
		}
	}()

	for p := range ready {
		later, ok := c.applyUntilDone(ctx, func(ctx context.Context, msgs []jetstream.Msg, attempt int) ([]jetstream.Msg, error) {
			return apply(ctx, msgs, p.work, attempt)
		}, p.msgs)
		if !ok {
			// Shutting down with the batch unapplied: hand it back now.
			nakAll(p.msgs)
			return nil
		}
		c.settle(p.msgs, later)
	}
	return nil
}

func safePrepare[T any](ctx context.Context, prepare func(context.Context, []jetstream.Msg) T, batch []jetstream.Msg) (work T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("prepare panic: %v", r)
		}
	}()
	return prepare(ctx, batch), nil
}

func nakAll(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Nak()
	}
}

// settle acks an applied batch, except the messages put off for later.
func (c *BatchConsumer) settle(batch, later []jetstream.Msg) {
	put := make(map[jetstream.Msg]bool, len(later))
	for _, m := range later {
		put[m] = true
	}
	for _, m := range batch {
		var err error
		if put[m] {
			err = m.NakWithDelay(c.opts.LaterDelay)
		} else {
			// The change is committed; should the ack be lost, the
			// redelivery is a no-op for the idempotent handler.
			err = m.Ack()
		}
		if err != nil {
			c.log.Warn("ack", "error", err)
		}
	}
}

// applyUntilDone runs the handler on the batch until it succeeds, backing
// off between attempts and renewing the messages' lease meanwhile. It
// returns false when ctx ends first.
func (c *BatchConsumer) applyUntilDone(ctx context.Context, handle BatchHandler, batch []jetstream.Msg) ([]jetstream.Msg, bool) {
	retry := &backoff.ExponentialBackOff{
		InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.2, Multiplier: 2, MaxInterval: 10 * time.Second,
	}
	retry.Reset()
	for attempt := 1; ; attempt++ {
		later, err := c.apply(ctx, handle, batch, attempt)
		if err == nil {
			return later, true
		}
		delay := retry.NextBackOff()
		c.log.Error("batch failed; trying it again", "size", len(batch), "attempt", attempt, "retry_in", delay, "error", err)
		renew := time.NewTicker(c.opts.AckWait / 3)
		wait := time.NewTimer(delay)
	waiting:
		for {
			select {
			case <-ctx.Done():
				renew.Stop()
				wait.Stop()
				return nil, false
			case <-renew.C:
				for _, m := range batch {
					_ = m.InProgress()
				}
			case <-wait.C:
				break waiting
			}
		}
		renew.Stop()
		for _, m := range batch {
			_ = m.InProgress()
		}
	}
}

func (c *BatchConsumer) fill(ctx context.Context, msgs <-chan jetstream.Msg, batch []jetstream.Msg) []jetstream.Msg {
	var timeout <-chan time.Time
	if c.opts.Linger > 0 {
		t := time.NewTimer(c.opts.Linger)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < c.opts.MaxBatch {
		select {
		case m := <-msgs:
			batch = append(batch, m)
			continue
		default:
		}
		if timeout == nil {
			return batch
		}
		select {
		case m := <-msgs:
			batch = append(batch, m)
		case <-timeout:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// apply runs the handler, turning a panic into an error so that no input
// can crash the consumer.
func (c *BatchConsumer) apply(ctx context.Context, handle BatchHandler, batch []jetstream.Msg, attempt int) (later []jetstream.Msg, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	// The batch is finished even when shutdown starts: its messages are
	// already leased to us.
	return handle(context.WithoutCancel(ctx), batch, attempt)
}

// ObserveLag reports the consumer's pending and unacknowledged message
// counts as gauges (boomerang.consumer.pending, .ack_pending) read when
// metrics are collected.
func ObserveLag(meter metric.Meter, cons jetstream.Consumer, name string) error {
	pending, err := meter.Int64ObservableGauge("boomerang.consumer.pending",
		metric.WithDescription("Messages in the stream not yet delivered to the consumer (consumer lag)"))
	if err != nil {
		return err
	}
	ackPending, err := meter.Int64ObservableGauge("boomerang.consumer.ack_pending",
		metric.WithDescription("Messages delivered to the consumer and not yet acknowledged"))
	if err != nil {
		return err
	}
	attrs := metric.WithAttributes(attribute.String("consumer", name))
	_, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		info, err := cons.Info(ctx)
		if err != nil {
			return nil // no reading this time; the scrape goes on
		}
		o.ObserveInt64(pending, int64(info.NumPending), attrs)
		o.ObserveInt64(ackPending, int64(info.NumAckPending), attrs)
		return nil
	}, pending, ackPending)
	return err
}
