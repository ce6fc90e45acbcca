package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// BatchHandler applies a batch of messages. It returns nil when every
// message is done with (applied, or dead-lettered in the same transaction):
// the batch is then acked. An error means nothing was applied: the batch is
// handed back for redelivery.
type BatchHandler func(ctx context.Context, msgs []jetstream.Msg) error

// BatchOptions tunes a BatchConsumer.
type BatchOptions struct {
	// MaxBatch is the most messages handed to the handler at once.
	MaxBatch int
	// Linger is how long to wait for more messages once one has arrived
	// (0: take only what is already buffered).
	Linger time.Duration
	// NakDelay is how long a failed batch waits before redelivery.
	NakDelay time.Duration
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
	if opts.NakDelay <= 0 {
		opts.NakDelay = time.Second
	}
	return &BatchConsumer{cons: cons, opts: opts, log: log}
}

// Run consumes until ctx is cancelled. In-flight batches finish; messages
// buffered but not handled are left unacked and will be redelivered.
func (c *BatchConsumer) Run(ctx context.Context, handle BatchHandler) error {
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

	batch := make([]jetstream.Msg, 0, c.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			batch = append(batch, m)
		}
		batch = c.fill(ctx, msgs, batch)
		if err := c.apply(ctx, handle, batch); err != nil {
			c.log.Error("batch failed; handing it back", "size", len(batch), "error", err)
			for _, m := range batch {
				_ = m.NakWithDelay(c.opts.NakDelay)
			}
			continue
		}
		for _, m := range batch {
			if err := m.Ack(); err != nil {
				// The change is committed; a redelivery is a no-op for the
				// idempotent handler.
				c.log.Warn("ack", "error", err)
			}
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
func (c *BatchConsumer) apply(ctx context.Context, handle BatchHandler, batch []jetstream.Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	// The batch is finished even when shutdown starts: its messages are
	// already leased to us.
	return handle(context.WithoutCancel(ctx), batch)
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
