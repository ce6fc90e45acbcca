// Package events holds order-ingest's side of the bus: its streams and
// subjects, the canonical and dead-letter messages it writes to the outbox,
// and the consumer of the shops' order subjects.
package events

import (
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
	// OrdersPrefix + <kind>.<customer_id> is a canonical event's subject.
	OrdersPrefix = orderbus.Prefix
	// DeadLetterStream keeps input that could not be accepted.
	DeadLetterStream = orderbus.DeadLetterStream
	// DeadLetterPrefix + <source> is where rejected input goes.
	DeadLetterPrefix = orderbus.DeadLetterRoot + "ingest."
	// ConsumerName is the durable consumer of the input stream.
	ConsumerName = "order-ingest"
)

// Dead-letter headers.
const (
	HeaderReason          = orderbus.HeaderReason
	HeaderError           = orderbus.HeaderError
	HeaderOriginalSubject = orderbus.HeaderOriginalSubject
	HeaderOriginalSeq     = orderbus.HeaderOriginalSeq
)

// OrderSubject is the subject of a canonical event.
func OrderSubject(kindToken, customerID string) string {
	return orderbus.Subject(kindToken, customerID)
}

// DeadLetter is the outbox message that parks an input message with the
// reason it was not accepted.
func DeadLetter(m jetstream.Msg, source, reason, message string) outbox.Message {
	return orderbus.DeadLetter(m, "ingest", source, reason, message)
}
