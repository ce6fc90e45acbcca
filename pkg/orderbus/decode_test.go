package orderbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// TestDecodeSubjectMustMatchPayload: a canonical event is accepted only on
// the subject of its own kind and customer; a forged one that credits a
// victim from another customer's subject (or claims another kind) is
// refused, so that the consumers dead-letter it.
func TestDecodeSubjectMustMatchPayload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	if err := streams.Ensure(ctx, js, "ingest", streams.Settings{MaxAge: map[string]time.Duration{orderbus.Stream: 0, orderbus.DeadLetterStream: 0}}); err != nil {
		t.Fatal(err)
	}
	paid := func(customer string) *ordersv1.OrderEvent {
		return &ordersv1.OrderEvent{EventId: "e-" + customer, CustomerId: customer, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID}
	}
	refunded := &ordersv1.OrderEvent{EventId: "e-r", CustomerId: "cus_a", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED}
	tests := []struct {
		name     string
		subject  string
		ev       *ordersv1.OrderEvent
		mismatch bool
	}{
		{name: "own subject", subject: "boomerang.orders.v1.paid.cus_a", ev: paid("cus_a")},
		{name: "refund on its subject", subject: "boomerang.orders.v1.refunded.cus_a", ev: refunded},
		{name: "victim in payload, attacker's subject", subject: "boomerang.orders.v1.paid.cus_attacker", ev: paid("cus_victim"), mismatch: true},
		{name: "customer id a prefix of the token", subject: "boomerang.orders.v1.paid.cus_ab", ev: paid("cus_a"), mismatch: true},
		{name: "kind differs", subject: "boomerang.orders.v1.paid.cus_a", ev: refunded, mismatch: true},
		{name: "refund dressed as a payment", subject: "boomerang.orders.v1.refunded.cus_a", ev: paid("cus_a"), mismatch: true},
		{name: "extra token", subject: "boomerang.orders.v1.paid.cus_a.x", ev: paid("cus_a"), mismatch: true},
		{name: "no customer token", subject: "boomerang.orders.v1.paid", ev: paid("cus_a"), mismatch: true},
	}
	cons, err := js.OrderedConsumer(ctx, orderbus.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := proto.Marshal(tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: tt.subject, Data: data, Header: natsx.ProtoHeader(ctx, tt.ev.GetEventId()+tt.subject, tt.ev)}); err != nil {
				t.Fatal(err)
			}
			m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject() != tt.subject {
				t.Fatalf("read %s, want %s", m.Subject(), tt.subject)
			}
			ev, err := orderbus.Decode(m)
			switch {
			case tt.mismatch && !errors.Is(err, orderbus.ErrSubjectMismatch):
				t.Fatalf("Decode = %v, %v; want ErrSubjectMismatch", ev, err)
			case tt.mismatch && !errors.Is(err, orderbus.ErrNotOrderEvent):
				t.Fatalf("Decode error %v is not an ErrNotOrderEvent", err)
			case !tt.mismatch && err != nil:
				t.Fatalf("Decode: %v", err)
			case !tt.mismatch && ev.GetCustomerId() != tt.ev.GetCustomerId():
				t.Fatalf("customer %q, want %q", ev.GetCustomerId(), tt.ev.GetCustomerId())
			}
		})
	}
}
