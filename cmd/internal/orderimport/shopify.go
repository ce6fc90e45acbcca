package orderimport

import (
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// Shopify's order export (Orders → Export, "CSV for Excel, Numbers, or
// other spreadsheet programs") has one row per line item; the order's own
// columns are filled on its first row, Name on every row. These are the
// columns read; the others (addresses, taxes by name, fulfilment...) are
// not needed.
const (
	shopifyName            = "name"
	shopifyID              = "id"
	shopifyEmail           = "email"
	shopifyFinancialStatus = "financial status"
	shopifyPaidAt          = "paid at"
	shopifyFulfilledAt     = "fulfilled at"
	shopifyAcceptsMkt      = "accepts marketing"
	shopifyCurrency        = "currency"
	shopifyShipping        = "shipping"
	shopifyTaxes           = "taxes"
	shopifyTotal           = "total"
	shopifyDiscountCode    = "discount code"
	shopifyDiscountAmount  = "discount amount"
	shopifyCreatedAt       = "created at"
	shopifyItemQuantity    = "lineitem quantity"
	shopifyItemName        = "lineitem name"
	shopifyItemPrice       = "lineitem price"
	shopifyItemSKU         = "lineitem sku"
	shopifyBillingCountry  = "billing country"
	shopifyShipCountry     = "shipping country"
	shopifyCancelledAt     = "cancelled at"
	shopifyRefundedAmount  = "refunded amount"
	shopifySource          = "source"
)

// ImportRefundID is the refund id of the one refund an export without
// refund ids yields per order: the same on every import, so importing the
// file again finds it a duplicate.
const ImportRefundID = "import"

type shopifyReader struct {
	orderRows
	cols columns
	opts Options
}

func newShopifyReader(r io.Reader, header []string, at Position, o Options) (Reader, error) {
	rows, err := newCSVRows(r, at)
	if err != nil {
		return nil, err
	}
	if header == nil {
		h, _, err := rows.read()
		if err != nil {
			return nil, headerErr(err)
		}
		header = h
	}
	cols := newColumns(header)
	if err := checkHeader(Shopify, cols, shopifyName, shopifyID, shopifyFinancialStatus, shopifyCurrency, shopifyTotal, shopifyCreatedAt); err != nil {
		return nil, err
	}
	return &shopifyReader{orderRows: newOrderRows(rows, cols, shopifyName), cols: cols, opts: o}, nil
}

func headerErr(err error) error {
	if err == io.EOF {
		return errEmptyFile
	}
	return err
}

func (s *shopifyReader) Next() (*Order, error) { return s.next(s.order) }

// order maps one order's rows to its events: paid (placed if not paid),
// refunded for the refunded amount, cancelled if it was.
func (s *shopifyReader) order(rows [][]string) (string, []*ingestv1.Order, error) {
	c, first := s.cols, rows[0]
	idText := ""
	for _, r := range rows {
		if idText = c.get(r, shopifyID); idText != "" {
			break
		}
	}
	id, err := orderID("Id", idText)
	if err != nil {
		return "", nil, err
	}
	cur, err := currencyCode("Currency", c.get(first, shopifyCurrency))
	if err != nil {
		return id, nil, err
	}
	loc := s.opts.location()
	created, err := parseTime("Created at", c.get(first, shopifyCreatedAt), loc)
	if err != nil {
		return id, nil, err
	}
	times := map[string]time.Time{}
	for _, f := range []struct{ col, name string }{
		{shopifyPaidAt, "Paid at"}, {shopifyFulfilledAt, "Fulfilled at"}, {shopifyCancelledAt, "Cancelled at"},
	} {
		if v := c.get(first, f.col); v != "" {
			t, err := parseTime(f.name, v, loc)
			if err != nil {
				return id, nil, err
			}
			times[f.col] = t
		}
	}
	total := c.get(first, shopifyTotal)
	if total == "" {
		return id, nil, rowErr(ReasonInvalid, "Total: empty")
	}
	o := &ingestv1.Order{Source: s.opts.Source, OrderId: id, Channel: truncate(strings.ToLower(c.get(first, shopifySource)), 64)}
	if o.Total, err = amount("Total", total, cur); err != nil {
		return id, nil, err
	}
	if o.Shipping, err = amount("Shipping", c.get(first, shopifyShipping), cur); err != nil {
		return id, nil, err
	}
	if o.Tax, err = amount("Taxes", c.get(first, shopifyTaxes), cur); err != nil {
		return id, nil, err
	}
	var codes []string
	if code := c.get(first, shopifyDiscountCode); code != "" {
		codes = []string{code}
	}
	if o.Discount, err = discountInput(codes, "Discount Amount", c.get(first, shopifyDiscountAmount), cur); err != nil {
		return id, nil, err
	}
	o.Customer = &ingestv1.CustomerInput{Email: c.get(first, shopifyEmail), Country: country(c.get(first, shopifyBillingCountry))}
	if o.Customer.Country == "" {
		o.Customer.Country = country(c.get(first, shopifyShipCountry))
	}
	switch strings.ToLower(c.get(first, shopifyAcceptsMkt)) {
	case "yes", "true":
		o.Customer.MarketingConsent = ptr(true)
	case "no", "false":
		o.Customer.MarketingConsent = ptr(false)
	}
	for _, r := range rows {
		q := c.get(r, shopifyItemQuantity)
		if q == "" {
			continue
		}
		sku := c.get(r, shopifyItemSKU)
		if sku == "" {
			sku = c.get(r, shopifyItemName)
		}
		if sku == "" {
			continue // nothing names the item
		}
		n, err := quantity("Lineitem quantity", q)
		if err != nil {
			return id, nil, err
		}
		if n == 0 {
			continue // removed by an order edit
		}
		item := &ingestv1.LineItemInput{Sku: truncate(sku, 128), Quantity: n}
		if item.UnitPrice, err = amount("Lineitem price", c.get(r, shopifyItemPrice), cur); err != nil {
			return id, nil, err
		}
		if item.UnitPrice == nil {
			item.UnitPrice = &commonv1.Money{Currency: cur}
		}
		o.Items = append(o.Items, item)
	}

	var events []*ingestv1.Order
	switch strings.ToLower(c.get(first, shopifyFinancialStatus)) {
	case "paid", "partially_refunded", "partially refunded", "refunded":
		o.Kind = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
		o.OccurredAt = timestamppb.New(created)
		if t, ok := times[shopifyPaidAt]; ok {
			o.OccurredAt = timestamppb.New(t)
		}
	default: // pending, authorized, partially_paid, voided, expired: not paid
		o.Kind = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED
		o.OccurredAt = timestamppb.New(created)
	}
	events = append(events, o)

	refunded, err := amount("Refunded Amount", c.get(first, shopifyRefundedAmount), cur)
	if err != nil {
		return id, nil, err
	}
	if refunded != nil && refunded.GetMinorUnits() > 0 {
		// The export has no refund dates: the refund is put at the latest
		// time the order has.
		at := created
		for _, t := range times {
			if t.After(at) {
				at = t
			}
		}
		events = append(events, &ingestv1.Order{
			Source: s.opts.Source, OrderId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED,
			OccurredAt: timestamppb.New(at), Refund: &ingestv1.RefundInput{RefundId: ImportRefundID, Amount: refunded},
		})
	}
	if t, ok := times[shopifyCancelledAt]; ok {
		events = append(events, &ingestv1.Order{
			Source: s.opts.Source, OrderId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED,
			OccurredAt: timestamppb.New(t),
		})
	}
	return id, events, nil
}

func ptr[T any](v T) *T { return &v }
