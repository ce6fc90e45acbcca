package natsx

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// IsolateOptions says when and how Isolate parks a message that keeps
// failing.
type IsolateOptions struct {
	// MaxAttempts is how often one message may fail before it is parked.
	MaxAttempts int
	// Healthy reports whether what the handler depends on (its database)
	// answers: a message is parked only then, so an outage never
	// dead-letters anything; the consumer waits instead.
	Healthy func(context.Context) error
	// Park puts the message away for good with the error that stopped it
	// (a dead letter written with the handler's outbox); the message is
	// then acked.
	Park func(ctx context.Context, m jetstream.Msg, err error) error
	Log  *slog.Logger
}

// Isolate wraps a batch handler so that no message can hold back the
// others: when a batch of several messages fails, its messages are handed
// to the handler one at a time (those applied before the bad one are
// duplicates when the batch comes back, so the handler must be
// idempotent), and a single message that has failed MaxAttempts times while
// Healthy says the dependencies answer is parked.
func Isolate(handle BatchHandler, o IsolateOptions) BatchHandler {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	var isolated BatchHandler
	isolated = func(ctx context.Context, msgs []jetstream.Msg, attempt int) ([]jetstream.Msg, error) {
		later, err := handle(ctx, msgs, attempt)
		if err == nil || errors.Is(err, context.Canceled) {
			return later, err
		}
		if len(msgs) > 1 {
			o.Log.WarnContext(ctx, "batch failed; applying its messages one by one", "size", len(msgs), "attempt", attempt, "error", err)
			var all []jetstream.Msg
			for _, m := range msgs {
				l, err := isolated(ctx, []jetstream.Msg{m}, attempt)
				if err != nil {
					return nil, err
				}
				all = append(all, l...)
			}
			return all, nil
		}
		if attempt >= o.MaxAttempts && o.Healthy != nil && o.Healthy(ctx) == nil && o.Park != nil {
			o.Log.ErrorContext(ctx, "message parked after repeated failures", "subject", msgs[0].Subject(), "attempt", attempt, "error", err)
			if perr := o.Park(ctx, msgs[0], err); perr != nil {
				return nil, perr
			}
			return nil, nil
		}
		return nil, err
	}
	return isolated
}
