// Package bus is order-ingest's side of the bus: its streams and
// subjects, the dead letters it parks input with, and the consumer of the
// shops' order subjects (route ingest.orders), which decodes JSON,
// CloudEvents JSON or protobuf input and hands it to the IngestOrders use
// case in batches. Input that cannot be accepted is parked on the
// dead-letter stream with its reason, in the same transaction, and acked:
// no message can crash or wedge the consumer.
package bus

import (
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
)

// Streams and subjects.
const (
	// InputStream captures what shops publish, so nothing is lost while
	// order-ingest is down.
	InputStream = streams.Ingest
	// InputPrefix + <source> is where a shop publishes its orders.
	InputPrefix = streams.IngestPrefix
	// OrdersStream holds the canonical order events.
	OrdersStream = orderbus.Stream
	// DeadLetterStream keeps input that could not be accepted.
	DeadLetterStream = orderbus.DeadLetterStream
	// ConsumerName is the durable consumer of the input stream.
	ConsumerName = "order-ingest"
)

// DeadLetter is the outbox message that parks an input message with the
// reason it was not accepted. It keeps the input's own headers (a webhook
// delivery's platform and topic), so that the body can be read again as
// it was captured.
func DeadLetter(m jetstream.Msg, source, reason, message string) outbox.Message {
	dl := orderbus.DeadLetter(m, "ingest", source, reason, message)
	for k, vs := range m.Headers() {
		if _, set := dl.Header[k]; !set && !strings.HasPrefix(k, "Nats-") {
			dl.Header[k] = vs
		}
	}
	return dl
}
