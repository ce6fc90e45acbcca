// Package orderjson decodes the JSON order events shops publish — plain, or
// wrapped in a CloudEvents 1.0 envelope — into the ingest API's Order
// message. Amounts are decimal text (or JSON numbers) in the currency's
// major unit and are converted to minor units exactly.
package orderjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
)

// Error is a decoding failure: Field names the offending field ("" for the
// document as a whole).
type Error struct {
	Field string
	Err   error
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrSyntax marks a document that is not a JSON object of the order shape.
var ErrSyntax = errors.New("malformed JSON order")

// decimal keeps an amount's text: "19.99" or 19.99 both arrive as "19.99".
type decimal struct {
	text string
	set  bool
}

func (d *decimal) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		d.text, d.set = s, true
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a decimal string or number")
	}
	d.text, d.set = n.String(), true
	return nil
}

type document struct {
	Source     string     `json:"source"`
	OrderID    flexString `json:"order_id"`
	Kind       string     `json:"kind"`
	OccurredAt string     `json:"occurred_at"`
	Currency   string     `json:"currency"`
	Total      decimal    `json:"total"`
	Shipping   decimal    `json:"shipping"`
	Tax        decimal    `json:"tax"`
	Discount   *discount  `json:"discount"`
	Channel    string     `json:"channel"`
	Customer   *customer  `json:"customer"`
	Items      []item     `json:"items"`
	Refund     *refund    `json:"refund"`
	Test       bool       `json:"test"`
	Settled    *settled   `json:"settled"`
}

// settled is what the seller received when the platform converted the
// customer's money: {"currency": "EUR", "total": "92.00"}.
type settled struct {
	Currency string  `json:"currency"`
	Total    decimal `json:"total"`
}

// flexString accepts an id sent as a string or a number.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or number")
	}
	*f = flexString(n.String())
	return nil
}

type discount struct {
	Codes  []string `json:"codes"`
	Amount decimal  `json:"amount"`
}

type customer struct {
	ID               flexString `json:"id"`
	Email            string     `json:"email"`
	Birthday         string     `json:"birthday"`
	MarketingConsent *bool      `json:"marketing_consent"`
	ReferralCode     string     `json:"referral_code"`
	Country          string     `json:"country"`
}

type item struct {
	SKU      flexString `json:"sku"`
	Category string     `json:"category"`
	Quantity int64      `json:"quantity"`
	Price    decimal    `json:"price"`
	GiftCard bool       `json:"gift_card"`
}

type refund struct {
	ID       flexString `json:"id"`
	Amount   decimal    `json:"amount"`
	Currency string     `json:"currency"`
}

type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// Decode reads one order. CloudEvents envelopes are recognised by their
// specversion attribute; the event kind then defaults to the last
// dot-separated word of the type ("com.shop.order.paid" is paid), and the
// time of the order to the event's time.
func Decode(data []byte) (*ingestv1.Order, error) {
	if plainObject(data) {
		return decodeOrder(data, "", "")
	}
	return decodeProbed(data)
}

// plainObject reports whether data is surely not a CloudEvents envelope —
// a JSON object with no key that could be "specversion" — so that it can
// be decoded once instead of probed first. encoding/json matches keys in
// any case, Unicode folding included ("ſ" is an "s"), and reads escapes:
// the test looks for "pecver" in any case and gives up at any backslash.
// What it cannot rule out is probed, with the same outcome either way.
func plainObject(data []byte) bool {
	i := 0
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	if i == len(data) || data[i] != '{' {
		return false
	}
	const key = "pecver"
	for ; i+len(key) <= len(data); i++ {
		switch c := data[i]; {
		case c == '\\':
			return false
		case c|0x20 == 'p' && asciiFoldEqual(data[i:i+len(key)], key):
			return false
		}
	}
	for ; i < len(data); i++ {
		if data[i] == '\\' {
			return false
		}
	}
	return true
}

// asciiFoldEqual reports whether b is lower, a lower-case ASCII word, in
// any case.
func asciiFoldEqual(b []byte, lower string) bool {
	for j := range len(lower) {
		if b[j]|0x20 != lower[j] {
			return false
		}
	}
	return true
}

// decodeProbed reads one order after probing for a CloudEvents envelope.
func decodeProbed(data []byte) (*ingestv1.Order, error) {
	var probe struct {
		SpecVersion *string `json:"specversion"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, &Error{Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	if probe.SpecVersion == nil {
		return decodeOrder(data, "", "")
	}
	var ce cloudEvent
	if err := json.Unmarshal(data, &ce); err != nil {
		return nil, &Error{Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	if !strings.HasPrefix(ce.SpecVersion, "1.") {
		return nil, &Error{Field: "specversion", Err: fmt.Errorf("%w: CloudEvents %q is not supported, want 1.0", ErrSyntax, ce.SpecVersion)}
	}
	if ct := ce.DataContentType; ct != "" && !strings.Contains(ct, "json") {
		return nil, &Error{Field: "datacontenttype", Err: fmt.Errorf("%w: want JSON data, got %q", ErrSyntax, ct)}
	}
	if len(bytes.TrimSpace(ce.Data)) == 0 {
		return nil, &Error{Field: "data", Err: fmt.Errorf("%w: CloudEvent without data", ErrSyntax)}
	}
	kind := ""
	if i := strings.LastIndexByte(ce.Type, '.'); i >= 0 {
		kind = ce.Type[i+1:]
	}
	return decodeOrder(ce.Data, kind, ce.Time)
}

func decodeOrder(data []byte, defaultKind, defaultTime string) (*ingestv1.Order, error) {
	var d document
	if err := json.Unmarshal(data, &d); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, &Error{Field: te.Field, Err: fmt.Errorf("%w: want %s, got %s", ErrSyntax, te.Type, te.Value)}
		}
		return nil, &Error{Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	o := &ingestv1.Order{
		Source:  d.Source,
		OrderId: string(d.OrderID),
		Channel: d.Channel,
		Test:    d.Test,
	}

	kind := d.Kind
	if kind == "" {
		kind = defaultKind
	}
	if kind == "" {
		kind = "paid"
	}
	k, ok := ingest.ParseKind(kind)
	if !ok {
		return nil, &Error{Field: "kind", Err: fmt.Errorf("%q: want placed, paid, refunded or cancelled", kind)}
	}
	o.Kind = k

	at := d.OccurredAt
	if at == "" {
		at = defaultTime
	}
	if at != "" {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return nil, &Error{Field: "occurred_at", Err: errors.New("want an RFC 3339 time such as 2026-11-01T10:00:00Z")}
		}
		o.OccurredAt = timestamppb.New(t)
	}

	// Currency and country codes are taken as sent: upper case, as the
	// protobuf and gRPC inputs must send them too, so that every input
	// applies the same rules.
	cur := d.Currency
	if cur == "" && d.Refund != nil {
		cur = d.Refund.Currency
	}
	var err error
	if o.Total, err = amount("total", d.Total, cur); err != nil {
		return nil, err
	}
	if o.Shipping, err = amount("shipping", d.Shipping, cur); err != nil {
		return nil, err
	}
	if o.Tax, err = amount("tax", d.Tax, cur); err != nil {
		return nil, err
	}
	if d.Discount != nil {
		o.Discount = &ingestv1.DiscountInput{Codes: d.Discount.Codes}
		if o.Discount.Amount, err = amount("discount.amount", d.Discount.Amount, cur); err != nil {
			return nil, err
		}
	}
	if c := d.Customer; c != nil {
		o.Customer = &ingestv1.CustomerInput{
			PlatformCustomerId: string(c.ID),
			Email:              c.Email,
			MarketingConsent:   c.MarketingConsent,
			ReferralCode:       c.ReferralCode,
			Country:            c.Country,
		}
		if c.Birthday != "" {
			b, err := birthday(c.Birthday)
			if err != nil {
				return nil, &Error{Field: "customer.birthday", Err: err}
			}
			o.Customer.Birthday = b
		}
	}
	for i, it := range d.Items {
		li := &ingestv1.LineItemInput{Sku: string(it.SKU), Category: it.Category, Quantity: it.Quantity, GiftCard: it.GiftCard}
		if li.UnitPrice, err = amount(fmt.Sprintf("items[%d].price", i), it.Price, cur); err != nil {
			return nil, err
		}
		o.Items = append(o.Items, li)
	}
	if st := d.Settled; st != nil {
		if o.SettledTotal, err = amount("settled.total", st.Total, st.Currency); err != nil {
			if e := (*Error)(nil); errors.As(err, &e) && e.Field == "currency" {
				e.Field = "settled.currency"
			}
			return nil, err
		}
	}
	if r := d.Refund; r != nil {
		rc := cur
		if rcur := r.Currency; rcur != "" {
			rc = rcur
		}
		o.Refund = &ingestv1.RefundInput{RefundId: string(r.ID)}
		if o.Refund.Amount, err = amount("refund.amount", r.Amount, rc); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func amount(field string, d decimal, currency string) (*commonv1.Money, error) {
	if !d.set {
		return nil, nil
	}
	if currency == "" {
		return nil, &Error{Field: "currency", Err: errors.New("required when amounts are given")}
	}
	if !currencyCode(currency) {
		return nil, &Error{Field: "currency", Err: fmt.Errorf("%q: want three upper-case letters (ISO 4217)", currency)}
	}
	v, err := money.Parse(d.text, currency)
	if err != nil {
		if errors.Is(err, money.ErrUnknownCurrency) {
			return nil, &Error{Field: "currency", Err: err}
		}
		return nil, &Error{Field: field, Err: err}
	}
	return &commonv1.Money{MinorUnits: v, Currency: currency}, nil
}

func currencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// birthday reads YYYY-MM-DD, or --MM-DD when the year is unknown.
func birthday(s string) (*commonv1.Birthday, error) {
	bad := errors.New("want YYYY-MM-DD or --MM-DD")
	s = strings.TrimSpace(s)
	year := 0
	if rest, ok := strings.CutPrefix(s, "--"); ok {
		s = "2000-" + rest // a leap year, so --02-29 is accepted
	} else if len(s) >= 4 {
		y, err := strconv.Atoi(s[:4])
		if err != nil {
			return nil, bad
		}
		year = y
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return nil, bad
	}
	return &commonv1.Birthday{Year: int32(year), Month: int32(t.Month()), Day: int32(t.Day())}, nil
}
