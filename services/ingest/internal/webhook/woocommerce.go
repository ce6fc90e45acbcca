package webhook

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/orderjson"
)

// WooCommerce is WooCommerce's webhooks of the order topics
// (order.created, order.updated, order.deleted, order.restored), API
// version WP REST API Integration v3: the body is the order as
// GET /wp-json/wc/v3/orders/<id> returns it, or {"id": <id>} for
// order.deleted. See the WooCommerce section of services/ingest/README.md.
var WooCommerce = Platform{
	Name:   "woocommerce",
	Verify: verifyWooCommerce,
	Ping:   wooPing,
	Header: wooHeader,
	Map:    mapWooCommerce,
}

// WooCommerce's headers, spelt as WooCommerce sends them.
const (
	HeaderWCSignature  = "X-WC-Webhook-Signature"
	HeaderWCDeliveryID = "X-WC-Webhook-Delivery-ID"
	HeaderWCTopic      = "X-WC-Webhook-Topic"
	HeaderWCResource   = "X-WC-Webhook-Resource"
	HeaderWCEvent      = "X-WC-Webhook-Event"
	HeaderWCSource     = "X-WC-Webhook-Source"
	HeaderWCID         = "X-WC-Webhook-ID"
)

// verifyWooCommerce checks X-WC-Webhook-Signature, the base64 HMAC-SHA256
// of the body with the webhook's secret. WooCommerce signs no timestamp,
// so a captured delivery could be sent again at any time: that is
// harmless, because every delivery is a snapshot of its order and mapping
// it again yields the same order events, which order-ingest's key
// (source, order, kind, refund) makes duplicates.
//
// The id returned is X-WC-Webhook-Delivery-ID and a digest of the body.
// WooCommerce derives the delivery id from the webhook's id and the
// current second only, so two deliveries of one webhook within a second
// (a bulk edit of orders) share it; the digest keeps them apart, while
// the same delivery sent twice (a proxy's retry) is still one.
func verifyWooCommerce(h http.Header, body, secret []byte, _ time.Time, _ time.Duration) (string, error) {
	if err := verifyBodyHMAC(h, HeaderWCSignature, body, secret); err != nil {
		return "", err
	}
	id := h.Get(HeaderWCDeliveryID)
	if !ValidDeliveryID(id) {
		return "", fmt.Errorf("%w: %s", ErrDeliveryID, HeaderWCDeliveryID)
	}
	sum := sha256.Sum256(body)
	return id + "." + hex.EncodeToString(sum[:8]), nil
}

// wooPing recognises the request WooCommerce sends when a webhook is
// saved, to test the delivery URL: a POST of the form body
// webhook_id=<the webhook's id>, without signature or topic. WooCommerce
// keeps the webhook only when it is answered 200.
func wooPing(h http.Header, body []byte) bool {
	if h.Get(HeaderWCSignature) != "" || h.Get(HeaderWCTopic) != "" {
		return false
	}
	if ct := h.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
			return false
		}
	}
	id, ok := bytes.CutPrefix(body, []byte("webhook_id="))
	return ok && len(id) > 0 && len(id) <= 20 && wooDigits(string(id))
}

// wooHeader keeps WooCommerce's headers (Map reads the topic; the others
// tell an operator which webhook of which site sent a dead letter).
func wooHeader(h http.Header) http.Header {
	out := http.Header{}
	for _, k := range []string{HeaderWCTopic, HeaderWCResource, HeaderWCEvent, HeaderWCSource, HeaderWCID, HeaderWCDeliveryID} {
		if v := h.Get(k); v != "" {
			out[k] = []string{v} // as spelt here: NATS headers are case-sensitive
		}
	}
	return out
}

// mapWooCommerce maps a delivery by its topic. Topics of other resources
// (a product or coupon webhook pointed at the same URL) tell of no order.
func mapWooCommerce(h nats.Header, body []byte) ([]*ingestv1.Order, error) {
	switch topic := wooGet(h, HeaderWCTopic); topic {
	case "order.created", "order.updated", "order.restored":
		return wooSnapshot(body)
	case "order.deleted":
		return wooDeleted(h, body)
	case "":
		return nil, &orderjson.Error{Field: HeaderWCTopic, Err: fmt.Errorf("%w: missing", orderjson.ErrSyntax)}
	default:
		return nil, nil
	}
}

// wooGet reads a header of a captured message, whatever its case.
func wooGet(h nats.Header, key string) string {
	if v := h.Get(key); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, key) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// wooOrder is the part of a REST API v3 order that Boomerang reads. Ids
// are integers, read as json.Number so that no float64 rounds them;
// amounts are decimal strings; the *_gmt dates are UTC without a zone.
type wooOrder struct {
	ID               json.Number `json:"id"`
	Status           string      `json:"status"`
	Currency         string      `json:"currency"`
	CreatedVia       string      `json:"created_via"`
	DateCreatedGMT   *string     `json:"date_created_gmt"`
	DateModifiedGMT  *string     `json:"date_modified_gmt"`
	DatePaidGMT      *string     `json:"date_paid_gmt"`
	DateCompletedGMT *string     `json:"date_completed_gmt"`
	DiscountTotal    wooDecimal  `json:"discount_total"`
	ShippingTotal    wooDecimal  `json:"shipping_total"`
	Total            wooDecimal  `json:"total"`
	TotalTax         wooDecimal  `json:"total_tax"`
	CustomerID       json.Number `json:"customer_id"`
	Billing          *struct {
		Email   string `json:"email"`
		Country string `json:"country"`
	} `json:"billing"`
	LineItems []struct {
		ID          json.Number `json:"id"`
		ProductID   json.Number `json:"product_id"`
		VariationID json.Number `json:"variation_id"`
		Quantity    json.Number `json:"quantity"`
		Total       wooDecimal  `json:"total"`
		SKU         string      `json:"sku"`
	} `json:"line_items"`
	CouponLines []struct {
		Code string `json:"code"`
	} `json:"coupon_lines"`
	Refunds []struct {
		ID    json.Number `json:"id"`
		Total wooDecimal  `json:"total"`
	} `json:"refunds"`
}

// wooDecimal keeps an amount's text, sent as a string ("19.99") or a
// number.
type wooDecimal struct {
	text string
	set  bool
}

func (d *wooDecimal) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		return nil
	case len(b) > 0 && b[0] == '"':
		if err := json.Unmarshal(b, &d.text); err != nil {
			return err
		}
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		d.text = string(b)
	default:
		// A type error, so that the decoder names the field.
		return &json.UnmarshalTypeError{Value: "non-amount " + string(b[:min(len(b), 16)]), Type: reflect.TypeFor[string]()}
	}
	d.set = true
	return nil
}

// The kinds a snapshot maps to.
const (
	wooPlaced    = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED
	wooPaid      = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
	wooRefunded  = ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED
	wooCancelled = ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED
)

// wooSnapshot maps an order as it stands now to every event its status
// and refunds imply; the ones order-ingest has had already are
// duplicates. By status:
//
//   - pending, on-hold, failed: placed. A failed order is a payment that
//     failed and the customer may retry; cancellation is terminal in
//     Boomerang, so it must not be one.
//   - processing, completed: placed, paid.
//   - refunded: placed, paid, and each refund.
//   - cancelled: placed, paid if it has a payment date, its refunds, and
//     cancelled.
//   - anything else (trash, checkout-draft, a plugin's own status):
//     nothing.
//
// Refunds are mapped whatever the (known) status once the order was paid
// (a paying status or a payment date), so that a refund of a paid order
// put on hold is not missed; a refund of an order never paid is not an
// event. WooCommerce's refunds carry no date of their own in the order:
// they are dated with the order's last modification, which a refund is.
func wooSnapshot(body []byte) ([]*ingestv1.Order, error) {
	var w wooOrder
	if err := decodeJSON(body, &w); err != nil {
		return nil, err
	}
	id, err := wooID("id", w.ID)
	if err != nil {
		return nil, err
	}
	if w.Status == "" {
		return nil, &orderjson.Error{Field: "status", Err: fmt.Errorf("%w: missing", orderjson.ErrSyntax)}
	}
	var paying bool
	switch w.Status {
	case "pending", "on-hold", "failed", "cancelled":
	case "processing", "completed", "refunded":
		paying = true
	default:
		return nil, nil
	}
	if w.Currency == "" {
		return nil, &orderjson.Error{Field: "currency", Err: errors.New("required")}
	}
	if !money.Known(w.Currency) {
		return nil, &orderjson.Error{Field: "currency", Err: fmt.Errorf("%w: %q", money.ErrUnknownCurrency, w.Currency)}
	}
	created, err := wooTime("date_created_gmt", w.DateCreatedGMT)
	if err != nil {
		return nil, err
	}
	if created == nil {
		return nil, &orderjson.Error{Field: "date_created_gmt", Err: errors.New("required")}
	}
	modified, err := wooTime("date_modified_gmt", w.DateModifiedGMT)
	if err != nil {
		return nil, err
	}
	paidAt, err := wooTime("date_paid_gmt", w.DatePaidGMT)
	if err != nil {
		return nil, err
	}
	completed, err := wooTime("date_completed_gmt", w.DateCompletedGMT)
	if err != nil {
		return nil, err
	}
	placed, err := w.order(id, created)
	if err != nil {
		return nil, err
	}
	out := []*ingestv1.Order{placed}
	if paying || (w.Status == "cancelled" && paidAt != nil) {
		paid := proto.Clone(placed).(*ingestv1.Order)
		paid.Kind = wooPaid
		paid.OccurredAt = cmp.Or(paidAt, completed, created)
		out = append(out, paid)
	}
	changed := cmp.Or(modified, created)
	if paying || paidAt != nil {
		refunds, err := w.refunds(id, changed)
		if err != nil {
			return nil, err
		}
		out = append(out, refunds...)
	}
	if w.Status == "cancelled" {
		out = append(out, &ingestv1.Order{OrderId: id, Kind: wooCancelled, OccurredAt: changed})
	}
	return out, nil
}

// order is the placed event of the snapshot: the order with its amounts,
// customer and lines.
func (w *wooOrder) order(id string, at *timestamppb.Timestamp) (*ingestv1.Order, error) {
	o := &ingestv1.Order{OrderId: id, Kind: wooPlaced, OccurredAt: at}
	// created_via says where the order was made: checkout (the classic
	// checkout), store-api (the block checkout), admin, rest-api, or a
	// plugin's name. It is the channel campaigns filter on, as sent; one
	// longer than a channel may be is left out rather than fail the order.
	if len(w.CreatedVia) <= 64 {
		o.Channel = w.CreatedVia
	}
	var err error
	if !w.Total.set {
		return nil, &orderjson.Error{Field: "total", Err: errors.New("required")}
	}
	if o.Total, err = wooMoney("total", w.Total, w.Currency); err != nil {
		return nil, err
	}
	if w.ShippingTotal.set {
		if o.Shipping, err = wooMoney("shipping_total", w.ShippingTotal, w.Currency); err != nil {
			return nil, err
		}
	}
	if w.TotalTax.set {
		if o.Tax, err = wooMoney("total_tax", w.TotalTax, w.Currency); err != nil {
			return nil, err
		}
	}
	var codes []string
	for _, c := range w.CouponLines {
		if c.Code != "" {
			codes = append(codes, c.Code)
		}
	}
	if w.DiscountTotal.set || len(codes) > 0 {
		o.Discount = &ingestv1.DiscountInput{Codes: codes}
		if w.DiscountTotal.set {
			if o.Discount.Amount, err = wooMoney("discount_total", w.DiscountTotal, w.Currency); err != nil {
				return nil, err
			}
		}
		if len(codes) == 0 && o.Discount.Amount.GetMinorUnits() == 0 {
			o.Discount = nil
		}
	}
	o.Customer = &ingestv1.CustomerInput{}
	if w.CustomerID != "" {
		cid := string(w.CustomerID)
		if !wooDigits(cid) {
			return nil, &orderjson.Error{Field: "customer_id", Err: fmt.Errorf("%q: want a whole number", cid)}
		}
		if strings.TrimLeft(cid, "0") != "" { // 0 is a guest
			o.Customer.PlatformCustomerId = cid
		}
	}
	if b := w.Billing; b != nil {
		o.Customer.Email, o.Customer.Country = b.Email, b.Country
	}
	for i, li := range w.LineItems {
		field := fmt.Sprintf("line_items[%d]", i)
		q, err := strconv.ParseInt(string(li.Quantity), 10, 64)
		if err != nil {
			return nil, &orderjson.Error{Field: field + ".quantity", Err: fmt.Errorf("%q: want a whole number", li.Quantity)}
		}
		if q < 1 {
			continue // nothing bought: no value to count
		}
		if !li.Total.set {
			return nil, &orderjson.Error{Field: field + ".total", Err: errors.New("required")}
		}
		total, err := wooMoney(field+".total", li.Total, w.Currency)
		if err != nil {
			return nil, err
		}
		sku, err := wooSKU(field, li.SKU, li.ProductID, li.ID)
		if err != nil {
			return nil, err
		}
		// The unit price is the line's total over its quantity: the total
		// is after the order's discounts (and, like every WooCommerce line
		// amount, before tax), so the lines count what the customer paid,
		// as the order's total does, and a campaign on a category or the
		// gift-card exclusion never counts a coupon's share. The subtotal
		// is before discounts, and WooCommerce's own "price" is that
		// division as a float. It is rounded to the nearest minor unit,
		// half up, when the quantity does not divide the total: the line's
		// value is then off by less than half a minor unit per unit, as it
		// is anyway once the unit price is converted to the base currency.
		unit := total.MinorUnits / q
		if rem := total.MinorUnits % q; rem >= q-rem {
			unit++
		}
		o.Items = append(o.Items, &ingestv1.LineItemInput{
			Sku: sku, Quantity: q, UnitPrice: &commonv1.Money{MinorUnits: unit, Currency: w.Currency},
		})
	}
	return o, nil
}

// refunds maps the order's refunds, oldest (lowest id) first. WooCommerce
// lists each with its total negated ("-5.00"); a refund of nothing
// changes nothing and is left out.
func (w *wooOrder) refunds(id string, at *timestamppb.Timestamp) ([]*ingestv1.Order, error) {
	var out []*ingestv1.Order
	for i, r := range w.Refunds {
		field := fmt.Sprintf("refunds[%d]", i)
		rid, err := wooID(field+".id", r.ID)
		if err != nil {
			return nil, err
		}
		if !r.Total.set {
			return nil, &orderjson.Error{Field: field + ".total", Err: errors.New("required")}
		}
		amount := r.Total
		amount.text = strings.TrimPrefix(strings.TrimSpace(amount.text), "-")
		m, err := wooMoney(field+".total", amount, w.Currency)
		if err != nil {
			return nil, err
		}
		if m.MinorUnits == 0 {
			continue
		}
		out = append(out, &ingestv1.Order{
			OrderId: id, Kind: wooRefunded, OccurredAt: at,
			Refund: &ingestv1.RefundInput{RefundId: rid, Amount: m},
		})
	}
	slices.SortStableFunc(out, func(a, b *ingestv1.Order) int {
		x, y := a.Refund.RefundId, b.Refund.RefundId
		return cmp.Or(cmp.Compare(len(x), len(y)), strings.Compare(x, y))
	})
	return out, nil
}

// wooDeleted maps order.deleted, sent when an order is moved to the
// trash, to its cancellation at the time the delivery was received: a
// deleted order's points are void. Restoring the order (order.restored)
// does not undo it; see the README.
func wooDeleted(h nats.Header, body []byte) ([]*ingestv1.Order, error) {
	var d struct {
		ID json.Number `json:"id"`
	}
	if err := decodeJSON(body, &d); err != nil {
		return nil, err
	}
	id, err := wooID("id", d.ID)
	if err != nil {
		return nil, err
	}
	at, err := time.Parse(time.RFC3339, wooGet(h, HeaderReceivedAt))
	if err != nil {
		return nil, &orderjson.Error{Field: HeaderReceivedAt, Err: errors.New("want the RFC 3339 time the delivery was received")}
	}
	return []*ingestv1.Order{{OrderId: id, Kind: wooCancelled, OccurredAt: timestamppb.New(at)}}, nil
}

// wooSKU is the line's SKU or, for a product without one, product-<id>:
// a variation without a SKU of its own is known by its parent's in
// WooCommerce, and so by its parent product here, which is what a
// campaign would name. A line whose product is gone is item-<line id>.
func wooSKU(field, sku string, product, line json.Number) (string, error) {
	if s := strings.TrimSpace(sku); s != "" {
		return s, nil
	}
	if p := string(product); wooDigits(p) && strings.TrimLeft(p, "0") != "" {
		return "product-" + p, nil
	}
	if l := string(line); wooDigits(l) {
		return "item-" + l, nil
	}
	return "", &orderjson.Error{Field: field + ".sku", Err: errors.New("no sku, product_id or id")}
}

// wooID reads a required positive integer id.
func wooID(field string, n json.Number) (string, error) {
	s := string(n)
	if s == "" {
		return "", &orderjson.Error{Field: field, Err: fmt.Errorf("%w: missing", orderjson.ErrSyntax)}
	}
	if !wooDigits(s) || strings.TrimLeft(s, "0") == "" {
		return "", &orderjson.Error{Field: field, Err: fmt.Errorf("%q: want a positive whole number", s)}
	}
	return s, nil
}

func wooDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// wooTime reads a *_gmt date: UTC, without a zone suffix (a suffix is
// accepted too); nil when the date is null or absent.
func wooTime(field string, s *string) (*timestamppb.Timestamp, error) {
	if s == nil || *s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		t, err = time.Parse("2006-01-02T15:04:05", *s)
	}
	if err != nil {
		return nil, &orderjson.Error{Field: field, Err: errors.New("want a time such as 2026-10-03T09:14:07 (UTC)")}
	}
	return timestamppb.New(t), nil
}

// wooMoney converts an amount of the order's currency (already known to
// money) to minor units, exactly.
func wooMoney(field string, d wooDecimal, currency string) (*commonv1.Money, error) {
	v, err := money.Parse(d.text, currency)
	if err != nil {
		return nil, &orderjson.Error{Field: field, Err: err}
	}
	return &commonv1.Money{MinorUnits: v, Currency: currency}, nil
}
