package ledger

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/ordergate"
)

func orderEvent(id string, kind ordersv1.OrderEventKind, seq int32, total int64, at time.Time) *ordersv1.OrderEvent {
	eur := &commonv1.Money{MinorUnits: total, Currency: "EUR"}
	ev := &ordersv1.OrderEvent{EventId: id, Kind: kind, Source: "shop", OrderId: "o1", OrderSequence: seq,
		CustomerId: "c", OccurredAt: timestamppb.New(at), Total: eur, BaseTotal: eur}
	if kind == ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED {
		ev.Refund = &ordersv1.Refund{RefundId: id, RefundedTotal: &ordersv1.Amount{Base: eur}}
	}
	return ev
}

// TestBatchAppliesAnOrderHistory: the rules of a change need no database.
// A refund numbered after a payment not seen yet waits (Later); once the
// payment is applied, the refund claws back its share, a second paid
// event earns nothing, and an event of a position applied before is a
// duplicate.
func TestBatchAppliesAnOrderHistory(t *testing.T) {
	p := mustProgramme(t, "base_currency: EUR\n")
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	b := NewBatch(p, at)
	b.Accounts["c"] = NewAccount(p, "c", at)
	gate := ordergate.New()
	ctx := context.Background()
	const (
		paidKind   = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
		refundKind = ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED
	)
	steps := []struct {
		name string
		ev   *ordersv1.OrderEvent
		want Outcome
		bal  int64
	}{
		{"refund before its payment", orderEvent("e2", refundKind, 2, 40_00, at), Later, 0},
		{"payment", orderEvent("e1", paidKind, 1, 100_00, at), Applied, 100},
		{"the refund again", orderEvent("e2", refundKind, 2, 40_00, at), Applied, 60},
		{"the refund redelivered", orderEvent("e2", refundKind, 2, 40_00, at), Duplicate, 60},
		{"a second payment", orderEvent("e3", paidKind, 3, 100_00, at), Applied, 60},
	}
	for _, s := range steps {
		if got := b.ApplyOrderEvent(ctx, gate, s.ev); got != s.want {
			t.Errorf("%s: outcome %d, want %d", s.name, got, s.want)
		}
		if got := b.Accounts["c"].Balance; got != s.bal {
			t.Errorf("%s: balance %d, want %d", s.name, got, s.bal)
		}
	}
	if got := b.Orders["shop/o1"].LastSeq; got != 3 {
		t.Errorf("order's last sequence %d, want 3", got)
	}
	if len(b.Out) != 2 {
		t.Errorf("%d ledger events, want earned and reversed", len(b.Out))
	}
}

// TestBatchIdempotencyKeys: a redemption or adjustment whose key was used
// returns the first result for the same request and ErrIdempotencyReuse
// for another; an unknown customer is ErrNotFound.
func TestBatchIdempotencyKeys(t *testing.T) {
	p := mustProgramme(t, testProgramme)
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	b := NewBatch(p, at)
	first := &Entry{ID: RedemptionID("c", "k"), CustomerID: "c", Kind: KindRedeem, Points: -500, SourceRef: "mug"}
	b.Entries[first.ID] = first
	adj := &Entry{ID: AdjustmentID("c", "a"), CustomerID: "c", Kind: KindAdjustment, Points: 5, Actor: "ops", Reason: "r"}
	b.Entries[adj.ID] = adj
	b.Accounts["c"] = &Account{CustomerID: "c", Exists: true, Tier: "Bronze", LotsLoaded: true}
	b.Accounts["nobody"] = NewAccount(p, "nobody", at)

	if e, err := b.Redeem(ctx, "c", Redemption{Key: "k", RewardID: "mug"}); err != nil || e != first {
		t.Errorf("retry: %v %v, want the first redemption", e, err)
	}
	if _, err := b.Redeem(ctx, "c", Redemption{Key: "k", Points: 5}); !errors.Is(err, ErrIdempotencyReuse) {
		t.Errorf("another request under the key: %v", err)
	}
	if e, err := b.Adjust(ctx, "c", "a", 5, "ops", "r"); err != nil || e != adj {
		t.Errorf("adjustment retry: %v %v, want the first adjustment", e, err)
	}
	if _, err := b.Adjust(ctx, "c", "a", 6, "ops", "r"); !errors.Is(err, ErrIdempotencyReuse) {
		t.Errorf("another adjustment under the key: %v", err)
	}
	if _, err := b.Redeem(ctx, "nobody", Redemption{Key: "k", Points: 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown customer: %v", err)
	}
	if len(b.Out) != 0 || len(b.Taken) != 0 {
		t.Errorf("retries changed the batch: %d events, taken %v", len(b.Out), b.Taken)
	}
}
