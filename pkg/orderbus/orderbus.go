// Package orderbus is the contract of the canonical order bus that
// order-ingest writes and every other service reads: the ORDERS stream and
// its per-customer subjects, the shared dead-letter stream and its headers,
// and the decoding of a canonical event from a message. It lives in pkg so
// that no service imports another's internals to find a subject name. The
// streams' configuration is in pkg/streams.
package orderbus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
)

// Streams and subjects.
const (
	// Stream holds the canonical order events.
	Stream = "ORDERS"
	// Prefix + <kind>.<customer_id> is a canonical event's subject.
	Prefix = "boomerang.orders.v1."
	// DeadLetterStream keeps messages a service could not accept.
	DeadLetterStream = "DEADLETTER"
	// DeadLetterRoot + <service>.<source> is where they go.
	DeadLetterRoot = "boomerang.deadletter."
)

// Dead-letter headers.
const (
	HeaderReason          = "Boomerang-Reason"
	HeaderError           = "Boomerang-Error"
	HeaderOriginalSubject = "Boomerang-Original-Subject"
	HeaderOriginalSeq     = "Boomerang-Original-Sequence"
)

// Subject is the subject of a canonical event.
func Subject(kindToken, customerID string) string {
	return Prefix + kindToken + "." + customerID
}

// ErrNotOrderEvent is returned for a message on the order bus that is not
// a canonical order event.
var ErrNotOrderEvent = errors.New("not a canonical order event")

// ErrSubjectMismatch is returned for a canonical event whose subject's
// kind or customer token disagrees with its payload (it is an
// ErrNotOrderEvent too).
var ErrSubjectMismatch = fmt.Errorf("%w: subject disagrees with payload", ErrNotOrderEvent)

// Decode reads the canonical event of a message, checking its type header
// when there is one, and that its subject's kind and customer tokens are
// the payload's.
func Decode(m jetstream.Msg) (*ordersv1.OrderEvent, error) {
	ev := &ordersv1.OrderEvent{}
	if t := m.Headers().Get(natsx.HeaderEventType); t != "" && t != string(ev.ProtoReflect().Descriptor().FullName()) {
		return nil, fmt.Errorf("%w: type %q", ErrNotOrderEvent, t)
	}
	if err := proto.Unmarshal(m.Data(), ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotOrderEvent, err)
	}
	if ev.GetEventId() == "" || ev.GetCustomerId() == "" || ev.GetKind() == ordersv1.OrderEventKind_ORDER_EVENT_KIND_UNSPECIFIED {
		return nil, fmt.Errorf("%w: event id, customer id and kind are required", ErrNotOrderEvent)
	}
	if err := checkSubject(m.Subject(), ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// DeadLetter is the outbox message that parks a message a service could
// not accept, with the reason. Its id derives from the message's stream
// sequence, so a redelivered message is dead-lettered once.
func DeadLetter(m jetstream.Msg, service, source, reason, message string) outbox.Message {
	h := nats.Header{}
	if ct := m.Headers().Get(natsx.HeaderContentType); ct != "" {
		h.Set(natsx.HeaderContentType, ct)
	}
	h.Set(HeaderReason, reason)
	h.Set(HeaderError, truncate(message, 1024))
	h.Set(HeaderOriginalSubject, m.Subject())
	id := "dlq-" + service + "-"
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
	return outbox.Message{ID: id, Subject: DeadLetterRoot + service + "." + source, Header: h, Data: m.Data()}
}

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\n", " "), "?")
	if len(s) <= n {
		return s
	}
	return s[:n]
}
