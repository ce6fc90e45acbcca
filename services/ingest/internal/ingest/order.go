package ingest

import (
	"math/bits"
	"time"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
)

// Order is what Boomerang knows of one order: the running state its
// canonical events built.
type Order struct {
	Source       string
	OrderID      string
	CustomerID   string
	Status       ingestv1.OrderStatus
	Currency     string
	BaseCurrency string
	Total        int64
	BaseTotal    int64
	Refunded     int64
	BaseRefunded int64
	// Events is how many canonical events the order has had.
	Events      int
	FirstSeenAt time.Time
	UpdatedAt   time.Time
}

// Apply works out what event p does to the order (nil when the order is
// new) and completes p's canonical event with the order's history. It
// returns the order's next state or a Rejection; it changes neither input
// when it rejects.
func Apply(cur *Order, p *Prepared, customerID, baseCurrency string) (Order, error) {
	ev := p.Event
	kind := p.Key.Kind
	var next Order
	if cur == nil {
		if kind == ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED || kind == ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED {
			return Order{}, reject(ReasonUnknownOrder, "order %s from %s was never ingested", p.Key.OrderID, p.Key.Source)
		}
		next = Order{
			Source: p.Key.Source, OrderID: p.Key.OrderID, CustomerID: customerID,
			Currency: p.Currency, BaseCurrency: baseCurrency, FirstSeenAt: p.IngestedAt,
		}
	} else {
		next = *cur
		if cur.Status == ingestv1.OrderStatus_ORDER_STATUS_CANCELLED {
			return Order{}, reject(ReasonCancelled, "order %s from %s is cancelled", p.Key.OrderID, p.Key.Source)
		}
	}
	next.UpdatedAt = p.IngestedAt
	next.Events++

	switch kind {
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED:
		if cur == nil || cur.Status == ingestv1.OrderStatus_ORDER_STATUS_PLACED {
			next.Status = ingestv1.OrderStatus_ORDER_STATUS_PLACED
			next.Currency, next.Total, next.BaseTotal = p.Currency, p.Total, p.BaseTotal
		}
		// A placed event arriving after payment is recorded but changes
		// neither status nor amounts: the paid event is the later truth.
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID:
		if cur != nil && cur.Status != ingestv1.OrderStatus_ORDER_STATUS_PLACED {
			// Paid after a refund cannot happen in order; keep the refunds.
			break
		}
		next.Status = ingestv1.OrderStatus_ORDER_STATUS_PAID
		next.Currency, next.Total, next.BaseTotal = p.Currency, p.Total, p.BaseTotal
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED:
		if cur.Status == ingestv1.OrderStatus_ORDER_STATUS_PLACED {
			return Order{}, reject(ReasonNotPaid, "order %s from %s is not paid", p.Key.OrderID, p.Key.Source)
		}
		if p.Currency != cur.Currency {
			return Order{}, reject(ReasonCurrency, "refund in %s, order in %s", p.Currency, cur.Currency)
		}
		remaining := cur.Total - cur.Refunded
		if p.RefundAmount > remaining {
			exp, _ := money.Exponent(cur.Currency)
			return Order{}, reject(ReasonRefundExceeds, "refund of %s %s exceeds the %s %s left of order %s",
				money.FormatMinor(p.RefundAmount, exp), cur.Currency, money.FormatMinor(remaining, exp), cur.Currency, p.Key.OrderID)
		}
		// The base value of a refund is its share of the order's base
		// value, so refunding everything gives back exactly what was
		// counted, whatever the rates did since.
		baseRefund := cur.BaseTotal - cur.BaseRefunded
		if p.RefundAmount < remaining {
			baseRefund = proportion(cur.BaseTotal, p.RefundAmount, cur.Total)
		}
		next.Refunded += p.RefundAmount
		next.BaseRefunded += baseRefund
		next.Status = ingestv1.OrderStatus_ORDER_STATUS_PARTIALLY_REFUNDED
		if next.Refunded == next.Total {
			next.Status = ingestv1.OrderStatus_ORDER_STATUS_REFUNDED
		}
		ev.Refund.Amount = amount(p.RefundAmount, baseRefund, cur.Currency, cur.BaseCurrency)
		ev.Refund.RefundedTotal = amount(next.Refunded, next.BaseRefunded, cur.Currency, cur.BaseCurrency)
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED:
		next.Status = ingestv1.OrderStatus_ORDER_STATUS_CANCELLED
	}

	// Events after the first carry the order's customer and amounts, so a
	// consumer of one event needs no other.
	ev.CustomerId = next.CustomerID
	ev.OrderSequence = int32(next.Events)
	if ev.Total == nil {
		ev.Total = &commonv1.Money{MinorUnits: next.Total, Currency: next.Currency}
		ev.BaseTotal = &commonv1.Money{MinorUnits: next.BaseTotal, Currency: next.BaseCurrency}
	}
	return next, nil
}

// proportion returns round(a*b/c) without overflow for amounts within
// money.MaxMinorUnits.
func proportion(a, b, c int64) int64 {
	if c == 0 {
		return 0
	}
	// b <= c, so the quotient fits and Div64 cannot overflow.
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, r := bits.Div64(hi, lo, uint64(c))
	if 2*r >= uint64(c) {
		q++
	}
	return int64(q)
}

func amount(orig, base int64, currency, baseCurrency string) *ordersv1.Amount {
	return &ordersv1.Amount{
		Original: &commonv1.Money{MinorUnits: orig, Currency: currency},
		Base:     &commonv1.Money{MinorUnits: base, Currency: baseCurrency},
	}
}
