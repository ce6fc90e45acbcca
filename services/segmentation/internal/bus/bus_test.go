package bus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// TestEnumsLineUp keeps the domain's segments and flags in step with the
// protobuf enums they are sent as.
func TestEnumsLineUp(t *testing.T) {
	for _, s := range segment.Segments {
		p := bus.Segment(s)
		if want := "SEGMENT_" + strings.ToUpper(s.String()); p.String() != want {
			t.Errorf("%v is sent as %v, want %s", s, p, want)
		}
		if bus.FromSegment(p) != s {
			t.Errorf("%v does not come back from %v", s, p)
		}
	}
	for _, f := range segment.AllFlags {
		got := bus.Flags(f)
		if want := "FLAG_" + strings.ToUpper(f.String()); len(got) != 1 || got[0].String() != want {
			t.Errorf("%v is sent as %v, want %s", f, got, want)
		}
	}
	if got := bus.Flags(segment.VIP | segment.Agony); len(got) != 2 || got[0] != segmentationv1.Flag_FLAG_VIP || got[1] != segmentationv1.Flag_FLAG_AGONY {
		t.Errorf("two flags: %v", got)
	}
}

func TestFromOrderEvent(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	eur := func(v int64) *commonv1.Money { return &commonv1.Money{MinorUnits: v, Currency: "EUR"} }
	tests := []struct {
		name string
		ev   *ordersv1.OrderEvent
		want segment.Event
	}{
		{
			name: "paid with a code",
			ev: &ordersv1.OrderEvent{EventId: "e1", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, Source: "s", OrderId: "o",
				CustomerId: "c", Channel: "app", OccurredAt: timestamppb.New(at), BaseTotal: eur(900),
				Discount: &ordersv1.Discount{Codes: []string{"X"}}},
			want: segment.Event{ID: "e1", Kind: segment.Paid, CustomerID: "c", Source: "s", OrderID: "o", Channel: "app",
				OccurredAt: at, BaseTotal: 900, Currency: "EUR", Discounted: true},
		},
		{
			name: "paid with a discount amount only",
			ev: &ordersv1.OrderEvent{EventId: "e2", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, CustomerId: "c",
				OccurredAt: timestamppb.New(at), BaseTotal: eur(900), Discount: &ordersv1.Discount{Amount: &ordersv1.Amount{Base: eur(50)}}},
			want: segment.Event{ID: "e2", Kind: segment.Paid, CustomerID: "c", OccurredAt: at, BaseTotal: 900, Currency: "EUR", Discounted: true},
		},
		{
			name: "refund carries the refunded total",
			ev: &ordersv1.OrderEvent{EventId: "e3", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, CustomerId: "c",
				OccurredAt: timestamppb.New(at), Refund: &ordersv1.Refund{RefundedTotal: &ordersv1.Amount{Base: eur(300)}}},
			want: segment.Event{ID: "e3", Kind: segment.Refunded, CustomerID: "c", OccurredAt: at, Currency: "EUR", RefundedTotal: 300},
		},
		{
			name: "test cancellation",
			ev: &ordersv1.OrderEvent{EventId: "e4", Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED, CustomerId: "c",
				OccurredAt: timestamppb.New(at), Test: true},
			want: segment.Event{ID: "e4", Kind: segment.Cancelled, CustomerID: "c", OccurredAt: at, Test: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bus.FromOrderEvent(tt.ev); got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestSegmentChanged(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	old := &segment.Score{CustomerID: "c1", Segment: segment.New, Flags: segment.NewCustomer | segment.PriceSensitive}
	sc := segment.Score{CustomerID: "c1", RFM: segment.RFM{R: 5, F: 4, M: 3}, Segment: segment.Champions,
		Flags: segment.VIP | segment.PriceSensitive, ScoredAt: at}
	m, err := bus.SegmentChanged(context.Background(), old, sc)
	if err != nil {
		t.Fatal(err)
	}
	ev := &segmentationv1.SegmentChanged{}
	if err := proto.Unmarshal(m.Data, ev); err != nil {
		t.Fatal(err)
	}
	if m.Subject != "boomerang.segmentation.v1.segment_changed.c1" || m.ID != ev.GetEventId() ||
		m.Header.Get("Nats-Msg-Id") != ev.GetEventId() ||
		ev.GetPreviousSegment() != segmentationv1.Segment_SEGMENT_NEW || ev.GetSegment() != segmentationv1.Segment_SEGMENT_CHAMPIONS ||
		len(ev.GetAddedFlags()) != 1 || ev.GetAddedFlags()[0] != segmentationv1.Flag_FLAG_VIP ||
		len(ev.GetRemovedFlags()) != 1 || ev.GetRemovedFlags()[0] != segmentationv1.Flag_FLAG_NEW ||
		ev.GetRfm().GetFrequency() != 4 || !ev.GetChangedAt().AsTime().Equal(at) {
		t.Errorf("message %s %s %v\nevent %v", m.ID, m.Subject, m.Header, ev)
	}
	again, _ := bus.SegmentChanged(context.Background(), old, sc)
	if again.ID != m.ID {
		t.Errorf("the same change got two ids: %s, %s", m.ID, again.ID)
	}
}
