// Package orderevent turns an order event as a shop sent it into the body
// of its canonical order event: money checked and converted to the base
// currency with the rate of the order's date, line items, discount and
// customer attributes carried over. It is the one derivation of an order's
// facts: order-ingest completes the body into the event it publishes, and
// the ledger's quote reads the same body, so a quote and the points later
// earned for the order cannot disagree over how the order was read.
//
// It does no I/O and knows nothing of identity or of the order's history:
// the event id, ingestion time, unified customer, sequence and refund
// amounts are order-ingest's to fill.
package orderevent

import (
	"errors"
	"fmt"
	"strings"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/fx"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
)

// Reasons name why Build did not accept an order; order-ingest publishes
// them as they are.
const (
	ReasonInvalid         = "invalid"          // an amount out of range once converted
	ReasonUnknownCurrency = "unknown_currency" // not an ISO 4217 currency
	ReasonNoRate          = "no_fx_rate"       // no rate on or before the order's date
)

// Rejection is an order whose money cannot be read.
type Rejection struct {
	Reason  string
	Message string
}

func (r *Rejection) Error() string { return r.Reason + ": " + r.Message }

func reject(reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Currency is the currency of an order's amounts: its total's, or its
// refund's when it has no total.
func Currency(o *ingestv1.Order) string {
	if c := o.GetTotal().GetCurrency(); c != "" {
		return c
	}
	return o.GetRefund().GetAmount().GetCurrency()
}

// Build returns the body of o's canonical event, or a *Rejection. o must
// have passed its field rules (one currency for all its amounts).
func Build(rates *fx.Table, o *ingestv1.Order) (*ordersv1.OrderEvent, error) {
	kind := o.GetKind()
	ev := &ordersv1.OrderEvent{
		Kind:       kind,
		Source:     o.GetSource(),
		OrderId:    o.GetOrderId(),
		OccurredAt: o.GetOccurredAt(),
		Channel:    o.GetChannel(),
		Test:       o.GetTest(),
	}
	if currency := Currency(o); currency != "" {
		if err := convert(ev, rates, currency, o); err != nil {
			return nil, err
		}
	}
	if r := o.GetRefund(); r != nil {
		ev.Refund = &ordersv1.Refund{RefundId: r.GetRefundId()}
	}
	if kind == ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED || kind == ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID {
		c := o.GetCustomer()
		var consent *bool
		if c != nil && c.MarketingConsent != nil {
			consent = new(*c.MarketingConsent)
		}
		ev.Customer = &ordersv1.CustomerAttributes{
			Birthday:         c.GetBirthday(),
			MarketingConsent: consent,
			ReferralCode:     c.GetReferralCode(),
			Country:          c.GetCountry(),
			Guest:            strings.TrimSpace(c.GetPlatformCustomerId()) == "",
		}
	}
	return ev, nil
}

// convert fills ev's rate and amounts from o's, in currency and in base.
func convert(ev *ordersv1.OrderEvent, rates *fx.Table, currency string, o *ingestv1.Order) error {
	if !money.Known(currency) {
		return reject(ReasonUnknownCurrency, "%q is not an ISO 4217 currency", currency)
	}
	occurred := o.GetOccurredAt().AsTime()
	conv, rate, err := rates.Converter(currency, occurred)
	if s := o.GetSettledTotal(); s != nil {
		// The platform converted the customer's money itself: what the
		// seller received decides the base values, whatever the table
		// says. In the order's own currency it tells nothing new.
		ev.SettledTotal = s
		switch {
		case !money.Known(s.GetCurrency()):
			return reject(ReasonUnknownCurrency, "settled_total: %q is not an ISO 4217 currency", s.GetCurrency())
		case s.GetCurrency() != currency && o.GetTotal().GetMinorUnits() > 0:
			currency := s.GetCurrency() // for the error below
			conv, rate, err = rates.Settled(Currency(o), o.GetTotal().GetMinorUnits(), currency, s.GetMinorUnits(), occurred)
			if errors.Is(err, fx.ErrNoRate) {
				return reject(ReasonNoRate, "no %s rate on or before %s", currency, occurred.UTC().Format("2006-01-02"))
			}
		}
	}
	if err != nil {
		if errors.Is(err, fx.ErrNoRate) {
			return reject(ReasonNoRate, "no %s rate on or before %s", currency, occurred.UTC().Format("2006-01-02"))
		}
		return reject(ReasonUnknownCurrency, "%v", err)
	}
	ev.FxRate, ev.FxRateDate = rate.Rate, rate.RateDate
	c := amountConverter{conv: conv, currency: currency, base: rates.Base()}
	if o.GetTotal() != nil {
		if ev.Total, ev.BaseTotal, err = c.pair(o.GetTotal().GetMinorUnits()); err != nil {
			return err
		}
	}
	if ev.Shipping, err = c.optional(o.GetShipping()); err != nil {
		return err
	}
	if ev.Tax, err = c.optional(o.GetTax()); err != nil {
		return err
	}
	if d := o.GetDiscount(); d != nil && (len(d.GetCodes()) > 0 || d.GetAmount() != nil) {
		ev.Discount = &ordersv1.Discount{Codes: d.GetCodes()}
		if ev.Discount.Amount, err = c.optional(d.GetAmount()); err != nil {
			return err
		}
	}
	for _, it := range o.GetItems() {
		price, err := c.amount(it.GetUnitPrice().GetMinorUnits())
		if err != nil {
			return err
		}
		ev.Items = append(ev.Items, &ordersv1.LineItem{
			Sku: it.GetSku(), Category: it.GetCategory(), Quantity: it.GetQuantity(),
			UnitPrice: price, GiftCard: it.GetGiftCard(),
		})
	}
	return nil
}

type amountConverter struct {
	conv     fx.Converter
	currency string
	base     string
}

func (c amountConverter) pair(minor int64) (*commonv1.Money, *commonv1.Money, error) {
	b, err := c.conv.Convert(minor)
	if err != nil {
		return nil, nil, reject(ReasonInvalid, "amount %d %s out of range in %s", minor, c.currency, c.base)
	}
	return &commonv1.Money{MinorUnits: minor, Currency: c.currency}, &commonv1.Money{MinorUnits: b, Currency: c.base}, nil
}

func (c amountConverter) amount(minor int64) (*ordersv1.Amount, error) {
	o, b, err := c.pair(minor)
	if err != nil {
		return nil, err
	}
	return &ordersv1.Amount{Original: o, Base: b}, nil
}

func (c amountConverter) optional(m *commonv1.Money) (*ordersv1.Amount, error) {
	if m == nil {
		return nil, nil
	}
	return c.amount(m.GetMinorUnits())
}
