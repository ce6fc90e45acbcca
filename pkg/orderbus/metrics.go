package orderbus

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
)

// DeadLetters counts the dead letters stored on the DEADLETTER stream, by
// service and reason (boomerang.deadletters, boomerang_deadletters_total in
// Prometheus). Every service's outbox relay counts through it (Stored), so
// operators alert on one metric, and each dead letter counts once: a
// consumer may write the same dead letter again (a failed batch applied
// again message by message, an input redelivered), but JetStream stores
// its id once within the stream's duplicate window.
type DeadLetters struct {
	counter metric.Int64Counter
}

// NewDeadLetters returns the counter of dead letters.
func NewDeadLetters(meter metric.Meter) (*DeadLetters, error) {
	c, err := meter.Int64Counter("boomerang.deadletters",
		metric.WithDescription("Messages parked on the DEADLETTER stream, by service and reason"))
	if err != nil {
		return nil, err
	}
	return &DeadLetters{counter: c}, nil
}

// Stored is the outbox relay's Stored hook (outbox.RelayOptions.Stored):
// it counts m if it is a dead letter, under the service its subject names
// (DeadLetterRoot + <service>.<source>) and its reason. Other messages are
// ignored.
func (d *DeadLetters) Stored(ctx context.Context, m *nats.Msg) {
	rest, ok := strings.CutPrefix(m.Subject, DeadLetterRoot)
	if !ok {
		return
	}
	service, _, _ := strings.Cut(rest, ".")
	d.counter.Add(ctx, 1, metric.WithAttributes(attribute.String("service", service),
		attribute.String("reason", m.Header.Get(HeaderReason))))
}

// DeadLetterReason returns the reason of an outbox message that is a dead
// letter (DeadLetter made it), and false for any other message.
func DeadLetterReason(m outbox.Message) (string, bool) {
	if !strings.HasPrefix(m.Subject, DeadLetterRoot) {
		return "", false
	}
	return m.Header.Get(HeaderReason), true
}
