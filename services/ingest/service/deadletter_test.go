package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
)

// TestLargestOrderDeadLettered: a JSON order of exactly the largest size
// the bus accepts is dead-lettered as too_large, its dead letter cut to
// fit the bus, and the order after it still reaches ORDERS.
func TestLargestOrderDeadLettered(t *testing.T) {
	h := start(t, "sqlite:"+t.TempDir()+"/ingest.db", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	limit := int(h.js.Conn().MaxPayload())

	// A well-formed order padded to the limit: no headers, so the
	// payload alone is the whole message the server counts.
	head := []byte(`{"order_id":"huge","kind":"paid","occurred_at":"2026-11-01T10:00:00Z","currency":"USD","total":"10.00",` +
		`"customer":{"email":"huge@example.com"},"pad":"`)
	tail := []byte(`"}`)
	big := append(append(head, bytes.Repeat([]byte{'x'}, limit-len(head)-len(tail))...), tail...)
	if len(big) != limit {
		t.Fatalf("order is %d bytes, want %d", len(big), limit)
	}
	subject := "boomerang.ingest.orders." + source
	if _, err := h.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: big}); err != nil {
		t.Fatalf("the bus refused an order of its max payload: %v", err)
	}
	normal := `{"order_id":"small","kind":"paid","occurred_at":"2026-11-01T10:00:00Z","currency":"USD","total":"10.00",` +
		`"customer":{"email":"ann@example.com"}}`
	if _, err := h.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte(normal)}); err != nil {
		t.Fatal(err)
	}

	orders := lastMsg(ctx, t, h.js, orderbus.Stream, orderbus.Prefix+">")
	ev := &ordersv1.OrderEvent{}
	if err := proto.Unmarshal(orders.Data, ev); err != nil || ev.GetOrderId() != "small" || orders.Sequence != 1 {
		t.Errorf("ORDERS: message %d is order %q (%v), want the normal order alone", orders.Sequence, ev.GetOrderId(), err)
	}
	dead := lastMsg(ctx, t, h.js, orderbus.DeadLetterStream, orderbus.DeadLetterRoot+"ingest."+source)
	sum := sha256.Sum256(big)
	for name, want := range map[string]string{
		orderbus.HeaderReason:          "too_large",
		orderbus.HeaderOriginalSubject: subject,
		orderbus.HeaderTruncated:       strconv.Itoa(limit),
		orderbus.HeaderOriginalSHA256:  hex.EncodeToString(sum[:]),
	} {
		if got := dead.Header.Get(name); got != want {
			t.Errorf("dead letter header %s = %q, want %q", name, got, want)
		}
	}
	if len(dead.Data) == 0 || !bytes.HasPrefix(big, dead.Data) {
		t.Errorf("dead letter carries %d bytes, want the start of the order", len(dead.Data))
	}
}

// lastMsg waits for a message on subject in stream and returns the last.
func lastMsg(ctx context.Context, t *testing.T, js jetstream.JetStream, stream, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, err := s.GetLastMsgForSubject(ctx, subject)
		if err == nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no message on %s after 20s: %v", stream, subject, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
