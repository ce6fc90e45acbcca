package orderbus

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
)

// DeadLetters counts the dead letters a service writes, by reason
// (boomerang.deadletters, boomerang_deadletters_total in Prometheus, with
// the attributes service and reason). Every service that dead-letters
// counts through it, so operators alert on one metric.
type DeadLetters struct {
	counter metric.Int64Counter
	service attribute.KeyValue
}

// NewDeadLetters returns the counter of one service's dead letters.
func NewDeadLetters(meter metric.Meter, service string) (*DeadLetters, error) {
	c, err := meter.Int64Counter("boomerang.deadletters",
		metric.WithDescription("Messages parked on the DEADLETTER stream, by service and reason"))
	if err != nil {
		return nil, err
	}
	return &DeadLetters{counter: c, service: attribute.String("service", service)}, nil
}

// Committed counts the dead letters among msgs. Call it once the
// transaction that wrote msgs to the outbox has committed: a rolled-back
// dead letter was never written, and a retried one is written once.
// Messages that are not dead letters are ignored.
func (d *DeadLetters) Committed(ctx context.Context, msgs []outbox.Message) {
	if d == nil {
		return
	}
	for i := range msgs {
		if reason, ok := DeadLetterReason(msgs[i]); ok {
			d.Add(ctx, reason, 1)
		}
	}
}

// Add counts n committed dead letters of one reason.
func (d *DeadLetters) Add(ctx context.Context, reason string, n int64) {
	if d == nil || n <= 0 {
		return
	}
	d.counter.Add(ctx, n, metric.WithAttributes(d.service, attribute.String("reason", reason)))
}

// DeadLetterReason returns the reason of an outbox message that is a dead
// letter (DeadLetter made it), and false for any other message.
func DeadLetterReason(m outbox.Message) (string, bool) {
	if !strings.HasPrefix(m.Subject, DeadLetterRoot) {
		return "", false
	}
	return m.Header.Get(HeaderReason), true
}
