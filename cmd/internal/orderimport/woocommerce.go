package orderimport

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// WooCommerce's orders as the Customer/Order/Coupon Export extension
// writes them in its built-in "Default" format (one row per order, line
// items, coupons and refunds in pipe-delimited cells) or "Default - One
// Row per Item" (the order's columns repeated on each item's row, the
// item in item_* columns). Times are the shop's local time, without an
// offset.
const (
	wooOrderID       = "order_id"
	wooDate          = "date"
	wooOrderDate     = "order_date" // the column's key, used as its name by custom formats
	wooPaidDate      = "paid_date"  // not in the built-in formats; read when a custom format adds it
	wooStatus        = "status"
	wooShippingTotal = "shipping_total"
	wooTaxTotal      = "tax_total"
	wooDiscountTotal = "discount_total"
	wooOrderTotal    = "order_total"
	wooRefundedTotal = "refunded_total"
	wooCurrency      = "order_currency"
	wooCustomerID    = "customer_id"
	wooBillingEmail  = "billing_email"
	wooBillingCtry   = "billing_country"
	wooShippingCtry  = "shipping_country"
	wooLineItems     = "line_items"
	wooCouponItems   = "coupon_items"
	wooRefunds       = "refunds"
	wooItemID        = "item_id"
	wooItemSKU       = "item_sku"
	wooItemName      = "item_name"
	wooItemProduct   = "item_product_id"
	wooItemQuantity  = "item_quantity"
	wooItemSubtotal  = "item_subtotal"
	wooItemTotal     = "item_total"
)

type wooReader struct {
	orderRows
	cols    columns
	opts    Options
	dateCol string
}

func newWooReader(r io.Reader, header []string, at Position, o Options) (Reader, error) {
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
	dateCol := wooDate
	if !cols.has(wooDate) && cols.has(wooOrderDate) {
		dateCol = wooOrderDate
	}
	if err := checkHeader(WooCommerce, cols, wooOrderID, dateCol, wooStatus, wooOrderTotal, wooCurrency); err != nil {
		return nil, err
	}
	return &wooReader{orderRows: newOrderRows(rows, cols, wooOrderID), cols: cols, opts: o, dateCol: dateCol}, nil
}

func (w *wooReader) Next() (*Order, error) { return w.next(w.order) }

// order maps an order's row (or its items' rows) to its events, by
// status as order-ingest's WooCommerce webhooks map an order, so that a
// webhook sent again for an imported order finds its events duplicates:
//
//   - pending, on-hold, failed: placed;
//   - processing, completed: paid;
//   - refunded: paid, and each refund;
//   - cancelled: placed, or paid and its refunds when it was paid (it has
//     a paid_date, or refunds), and cancelled;
//   - trash, checkout-draft and statuses of plugins: nothing (the order
//     is counted as skipped).
func (w *wooReader) order(rows [][]string) (string, []*ingestv1.Order, error) {
	c, first, loc := w.cols, rows[0], w.opts.location()
	id, err := orderID("order_id", c.get(first, wooOrderID))
	if err != nil {
		return "", nil, err
	}
	status := strings.TrimPrefix(strings.ToLower(c.get(first, wooStatus)), "wc-")
	switch status {
	case "pending", "on-hold", "failed", "processing", "completed", "refunded", "cancelled":
	default:
		return id, nil, nil
	}
	cur, err := currencyCode("order_currency", c.get(first, wooCurrency))
	if err != nil {
		return id, nil, err
	}
	created, err := parseTime(w.dateCol, c.get(first, w.dateCol), loc)
	if err != nil {
		return id, nil, err
	}
	paidAt, hasPaidDate := created, false
	if v := c.get(first, wooPaidDate); v != "" {
		if paidAt, err = parseTime(wooPaidDate, v, loc); err != nil {
			return id, nil, err
		}
		hasPaidDate = true
	}
	total := c.get(first, wooOrderTotal)
	if total == "" {
		return id, nil, rowErr(ReasonInvalid, "order_total: empty")
	}
	o := &ingestv1.Order{Source: w.opts.Source, OrderId: id}
	if o.Total, err = amount(wooOrderTotal, total, cur); err != nil {
		return id, nil, err
	}
	if o.Shipping, err = amount(wooShippingTotal, c.get(first, wooShippingTotal), cur); err != nil {
		return id, nil, err
	}
	if o.Tax, err = amount(wooTaxTotal, c.get(first, wooTaxTotal), cur); err != nil {
		return id, nil, err
	}
	coupons, err := pipeItems(wooCouponItems, c.get(first, wooCouponItems))
	if err != nil {
		return id, nil, err
	}
	var codes []string
	for _, cp := range coupons {
		if code := cp["code"]; code != "" {
			codes = append(codes, code)
		}
	}
	if o.Discount, err = discountInput(codes, wooDiscountTotal, c.get(first, wooDiscountTotal), cur); err != nil {
		return id, nil, err
	}
	o.Customer = &ingestv1.CustomerInput{Email: c.get(first, wooBillingEmail), Country: country(c.get(first, wooBillingCtry))}
	if cid := c.get(first, wooCustomerID); cid != "" && cid != "0" { // 0 is a guest
		o.Customer.PlatformCustomerId = cid
	}
	if o.Customer.Country == "" {
		o.Customer.Country = country(c.get(first, wooShippingCtry))
	}
	if o.Items, err = w.items(rows, cur); err != nil {
		return id, nil, err
	}

	refunds, err := w.refunds(first, cur, created)
	if err != nil {
		return id, nil, err
	}
	paid := false
	switch status {
	case "processing", "completed", "refunded":
		paid = true
	case "cancelled":
		paid = hasPaidDate || len(refunds) > 0
	}
	o.Kind, o.OccurredAt = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED, timestamppb.New(created)
	if paid {
		o.Kind, o.OccurredAt = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, timestamppb.New(paidAt)
	}
	events := []*ingestv1.Order{o}

	latest := paidAt
	if paid {
		// A refund of an order never paid is no event.
		for _, r := range refunds {
			events = append(events, r)
			if t := r.GetOccurredAt().AsTime(); t.After(latest) {
				latest = t
			}
		}
	}
	if status == "cancelled" {
		// The export has no cancellation time: the latest the order has.
		events = append(events, &ingestv1.Order{
			Source: w.opts.Source, OrderId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED,
			OccurredAt: timestamppb.New(latest),
		})
	}
	return id, events, nil
}

// items reads the line items from the line_items cell, or from the
// item_* columns of each row.
func (w *wooReader) items(rows [][]string, cur string) ([]*ingestv1.LineItemInput, error) {
	c := w.cols
	var raw []map[string]string
	if c.has(wooLineItems) {
		items, err := pipeItems(wooLineItems, c.get(rows[0], wooLineItems))
		if err != nil {
			return nil, err
		}
		raw = items
	} else if c.has(wooItemQuantity) {
		for _, r := range rows {
			raw = append(raw, map[string]string{
				"id": c.get(r, wooItemID), "sku": c.get(r, wooItemSKU), "name": c.get(r, wooItemName), "product_id": c.get(r, wooItemProduct),
				"quantity": c.get(r, wooItemQuantity), "subtotal": c.get(r, wooItemSubtotal), "total": c.get(r, wooItemTotal),
			})
		}
	}
	var out []*ingestv1.LineItemInput
	for i, it := range raw {
		field := fmt.Sprintf("line item %d", i+1)
		sku := wooSKU(it)
		if sku == "" {
			continue // nothing names the item
		}
		q, err := quantity(field+" quantity", it["quantity"])
		if err != nil {
			return nil, err
		}
		if q == 0 {
			continue
		}
		// The unit price is the line's total (after the order's discounts,
		// before tax) over its quantity, rounded half up to the minor
		// unit, as the webhooks read it; exports without the total have
		// the subtotal (before discounts).
		key := "total"
		if it[key] == "" {
			key = "subtotal"
		}
		total, err := amount(field+" "+key, it[key], cur)
		if err != nil {
			return nil, err
		}
		unit := total.GetMinorUnits() / q
		if rem := total.GetMinorUnits() % q; rem >= q-rem && rem > 0 {
			unit++
		}
		out = append(out, &ingestv1.LineItemInput{Sku: truncate(sku, 128), Quantity: q, UnitPrice: &commonv1.Money{Currency: cur, MinorUnits: unit}})
	}
	return out, nil
}

// wooSKU names a line as the webhooks do: its SKU, else product-<id>,
// else item-<line id>; the export's unknown_product (a product since
// deleted) is no SKU. The line's name is the last resort.
func wooSKU(it map[string]string) string {
	sku, product := it["sku"], it["product_id"]
	if sku == "unknown_product" && strings.TrimLeft(product, "0") == "" {
		sku = ""
	}
	switch {
	case sku != "":
		return sku
	case strings.TrimLeft(product, "0") != "":
		return "product-" + product
	case it["id"] != "":
		return "item-" + it["id"]
	}
	return it["name"]
}

// refunds reads the refunds cell, one refunded event per refund with the
// shop's refund id; without it, refunded_total makes one refund with
// ImportRefundID.
func (w *wooReader) refunds(rec []string, cur string, created time.Time) ([]*ingestv1.Order, error) {
	c, loc := w.cols, w.opts.location()
	id := c.get(rec, wooOrderID)
	list, err := pipeItems(wooRefunds, c.get(rec, wooRefunds))
	if err != nil {
		return nil, err
	}
	var out []*ingestv1.Order
	for i, r := range list {
		field := fmt.Sprintf("refund %d", i+1)
		amt, err := amount(field+" amount", r["amount"], cur)
		if err != nil {
			return nil, err
		}
		if amt.GetMinorUnits() == 0 {
			continue
		}
		at := created
		if r["date"] != "" {
			if at, err = parseTime(field+" date", r["date"], loc); err != nil {
				return nil, err
			}
		}
		rid := r["id"]
		if rid == "" {
			rid = fmt.Sprintf("%s-%d", ImportRefundID, i+1)
		}
		out = append(out, &ingestv1.Order{
			Source: w.opts.Source, OrderId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED,
			OccurredAt: timestamppb.New(at), Refund: &ingestv1.RefundInput{RefundId: truncate(rid, 128), Amount: amt},
		})
	}
	if len(list) > 0 {
		return out, nil
	}
	amt, err := amount(wooRefundedTotal, c.get(rec, wooRefundedTotal), cur)
	if err != nil || amt.GetMinorUnits() == 0 {
		return nil, err
	}
	return []*ingestv1.Order{{
		Source: w.opts.Source, OrderId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED,
		OccurredAt: timestamppb.New(created), Refund: &ingestv1.RefundInput{RefundId: ImportRefundID, Amount: amt},
	}}, nil
}

// pipeItems reads a cell of items: "key:value|key:value" per item, items
// separated by ";", and \: \| \; standing for the characters themselves;
// or, from formats set to JSON items, a JSON array of objects.
func pipeItems(field, s string) ([]map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	if s[0] == '[' {
		var raw []map[string]any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber() // ids and quantities as written, never through a float
		if err := dec.Decode(&raw); err != nil {
			return nil, rowErr(ReasonMalformed, "%s: not a JSON array of objects: %v", field, err)
		}
		out := make([]map[string]string, len(raw))
		for i, m := range raw {
			out[i] = make(map[string]string, len(m))
			for k, v := range m {
				switch v := v.(type) {
				case string:
					out[i][k] = v
				case json.Number:
					out[i][k] = v.String()
				}
			}
		}
		return out, nil
	}
	var out []map[string]string
	for _, item := range splitEscaped(s, ';') {
		if strings.TrimSpace(item) == "" {
			continue
		}
		m := map[string]string{}
		for _, kv := range splitEscaped(item, '|') {
			k, v, ok := cutEscaped(kv, ':')
			if !ok {
				return nil, rowErr(ReasonMalformed, "%s: %q is not key:value", field, truncate(kv, 40))
			}
			m[strings.TrimSpace(unescape(k))] = strings.TrimSpace(unescape(v))
		}
		out = append(out, m)
	}
	return out, nil
}

// splitEscaped splits s at every sep not preceded by a backslash, keeping
// the escapes for the next level to undo.
func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func cutEscaped(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\:`, ":", `\|`, "|", `\;`, ";").Replace(s)
}
