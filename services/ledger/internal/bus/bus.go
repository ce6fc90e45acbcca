// Package bus is points-ledger's side of the bus: its stream and
// subjects, the ledger events it writes to the outbox, and the consumer of
// the canonical order events.
package bus

import (
	"context"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// Stream and subjects.
const (
	// Stream holds the ledger's events.
	Stream = streams.Ledger
	// Prefix + <event>.<customer_id> is a ledger event's subject; <event>
	// is one of the Subject* tokens.
	Prefix = streams.LedgerPrefix
	// ConsumerName is the durable consumer of the ORDERS stream.
	ConsumerName = "points-ledger"
)

// Event tokens of the subjects.
const (
	SubjectEarned       = "earned"
	SubjectRedeemed     = "redeemed"
	SubjectReversed     = "reversed"
	SubjectExpired      = "expired"
	SubjectExpiringSoon = "expiring_soon"
	SubjectTierChanged  = "tier_changed"
	SubjectAdjusted     = "adjusted"
)

// Encode is the store's encoder: the ledger event as protobuf on its
// subject, its id as Nats-Msg-Id, with the trace of ctx.
func Encode(ctx context.Context, ev ledger.Event) (outbox.Message, error) {
	m, token := Proto(ev)
	data, err := proto.Marshal(m)
	if err != nil {
		return outbox.Message{}, err
	}
	return outbox.Message{
		ID:      ev.ID,
		Subject: Prefix + token + "." + ev.CustomerID,
		Header:  natsx.ProtoHeader(ctx, ev.ID, m),
		Data:    data,
	}, nil
}

// Proto is the protobuf form of a ledger event and its subject token.
func Proto(ev ledger.Event) (*ledgerv1.LedgerEvent, string) {
	m := &ledgerv1.LedgerEvent{EventId: ev.ID, CustomerId: ev.CustomerID, OccurredAt: timestamppb.New(ev.At), Balance: ev.Balance,
		Historic: ev.Historic}
	switch {
	case ev.TierTo != "":
		m.Event = &ledgerv1.LedgerEvent_TierChanged{TierChanged: &ledgerv1.TierChanged{FromTier: ev.TierFrom, ToTier: ev.TierTo, Reason: ev.TierReason}}
		return m, SubjectTierChanged
	case ev.Entry == nil:
		m.Event = &ledgerv1.LedgerEvent_ExpiringSoon{ExpiringSoon: &ledgerv1.PointsExpiringSoon{Points: ev.Expiring, ExpiresAt: timestamppb.New(ev.ExpiresAt)}}
		return m, SubjectExpiringSoon
	}
	e := ev.Entry
	switch e.Kind {
	case ledger.KindRedeem:
		m.Event = &ledgerv1.LedgerEvent_Redeemed{Redeemed: &ledgerv1.PointsRedeemed{RedemptionId: e.ID, RewardId: ev.RewardID, Points: -e.Points}}
		return m, SubjectRedeemed
	case ledger.KindReversal:
		m.Event = &ledgerv1.LedgerEvent_Reversed{Reversed: &ledgerv1.PointsReversed{SourceEventId: e.SourceRef,
			OrderSource: e.OrderSource, OrderId: e.OrderID, Points: -e.Points, Shortfall: e.Shortfall}}
		return m, SubjectReversed
	case ledger.KindExpiry:
		m.Event = &ledgerv1.LedgerEvent_Expired{Expired: &ledgerv1.PointsExpired{Points: -e.Points}}
		return m, SubjectExpired
	case ledger.KindAdjustment:
		m.Event = &ledgerv1.LedgerEvent_Adjusted{Adjusted: &ledgerv1.PointsAdjusted{Points: e.Points, Actor: e.Actor}}
		return m, SubjectAdjusted
	}
	earned := &ledgerv1.PointsEarned{SourceEventId: e.SourceRef, OrderSource: e.OrderSource, OrderId: e.OrderID}
	for _, a := range ev.Breakdown {
		earned.Points += a.Points
		earned.Breakdown = append(earned.Breakdown, &ledgerv1.QuoteLine{Rule: a.Rule, Points: a.Points})
	}
	m.Event = &ledgerv1.LedgerEvent_Earned{Earned: earned}
	return m, SubjectEarned
}
