package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
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

// Shopify is Shopify's order webhooks (the REST Admin API's order and
// refund resources, as every API version since 2023 sends them). See the
// Shopify section of services/ingest/README.md for the topics and how each
// field is read.
var Shopify = Platform{Name: "shopify", Verify: verifyShopify, Header: shopifyHeader, Map: mapShopify}

// Shopify's headers.
const (
	ShopifyHMAC        = "X-Shopify-Hmac-Sha256"
	ShopifyTopic       = "X-Shopify-Topic"
	ShopifyWebhookID   = "X-Shopify-Webhook-Id"
	ShopifyEventID     = "X-Shopify-Event-Id"
	ShopifyShopDomain  = "X-Shopify-Shop-Domain"
	ShopifyTriggeredAt = "X-Shopify-Triggered-At"
	ShopifyAPIVersion  = "X-Shopify-Api-Version"
)

// verifyShopify checks X-Shopify-Hmac-Sha256, the base64 HMAC-SHA256 of
// the raw body with the app's secret. Shopify signs no timestamp: a
// delivery replayed later maps to the same order events, which order-ingest
// already has, so a replay changes nothing.
func verifyShopify(h http.Header, body, secret []byte, _ time.Time, _ time.Duration) (string, error) {
	if err := verifyBodyHMAC(h, ShopifyHMAC, body, secret); err != nil {
		return "", err
	}
	// The webhook id is the same on every retry of a delivery; the event
	// id names the event, for shops whose deliveries lack the former.
	id := h.Get(ShopifyWebhookID)
	if id == "" {
		id = h.Get(ShopifyEventID)
	}
	if !ValidDeliveryID(id) {
		return "", fmt.Errorf("%w: %s", ErrDeliveryID, ShopifyWebhookID)
	}
	return id, nil
}

func shopifyHeader(h http.Header) http.Header {
	out := http.Header{}
	for _, k := range []string{ShopifyTopic, ShopifyWebhookID, ShopifyEventID, ShopifyShopDomain, ShopifyTriggeredAt, ShopifyAPIVersion} {
		if v := h.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out
}

// Shopify's topics, as X-Shopify-Topic names them.
const (
	topicRefundsCreate = "refunds/create"
	// The mandatory privacy topics: verified and captured, and mapped to
	// no order event.
	topicCustomersDataRequest = "customers/data_request"
	topicCustomersRedact      = "customers/redact"
	topicShopRedact           = "shop/redact"
)

// shopifyOrderTopics carry the whole order, read as a snapshot: what it
// says has happened (placed, paid, each refund, cancelled) is mapped every
// time, and order-ingest keeps each event once.
var shopifyOrderTopics = map[string]bool{
	"orders/create": true, "orders/paid": true, "orders/updated": true, "orders/cancelled": true,
	"orders/fulfilled": true, "orders/partially_fulfilled": true,
}

// ShopifyPrivacyTopic reports whether topic is one of the privacy requests
// Shopify requires every app to accept.
func ShopifyPrivacyTopic(topic string) bool {
	return topic == topicCustomersDataRequest || topic == topicCustomersRedact || topic == topicShopRedact
}

// shopifyID is an id as Shopify sends it: a JSON number that may exceed
// 2^53, or a string; it is kept as its decimal text and never passes
// through float64.
type shopifyID string

func (s *shopifyID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = shopifyID(v)
		return nil
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return fmt.Errorf("id %s: want a whole number", b)
		}
	}
	*s = shopifyID(b)
	return nil
}

// shopifyMoney is one amount of a Shopify "_set": the amount as decimal
// text and its currency.
type shopifyMoney struct {
	Amount       string `json:"amount"`
	CurrencyCode string `json:"currency_code"`
}

// shopifySet is an amount in the shop's currency (what the seller
// receives) and in the presentment currency (what the customer paid).
type shopifySet struct {
	ShopMoney        shopifyMoney `json:"shop_money"`
	PresentmentMoney shopifyMoney `json:"presentment_money"`
}

type shopifyOrder struct {
	ID                    shopifyID               `json:"id"`
	Email                 string                  `json:"email"`
	ContactEmail          string                  `json:"contact_email"`
	CreatedAt             string                  `json:"created_at"`
	ProcessedAt           string                  `json:"processed_at"`
	CancelledAt           string                  `json:"cancelled_at"`
	Currency              string                  `json:"currency"`
	PresentmentCurrency   string                  `json:"presentment_currency"`
	FinancialStatus       string                  `json:"financial_status"`
	Test                  bool                    `json:"test"`
	SourceName            string                  `json:"source_name"`
	TotalPriceSet         *shopifySet             `json:"total_price_set"`
	CurrentTotalPriceSet  *shopifySet             `json:"current_total_price_set"`
	TotalShippingPriceSet *shopifySet             `json:"total_shipping_price_set"`
	TotalTaxSet           *shopifySet             `json:"total_tax_set"`
	CurrentTotalTaxSet    *shopifySet             `json:"current_total_tax_set"`
	TotalDiscountsSet     *shopifySet             `json:"total_discounts_set"`
	CurrentDiscountsSet   *shopifySet             `json:"current_total_discounts_set"`
	DiscountCodes         []struct{ Code string } `json:"discount_codes"`
	LineItems             []shopifyLine           `json:"line_items"`
	Customer              *struct {
		ID                    shopifyID `json:"id"`
		Email                 string    `json:"email"`
		EmailMarketingConsent *struct {
			State string `json:"state"`
		} `json:"email_marketing_consent"`
		AcceptsMarketing *bool           `json:"accepts_marketing"`
		DefaultAddress   *shopifyAddress `json:"default_address"`
	} `json:"customer"`
	BillingAddress  *shopifyAddress `json:"billing_address"`
	ShippingAddress *shopifyAddress `json:"shipping_address"`
	Refunds         []shopifyRefund `json:"refunds"`
}

type shopifyAddress struct {
	CountryCode string `json:"country_code"`
}

type shopifyLine struct {
	ID              shopifyID   `json:"id"`
	ProductID       shopifyID   `json:"product_id"`
	VariantID       shopifyID   `json:"variant_id"`
	SKU             string      `json:"sku"`
	Quantity        int64       `json:"quantity"`
	CurrentQuantity *int64      `json:"current_quantity"`
	PriceSet        *shopifySet `json:"price_set"`
	Price           string      `json:"price"`
	GiftCard        bool        `json:"gift_card"`
}

type shopifyRefund struct {
	ID           shopifyID `json:"id"`
	OrderID      shopifyID `json:"order_id"`
	CreatedAt    string    `json:"created_at"`
	ProcessedAt  string    `json:"processed_at"`
	Transactions []struct {
		Kind     string `json:"kind"`
		Status   string `json:"status"`
		Amount   string `json:"amount"`
		Currency string `json:"currency"`
	} `json:"transactions"`
}

// mapShopify maps a delivery by its topic: an order snapshot to the events
// it shows, a refund to its event, a privacy request or any other topic to
// none.
func mapShopify(h nats.Header, body []byte) ([]*ingestv1.Order, error) {
	topic := h.Get(ShopifyTopic)
	switch {
	case shopifyOrderTopics[topic]:
		var o shopifyOrder
		if err := decodeJSON(body, &o); err != nil {
			return nil, err
		}
		return o.events()
	case topic == topicRefundsCreate:
		var r shopifyRefund
		if err := decodeJSON(body, &r); err != nil {
			return nil, err
		}
		ev, err := r.event("", nil)
		if ev == nil || err != nil {
			return nil, err
		}
		return []*ingestv1.Order{ev}, nil
	}
	return nil, nil
}

// paidStatuses are the financial statuses of an order whose payment was
// taken in full (refunds come after it).
var paidStatuses = map[string]bool{"paid": true, "partially_refunded": true, "refunded": true}

// events returns what the order snapshot shows has happened: placed; paid
// when its financial status says so; each refund that returned money;
// cancelled when it was.
func (o *shopifyOrder) events() ([]*ingestv1.Order, error) {
	if o.ID == "" {
		return nil, &orderjson.Error{Field: "id", Err: fmt.Errorf("%w: an order without id", orderjson.ErrSyntax)}
	}
	placedAt, err := shopifyTime("processed_at", o.ProcessedAt, o.CreatedAt)
	if err != nil {
		return nil, err
	}
	cur := o.PresentmentCurrency
	if cur == "" {
		cur = o.Currency
	}
	if err := checkCurrency("presentment_currency", cur); err != nil {
		return nil, err
	}
	refunds := make([]*ingestv1.Order, 0, len(o.Refunds))
	var refunded int64
	for i, r := range o.Refunds {
		ev, err := r.event(fmt.Sprintf("refunds[%d].", i), o)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			refunds = append(refunds, ev)
			refunded += ev.GetRefund().GetAmount().GetMinorUnits()
		}
	}

	placed, err := o.order(cur, refunded)
	if err != nil {
		return nil, err
	}
	placed.Kind = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED
	placed.OccurredAt = placedAt
	out := []*ingestv1.Order{placed}
	paid := paidStatuses[o.FinancialStatus]
	if paid {
		p := cloneOrder(placed)
		p.Kind = ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID
		out = append(out, p)
		out = append(out, refunds...)
	}
	if o.CancelledAt != "" {
		at, err := shopifyTime("cancelled_at", o.CancelledAt, "")
		if err != nil {
			return nil, err
		}
		out = append(out, &ingestv1.Order{OrderId: string(o.ID), Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED,
			OccurredAt: at, Test: o.Test})
	}
	return out, nil
}

// order is the order's placed (and paid) body. Its total is what the
// customer was charged in the presentment currency: the current total
// (after edits, returns and refunds) with what was refunded added back,
// as the refunds are events of their own. A cancelled order's current
// amounts show the cancellation, not an edit: its original ones are used.
// The shop-currency total, when the shop converted, is the settled total
// in the same proportion.
func (o *shopifyOrder) order(cur string, refunded int64) (*ingestv1.Order, error) {
	ord := &ingestv1.Order{OrderId: string(o.ID), Test: o.Test, Channel: shopifyChannel(o.SourceName)}
	current := o.CancelledAt == ""
	totalSet, field := o.CurrentTotalPriceSet, "current_total_price_set"
	if totalSet == nil || !current {
		totalSet, field, refunded = o.TotalPriceSet, "total_price_set", 0
	}
	total, err := presentment(field, totalSet, cur)
	if err != nil {
		return nil, err
	}
	if total == nil {
		return nil, &orderjson.Error{Field: "total_price_set", Err: errors.New("required")}
	}
	total.MinorUnits += refunded
	ord.Total = total
	if s := o.TotalPriceSet; s != nil && s.ShopMoney.CurrencyCode != "" && s.ShopMoney.CurrencyCode != cur {
		shopTotal, err := amountOf("total_price_set.shop_money.amount", s.ShopMoney.Amount, s.ShopMoney.CurrencyCode)
		if err != nil {
			return nil, err
		}
		presTotal, err := amountOf("total_price_set.presentment_money.amount", s.PresentmentMoney.Amount, cur)
		if err != nil {
			return nil, err
		}
		settled := shopTotal
		if presTotal != total.MinorUnits && presTotal > 0 {
			settled = scale(shopTotal, total.MinorUnits, presTotal)
		}
		ord.SettledTotal = &commonv1.Money{MinorUnits: settled, Currency: s.ShopMoney.CurrencyCode}
	}
	if ord.Shipping, err = presentment("total_shipping_price_set", o.TotalShippingPriceSet, cur); err != nil {
		return nil, err
	}
	tax := o.CurrentTotalTaxSet
	if tax == nil || !current {
		tax = o.TotalTaxSet
	}
	if ord.Tax, err = presentment("total_tax_set", tax, cur); err != nil {
		return nil, err
	}
	disc := o.CurrentDiscountsSet
	if disc == nil || !current {
		disc = o.TotalDiscountsSet
	}
	discount, err := presentment("total_discounts_set", disc, cur)
	if err != nil {
		return nil, err
	}
	var codes []string
	for _, c := range o.DiscountCodes {
		if c.Code != "" {
			codes = append(codes, c.Code)
		}
	}
	if len(codes) > 0 || discount.GetMinorUnits() > 0 {
		ord.Discount = &ingestv1.DiscountInput{Codes: codes, Amount: discount}
	}
	for i, l := range o.LineItems {
		q := l.Quantity
		if l.CurrentQuantity != nil && current {
			q = *l.CurrentQuantity // after edits and removals
		}
		if q <= 0 {
			continue
		}
		field := fmt.Sprintf("line_items[%d].price_set", i)
		price, err := presentment(field, l.PriceSet, cur)
		if err != nil {
			return nil, err
		}
		if price == nil { // payloads without the set: price is in the shop's currency
			if o.Currency != cur {
				return nil, &orderjson.Error{Field: field, Err: errors.New("required when the customer paid in another currency")}
			}
			if price, err = moneyOf(fmt.Sprintf("line_items[%d].price", i), l.Price, cur); err != nil {
				return nil, err
			}
		}
		ord.Items = append(ord.Items, &ingestv1.LineItemInput{Sku: l.sku(), Quantity: q, UnitPrice: price, GiftCard: l.GiftCard})
	}
	ord.Customer = o.customer()
	return ord, nil
}

// sku is the line's SKU, or the most precise id Shopify gives when the
// merchant set none.
func (l shopifyLine) sku() string {
	switch {
	case strings.TrimSpace(l.SKU) != "":
		return l.SKU
	case l.VariantID != "":
		return "variant-" + string(l.VariantID)
	case l.ProductID != "":
		return "product-" + string(l.ProductID)
	}
	return "line-" + string(l.ID)
}

func (o *shopifyOrder) customer() *ingestv1.CustomerInput {
	c := &ingestv1.CustomerInput{Email: strings.TrimSpace(o.Email)}
	if c.Email == "" {
		c.Email = strings.TrimSpace(o.ContactEmail)
	}
	for _, a := range []*shopifyAddress{o.BillingAddress, o.ShippingAddress} {
		if a != nil && c.Country == "" {
			c.Country = a.CountryCode
		}
	}
	if oc := o.Customer; oc != nil {
		c.PlatformCustomerId = string(oc.ID)
		if c.Email == "" {
			c.Email = strings.TrimSpace(oc.Email)
		}
		if c.Country == "" && oc.DefaultAddress != nil {
			c.Country = oc.DefaultAddress.CountryCode
		}
		switch {
		case oc.EmailMarketingConsent != nil:
			switch oc.EmailMarketingConsent.State {
			case "subscribed":
				c.MarketingConsent = new(true)
			case "not_subscribed", "unsubscribed":
				c.MarketingConsent = new(false)
			}
			// pending (double opt-in not confirmed), redacted, invalid:
			// nothing is known.
		case oc.AcceptsMarketing != nil:
			c.MarketingConsent = new(*oc.AcceptsMarketing)
		}
	}
	return c
}

// event returns the refund's event, or nil when it returned no money (a
// restock or a refund to nothing). o is the order it came in, when it came
// in one: its amounts say how to read a refund in the shop's currency.
func (r *shopifyRefund) event(prefix string, o *shopifyOrder) (*ingestv1.Order, error) {
	if r.ID == "" {
		return nil, &orderjson.Error{Field: prefix + "id", Err: fmt.Errorf("%w: a refund without id", orderjson.ErrSyntax)}
	}
	orderID := string(r.OrderID)
	if o != nil {
		orderID = string(o.ID)
	}
	if orderID == "" {
		return nil, &orderjson.Error{Field: prefix + "order_id", Err: fmt.Errorf("%w: a refund without its order", orderjson.ErrSyntax)}
	}
	at, err := shopifyTime(prefix+"processed_at", r.ProcessedAt, r.CreatedAt)
	if err != nil {
		return nil, err
	}
	var sum int64
	cur := ""
	for i, t := range r.Transactions {
		if t.Kind != "refund" || t.Status != "success" {
			continue
		}
		field := fmt.Sprintf("%stransactions[%d].amount", prefix, i)
		v, err := amountOf(field, t.Amount, t.Currency)
		if err != nil {
			return nil, err
		}
		tc := t.Currency
		if o != nil {
			if tc, v, err = o.inPresentment(field, tc, v); err != nil {
				return nil, err
			}
		}
		if cur != "" && tc != cur {
			return nil, &orderjson.Error{Field: field, Err: fmt.Errorf("refund transactions in %s and %s", cur, tc)}
		}
		cur = tc
		sum += v
	}
	if sum == 0 {
		return nil, nil
	}
	return &ingestv1.Order{
		OrderId: orderID, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, OccurredAt: at,
		Refund: &ingestv1.RefundInput{RefundId: string(r.ID), Amount: &commonv1.Money{MinorUnits: sum, Currency: cur}},
	}, nil
}

// inPresentment returns an amount of a refund transaction in the order's
// presentment currency: as it is, or, when it is in the shop's currency,
// in the proportion of the order's two totals.
func (o *shopifyOrder) inPresentment(field, currency string, v int64) (string, int64, error) {
	cur := o.PresentmentCurrency
	if cur == "" || currency == cur {
		return currency, v, nil
	}
	s := o.TotalPriceSet
	if currency != o.Currency || s == nil {
		return "", 0, &orderjson.Error{Field: field, Err: fmt.Errorf("in %s, the order in %s", currency, cur)}
	}
	shop, err := amountOf("total_price_set.shop_money.amount", s.ShopMoney.Amount, o.Currency)
	if err != nil {
		return "", 0, err
	}
	pres, err := amountOf("total_price_set.presentment_money.amount", s.PresentmentMoney.Amount, cur)
	if err != nil {
		return "", 0, err
	}
	if shop == 0 {
		return "", 0, &orderjson.Error{Field: field, Err: errors.New("a refund of an order of no value")}
	}
	return cur, scale(v, pres, shop), nil
}

// presentment returns the presentment amount of a set, which must be in
// currency; nil for a set not sent.
func presentment(field string, s *shopifySet, currency string) (*commonv1.Money, error) {
	if s == nil || (s.PresentmentMoney.Amount == "" && s.PresentmentMoney.CurrencyCode == "") {
		return nil, nil
	}
	if c := s.PresentmentMoney.CurrencyCode; c != currency {
		return nil, &orderjson.Error{Field: field + ".presentment_money.currency_code", Err: fmt.Errorf("%q, the order's presentment currency is %q", c, currency)}
	}
	return moneyOf(field+".presentment_money.amount", s.PresentmentMoney.Amount, currency)
}

func moneyOf(field, text, currency string) (*commonv1.Money, error) {
	v, err := amountOf(field, text, currency)
	if err != nil {
		return nil, err
	}
	return &commonv1.Money{MinorUnits: v, Currency: currency}, nil
}

// amountOf parses a decimal amount of currency exactly; Shopify writes
// some amounts with more zeros than the currency has decimals ("1500.00"
// yen), which is the same amount.
func amountOf(field, text, currency string) (int64, error) {
	if err := checkCurrency(field, currency); err != nil {
		return 0, err
	}
	v, err := money.Parse(text, currency)
	if err != nil {
		return 0, &orderjson.Error{Field: field, Err: err}
	}
	return v, nil
}

func checkCurrency(field, currency string) error {
	if currency == "" {
		return &orderjson.Error{Field: field, Err: errors.New("no currency")}
	}
	if _, err := money.Exponent(currency); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

// scale returns round(v × num / den) for non-negative amounts.
func scale(v, num, den int64) int64 {
	if den == 0 {
		return 0
	}
	r := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(v), big.NewInt(num)), big.NewInt(den))
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Lsh(m, 1).Cmp(r.Denom()) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	return q.Int64()
}

// shopifyTime reads an ISO 8601 time with offset; fallback is used when
// text is empty.
func shopifyTime(field, text, fallback string) (*timestamppb.Timestamp, error) {
	if text == "" {
		text = fallback
	}
	if text == "" {
		return nil, &orderjson.Error{Field: field, Err: errors.New("required")}
	}
	t, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return nil, &orderjson.Error{Field: field, Err: fmt.Errorf("%q: want an ISO 8601 time with offset", text)}
	}
	return timestamppb.New(t), nil
}

// shopifyChannel is the order's source_name as a channel: "web", "pos",
// "shopify_draft_order", or an app's id.
func shopifyChannel(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

func cloneOrder(o *ingestv1.Order) *ingestv1.Order { return proto.Clone(o).(*ingestv1.Order) }
