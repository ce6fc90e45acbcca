// Package ingest is the order-ingest domain: it turns an order event as a
// shop sent it into a canonical order event — identity resolved to a
// unified customer, money converted to the base currency, the order's
// history checked — and decides what a new event does to its order.
// It knows nothing of gRPC, NATS or SQL, and reads no clock: the time of
// ingestion is given.
package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/boomerang-loyalty/boomerang/pkg/fx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderevent"
)

// Reasons name why an order was not accepted. They are stable: shops and
// operators match on them (gRPC results, dead-letter headers).
const (
	ReasonMalformed      = "malformed"                      // not decodable JSON or protobuf
	ReasonTooLarge       = "too_large"                      // over the payload limit
	ReasonInvalid        = orderevent.ReasonInvalid         // broke a field rule, or an amount out of range in base currency
	ReasonBadSubject     = "bad_subject"                    // subject does not name a source
	ReasonSourceMismatch = "source_mismatch"                // body names another source than the subject
	ReasonUnknownCurr    = orderevent.ReasonUnknownCurrency // not an ISO 4217 currency
	ReasonNoRate         = orderevent.ReasonNoRate          // no rate on or before the order's date
	ReasonUnknownOrder   = "unknown_order"                  // refund or cancellation of an order never ingested
	ReasonNotPaid        = "order_not_paid"                 // refund of an order that was not paid
	ReasonRefundExceeds  = "refund_exceeds_remaining"
	ReasonCurrency       = "currency_mismatch" // refund in another currency than its order
	ReasonFailed         = "processing_failed" // failed again and again; see the error header
)

// Rejection is a valid order event that cannot be accepted. It is
// orderevent's, so that the rejections of the money checks come out as
// they are.
type Rejection = orderevent.Rejection

func reject(reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsRejection returns the rejection inside err, if any.
func AsRejection(err error) (*Rejection, bool) {
	var r *Rejection
	ok := errors.As(err, &r)
	return r, ok
}

// Violation is one broken field rule: the field's path
// ("items[2].sku") and what is wrong with it.
type Violation struct {
	Field       string
	Description string
}

// CheckText applies the text rules every input path shares (JSON and
// protobuf on the bus, gRPC) to each text field of an order that is stored
// or published: valid UTF-8, no control characters (NUL included: it
// cannot be stored in PostgreSQL text, and the other services store these
// fields too), and no U+FFFD, which is what bytes that were not UTF-8 turn
// into when JSON is decoded. The .proto rules (lengths, patterns) apply
// besides. An empty result means the text is acceptable.
func CheckText(o *ingestv1.Order) []Violation {
	var out []Violation
	check := func(field, s string) {
		if v, ok := CheckString(field, s); !ok {
			out = append(out, v)
		}
	}
	check("source", o.GetSource())
	check("order_id", o.GetOrderId())
	check("channel", o.GetChannel())
	if c := o.GetCustomer(); c != nil {
		check("customer.platform_customer_id", c.GetPlatformCustomerId())
		check("customer.email", c.GetEmail())
		check("customer.referral_code", c.GetReferralCode())
		check("customer.country", c.GetCountry())
	}
	for i, code := range o.GetDiscount().GetCodes() {
		check("discount.codes["+strconv.Itoa(i)+"]", code)
	}
	for i, it := range o.GetItems() {
		check("items["+strconv.Itoa(i)+"].sku", it.GetSku())
		check("items["+strconv.Itoa(i)+"].category", it.GetCategory())
	}
	if r := o.GetRefund(); r != nil {
		check("refund.refund_id", r.GetRefundId())
	}
	for _, m := range []struct {
		field string
		m     *commonv1.Money
	}{{"total", o.GetTotal()}, {"shipping", o.GetShipping()}, {"tax", o.GetTax()}, {"discount.amount", o.GetDiscount().GetAmount()}, {"refund.amount", o.GetRefund().GetAmount()}} {
		if m.m != nil {
			check(m.field+".currency", m.m.GetCurrency())
		}
	}
	return out
}

// CheckString applies the text rules of CheckText to one field.
func CheckString(field, s string) (Violation, bool) {
	if !utf8.ValidString(s) {
		return Violation{Field: field, Description: "must be valid UTF-8"}, false
	}
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			return Violation{Field: field, Description: fmt.Sprintf("contains U+FFFD at byte %d: bytes that were not UTF-8 are not accepted", i)}, false
		case unicode.IsControl(r):
			return Violation{Field: field, Description: fmt.Sprintf("contains the control character %U at byte %d", r, i)}, false
		}
	}
	return Violation{}, true
}

// Key identifies one canonical event: the same key never yields a second.
type Key struct {
	Source   string
	OrderID  string
	Kind     ordersv1.OrderEventKind
	RefundID string
}

// EventID derives the canonical event id from its key, so every replica and
// every redelivery computes the same id.
func (k Key) EventID() string {
	h := sha256.New()
	for _, part := range []string{k.Source, k.OrderID, k.Kind.String(), k.RefundID} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "evt_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// ParseKind reads "placed", "paid", "refunded" or "cancelled".
func ParseKind(s string) (ordersv1.OrderEventKind, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "placed", "created":
		return ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED, true
	case "paid":
		return ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, true
	case "refunded", "refund":
		return ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, true
	case "cancelled", "canceled", "cancel":
		return ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED, true
	}
	return 0, false
}

// Hasher turns identity keys into keyed hashes (HMAC-SHA-256 with the
// server's secret): equal keys match, and the clear text is never stored.
type Hasher struct {
	secret []byte
}

// NewHasher returns a hasher; the secret must be at least 32 bytes.
func NewHasher(secret []byte) (*Hasher, error) {
	if len(secret) < 32 {
		return nil, errors.New("identity secret must be at least 32 bytes")
	}
	return &Hasher{secret: append([]byte(nil), secret...)}, nil
}

func (h *Hasher) sum(parts ...string) []byte {
	m := hmac.New(sha256.New, h.secret)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// PlatformKey is the identity key of a customer id on a source platform.
func (h *Hasher) PlatformKey(source, platformCustomerID string) string {
	return "p:" + hex.EncodeToString(h.sum("platform", source, platformCustomerID))
}

// EmailKey is the identity key of a normalised e-mail address.
func (h *Hasher) EmailKey(email string) string {
	return "e:" + hex.EncodeToString(h.sum("email", NormaliseEmail(email)))
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// CustomerID derives a new unified customer id from the identity key that
// created the customer, so concurrent creators agree on it.
func (h *Hasher) CustomerID(firstKey string) string {
	return "cus_" + idEncoding.EncodeToString(h.sum("customer", firstKey)[:15])
}

// NormaliseEmail trims and lower-cases an address.
func NormaliseEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// Prepared is an order event checked, converted and hashed, ready to be
// applied to its order.
type Prepared struct {
	Key     Key
	EventID string
	// IdentityKeys are the hashed keys, most specific first (platform id,
	// then e-mail); empty for refunds and cancellations.
	IdentityKeys []string
	// NewCustomerID is the id the customer gets if no key is known yet.
	NewCustomerID string
	Guest         bool
	// Event is the canonical event without the fields only the order's
	// history can fill (customer id, sequence, refund totals).
	Event *ordersv1.OrderEvent
	// Currency and amounts in minor units, for the order's bookkeeping.
	Currency     string
	Total        int64
	BaseTotal    int64
	RefundAmount int64
	IngestedAt   time.Time
}

// Preparer prepares orders with an FX table and an identity hasher.
type Preparer struct {
	rates  *fx.Table
	hasher *Hasher
}

// NewPreparer returns a preparer.
func NewPreparer(rates *fx.Table, hasher *Hasher) *Preparer {
	return &Preparer{rates: rates, hasher: hasher}
}

// BaseCurrency is the seller's base currency.
func (p *Preparer) BaseCurrency() string { return p.rates.Base() }

// Prepare turns an order that passed its field rules into a Prepared
// event, or a Rejection. The source must already be settled; now is when
// the order is ingested.
func (p *Preparer) Prepare(o *ingestv1.Order, now time.Time) (*Prepared, error) {
	kind := o.GetKind()
	key := Key{Source: o.GetSource(), OrderID: o.GetOrderId(), Kind: kind, RefundID: o.GetRefund().GetRefundId()}
	now = now.UTC()
	out := &Prepared{Key: key, EventID: key.EventID(), IngestedAt: now}

	ev, err := orderevent.Build(p.rates, o)
	if err != nil {
		return nil, err
	}
	ev.EventId, ev.IngestedAt = out.EventID, timestamppb.New(now)
	if ev.Total != nil {
		out.Currency, out.Total, out.BaseTotal = ev.Total.Currency, ev.Total.MinorUnits, ev.BaseTotal.MinorUnits
	} else {
		out.Currency = orderevent.Currency(o)
	}
	out.RefundAmount = o.GetRefund().GetAmount().GetMinorUnits()

	if ev.Customer != nil {
		c := o.GetCustomer()
		out.Guest = ev.Customer.Guest
		if !out.Guest {
			out.IdentityKeys = append(out.IdentityKeys, p.hasher.PlatformKey(key.Source, strings.TrimSpace(c.GetPlatformCustomerId())))
		}
		if e := NormaliseEmail(c.GetEmail()); e != "" {
			out.IdentityKeys = append(out.IdentityKeys, p.hasher.EmailKey(e))
		}
		if len(out.IdentityKeys) > 0 {
			out.NewCustomerID = p.hasher.CustomerID(out.IdentityKeys[0])
		}
	}
	out.Event = ev
	return out, nil
}
