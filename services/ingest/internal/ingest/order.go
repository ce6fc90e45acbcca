package ingest

import (
	"errors"
	"math/bits"
	"time"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
)

// ErrOrderNotFound is returned for an order that was never ingested.
var ErrOrderNotFound = errors.New("order not found")

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
	// Paid is set once the order's payment was accepted, also when it
	// came after the cancellation (Status then stays cancelled).
	Paid bool
	// Events is how many canonical events the order has had.
	Events      int
	FirstSeenAt time.Time
	UpdatedAt   time.Time
}

// Apply works out what event p does to the order (nil when the order is
// new) and completes p's canonical event with the order's history. It
// returns the order's next state or a Rejection; it changes neither input
// when it rejects.
//
// The order's state is that of its shop's history, whatever order the
// shop's events arrive in: an order is cancelled once its cancellation
// came, paid once its payment came, refunded by the refunds that came,
// and an event that can only be understood after another (a refund or
// cancellation of an order not seen yet, a refund of an order not paid
// yet) is rejected with a reason AwaitsHistory recognises, so that the
// bus consumer puts it off until the other arrives. A payment or refund
// that arrives after the cancellation is recorded and published with its
// number: the consumers count nothing for a cancelled order, whichever of
// its events they see first.
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
			Status: ingestv1.OrderStatus_ORDER_STATUS_PLACED,
		}
	} else {
		next = *cur
	}
	next.UpdatedAt = p.IngestedAt
	next.Events++

	switch kind {
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED:
		// A placed event arriving after payment is recorded but changes
		// no amounts: the paid event is the later truth.
		if !next.Paid {
			next.Currency, next.Total, next.BaseTotal = p.Currency, p.Total, p.BaseTotal
		}
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID:
		if next.Paid {
			break // a second payment event (its key differs only in case of a bug) changes nothing
		}
		next.Paid = true
		next.Currency, next.Total, next.BaseTotal = p.Currency, p.Total, p.BaseTotal
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED:
		if !cur.Paid {
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
		ev.Refund.Amount = amount(p.RefundAmount, baseRefund, cur.Currency, cur.BaseCurrency)
		ev.Refund.RefundedTotal = amount(next.Refunded, next.BaseRefunded, cur.Currency, cur.BaseCurrency)
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED:
		next.Status = ingestv1.OrderStatus_ORDER_STATUS_CANCELLED
	}
	next.Status = status(next)

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

// status is where an order stands from what it has had: cancelled once
// cancelled, else refunded in full or in part, paid, or placed.
func status(o Order) ingestv1.OrderStatus {
	switch {
	case o.Status == ingestv1.OrderStatus_ORDER_STATUS_CANCELLED:
		return o.Status
	case o.Refunded > 0 && o.Refunded >= o.Total:
		return ingestv1.OrderStatus_ORDER_STATUS_REFUNDED
	case o.Refunded > 0:
		return ingestv1.OrderStatus_ORDER_STATUS_PARTIALLY_REFUNDED
	case o.Paid:
		return ingestv1.OrderStatus_ORDER_STATUS_PAID
	}
	return ingestv1.OrderStatus_ORDER_STATUS_PLACED
}

// AwaitsHistory reports whether a rejection may go away once more of the
// order's history has arrived (a refund or cancellation of an order not
// seen yet, a refund of an order not paid yet): shops publish from several
// systems and redelivery reorders, so the bus consumer puts such an event
// off for a while instead of dead-lettering it at once.
func AwaitsHistory(r *Rejection) bool {
	return r.Reason == ReasonUnknownOrder || r.Reason == ReasonNotPaid
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
