// Package events holds order-ingest's side of the bus: its streams and
// subjects, the canonical and dead-letter messages it writes to the outbox,
// and the consumer of the shops' order subjects.
package events

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/store"
)

// Streams and subjects.
const (
	// InputStream captures what shops publish, so nothing is lost while
	// order-ingest is down.
	InputStream = "INGEST"
	// InputPrefix + <source> is where a shop publishes its orders.
	InputPrefix = "boomerang.ingest.orders."
	// OrdersStream holds the canonical order events.
	OrdersStream = "ORDERS"
	// OrdersPrefix + <kind>.<customer_id> is a canonical event's subject.
	OrdersPrefix = "boomerang.orders.v1."
	// DeadLetterStream keeps input that could not be accepted.
	DeadLetterStream = "DEADLETTER"
	// DeadLetterPrefix + <source> is where rejected input goes.
	DeadLetterPrefix = "boomerang.deadletter.ingest."
	// ConsumerName is the durable consumer of the input stream.
	ConsumerName = "order-ingest"
)

// Dead-letter headers.
const (
	HeaderReason          = "Boomerang-Reason"
	HeaderError           = "Boomerang-Error"
	HeaderOriginalSubject = "Boomerang-Original-Subject"
	HeaderOriginalSeq     = "Boomerang-Original-Sequence"
)

// StreamOptions sizes the streams.
type StreamOptions struct {
	Replicas       int
	InputMaxAge    time.Duration
	OrdersMaxAge   time.Duration
	DeadLetterAge  time.Duration
	MaxPayload     int32
	DuplicateAfter time.Duration
}

// EnsureStreams creates or updates the streams order-ingest uses.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.DuplicateAfter <= 0 {
		o.DuplicateAfter = 2 * time.Minute
	}
	for _, cfg := range []jetstream.StreamConfig{
		{
			Name: InputStream, Subjects: []string{InputPrefix + ">"}, Storage: jetstream.FileStorage,
			MaxAge: o.InputMaxAge, Duplicates: o.DuplicateAfter, Replicas: o.Replicas,
			Description: "Order events as shops publish them",
		},
		{
			Name: OrdersStream, Subjects: []string{OrdersPrefix + ">"}, Storage: jetstream.FileStorage,
			MaxAge: o.OrdersMaxAge, Duplicates: o.DuplicateAfter, Replicas: o.Replicas,
			Description: "Canonical order events, per customer subject",
		},
		{
			Name: DeadLetterStream, Subjects: []string{"boomerang.deadletter.>"}, Storage: jetstream.FileStorage,
			MaxAge: o.DeadLetterAge, Duplicates: o.DuplicateAfter, Replicas: o.Replicas,
			Description: "Input that could not be accepted, with the reason in its headers",
		},
	} {
		if _, err := natsx.EnsureStream(ctx, js, cfg); err != nil {
			return err
		}
	}
	return nil
}

// OrderSubject is the subject of a canonical event.
func OrderSubject(kindToken, customerID string) string {
	return OrdersPrefix + kindToken + "." + customerID
}

// CanonicalMessage is the outbox message of an accepted order. trace
// carries the trace context the event continues.
func CanonicalMessage(r store.Result, data []byte, trace nats.Header) outbox.Message {
	h := natsx.ProtoHeader(natsx.ExtractTrace(context.Background(), trace), r.EventID, r.Event)
	return outbox.Message{
		ID:      r.EventID,
		Subject: OrderSubject(ingest.KindToken(r.Event.GetKind()), r.CustomerID),
		Header:  h,
		Data:    data,
	}
}

// DeadLetter is the outbox message that parks an input message with the
// reason it was not accepted. Its id derives from the input's stream
// sequence, so a redelivered input is dead-lettered once.
func DeadLetter(m jetstream.Msg, source, reason, message string) outbox.Message {
	h := nats.Header{}
	if ct := m.Headers().Get(natsx.HeaderContentType); ct != "" {
		h.Set(natsx.HeaderContentType, ct)
	}
	h.Set(HeaderReason, reason)
	h.Set(HeaderError, truncate(message, 1024))
	h.Set(HeaderOriginalSubject, m.Subject())
	id := "dlq-ingest-"
	if meta, err := m.Metadata(); err == nil {
		seq := strconv.FormatUint(meta.Sequence.Stream, 10)
		h.Set(HeaderOriginalSeq, seq)
		id += seq
	} else {
		id += strconv.FormatInt(time.Now().UnixNano(), 10)
	}
	if source == "" {
		source = "unknown"
	}
	return outbox.Message{ID: id, Subject: DeadLetterPrefix + source, Header: h, Data: m.Data()}
}

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\n", " "), "?")
	if len(s) <= n {
		return s
	}
	return s[:n]
}
