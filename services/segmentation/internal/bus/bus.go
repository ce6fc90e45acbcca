// Package bus is segmentation's side of the bus: the ORDERS and FEEDBACK
// consumers (on busrouter), the SEGMENT stream and its subjects, the
// segment-changed event, the reading of canonical order events and
// feedback events into the domain's terms, and the mapping of segments and
// flags to their protobuf enums (one place, used by the gRPC port too).
package bus

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// Streams, subjects and the consumer.
const (
	// Stream holds segmentation's events.
	Stream = streams.Segment
	// Prefix + <event>.<customer_id> is an event's subject.
	Prefix = streams.SegmentPrefix
	// SegmentChangedToken names the segment-changed event in subjects.
	SegmentChangedToken = "segment_changed"
	// ConsumerName is the durable consumer on the ORDERS stream.
	ConsumerName = "segmentation"
	// Service names segmentation in dead-letter subjects.
	Service = "segmentation"
)

// SegmentChanged is the outbox message announcing that a customer's
// segment or flags changed. Its id names the scoring time and the
// customer, so that a transaction run again writes the same message; the
// time comes first so that the ids of one batch sort together and land on
// the same few pages of the outbox's id index instead of all over it.
func SegmentChanged(ctx context.Context, old *segment.Score, sc segment.Score) (outbox.Message, error) {
	ev := &segmentationv1.SegmentChanged{
		EventId:    fmt.Sprintf("segchg-%d-%s", sc.ScoredAt.UnixMicro(), sc.CustomerID),
		CustomerId: sc.CustomerID,
		Segment:    Segment(sc.Segment),
		Flags:      Flags(sc.Flags),
		Rfm:        &segmentationv1.Rfm{Recency: int32(sc.RFM.R), Frequency: int32(sc.RFM.F), Monetary: int32(sc.RFM.M)},
		ChangedAt:  timestamppb.New(sc.ScoredAt),
	}
	var before segment.Flags
	if old != nil {
		ev.PreviousSegment, ev.PreviousFlags, before = Segment(old.Segment), Flags(old.Flags), old.Flags
	}
	ev.AddedFlags, ev.RemovedFlags = Flags(sc.Flags&^before), Flags(before&^sc.Flags)
	data, err := proto.Marshal(ev)
	if err != nil {
		return outbox.Message{}, err
	}
	return outbox.Message{
		ID: ev.EventId, Subject: Prefix + SegmentChangedToken + "." + sc.CustomerID,
		Header: natsx.ProtoHeader(ctx, ev.EventId, ev), Data: data,
	}, nil
}

// Segment is the protobuf enum of a segment (the numbering is shared).
func Segment(s segment.Segment) segmentationv1.Segment {
	if _, ok := segmentationv1.Segment_name[int32(s)]; !ok {
		return segmentationv1.Segment_SEGMENT_UNSPECIFIED
	}
	return segmentationv1.Segment(s)
}

// FromSegment is the domain segment of a protobuf enum.
func FromSegment(s segmentationv1.Segment) segment.Segment {
	for _, d := range segment.Segments {
		if Segment(d) == s {
			return d
		}
	}
	return segment.Unscored
}

// Flags lists the protobuf flags of a flag set, in order: bit i is
// enum value i+1.
func Flags(f segment.Flags) []segmentationv1.Flag {
	var out []segmentationv1.Flag
	for i, one := range segment.AllFlags {
		if f&one != 0 {
			out = append(out, segmentationv1.Flag(i+1))
		}
	}
	return out
}

// FromOrderEvent reads the part of a canonical order event segmentation
// uses.
func FromOrderEvent(ev *ordersv1.OrderEvent) segment.Event {
	out := segment.Event{
		ID: ev.GetEventId(), CustomerID: ev.GetCustomerId(), Source: ev.GetSource(), OrderID: ev.GetOrderId(),
		Channel: ev.GetChannel(), OccurredAt: ev.GetOccurredAt().AsTime(), BaseTotal: ev.GetBaseTotal().GetMinorUnits(),
		Currency: ev.GetBaseTotal().GetCurrency(), Test: ev.GetTest(),
		Discounted:    len(ev.GetDiscount().GetCodes()) > 0 || ev.GetDiscount().GetAmount().GetBase().GetMinorUnits() > 0,
		RefundedTotal: ev.GetRefund().GetRefundedTotal().GetBase().GetMinorUnits(),
		Seq:           ev.GetOrderSequence(),
	}
	switch ev.GetKind() {
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED:
		out.Kind = segment.Placed
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID:
		out.Kind = segment.Paid
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED:
		out.Kind = segment.Refunded
		if out.Currency == "" {
			out.Currency = ev.GetRefund().GetRefundedTotal().GetBase().GetCurrency()
		}
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED:
		out.Kind = segment.Cancelled
	}
	return out
}
