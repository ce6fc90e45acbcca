// Package webhook holds what differs between the shop platforms whose
// webhooks order-ingest accepts: how a delivery is authenticated and
// identified (for the HTTP intake, before anything is captured) and how a
// captured delivery becomes canonical orders (for the bus consumer, with
// the same validation and dead letters as every other input). One file
// per platform: generic (the canonical order JSON, signed by the sender),
// shopify and woocommerce.
package webhook

import (
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
)

// Errors a platform's Verify returns; the HTTP intake maps them to
// statuses.
var (
	// ErrSignature: the signature is missing, malformed, wrong or out of
	// the replay window (401).
	ErrSignature = errors.New("bad signature")
	// ErrDeliveryID: the delivery carries no usable id (400).
	ErrDeliveryID = errors.New("missing or invalid delivery id")
)

// HeaderPlatform names, on a captured delivery, the platform whose
// format its body is in; the bus consumer maps it with that platform's
// Map. A message without it is a canonical order.
const HeaderPlatform = "Boomerang-Webhook"

// HeaderReceivedAt is the time (RFC 3339, UTC) the intake received a
// platform's delivery, kept on the captured message for a Map that needs
// a time the body does not give (WooCommerce's order.deleted carries
// nothing but the order's id).
const HeaderReceivedAt = "Boomerang-Received-At"

// Platform is one shop platform's webhook format.
type Platform struct {
	// Name is the platform's name in the path (/webhooks/<name>/<source>),
	// in INGEST_WEBHOOK_SOURCES, in HeaderPlatform and in the captured
	// message's Nats-Msg-Id.
	Name string
	// Verify authenticates a delivery of body with the source's secret
	// and returns its delivery id, by which retries are deduplicated; it
	// returns ErrSignature or ErrDeliveryID (wrapped) when it refuses it.
	Verify func(h http.Header, body, secret []byte, now time.Time, tolerance time.Duration) (string, error)
	// Ping, when set, recognises a request that only tests the endpoint
	// (WooCommerce sends one, unsigned, when a webhook is saved): it is
	// answered 200 and captures nothing.
	Ping func(h http.Header, body []byte) bool
	// Header, when set, returns the request headers kept on the captured
	// message besides Content-Type and the trace context (the topic, for
	// one): what Map needs besides the body.
	Header func(h http.Header) http.Header
	// Map turns a captured delivery into the orders it tells of, in the
	// order they happened (placed before paid before refunds before the
	// cancellation); none for a delivery that carries no order event (a
	// privacy request, a topic without loyalty value). Its errors are
	// *orderjson.Error (wrapping orderjson.ErrSyntax when the body is not
	// of the platform's shape) or money.ErrUnknownCurrency. The orders'
	// Source is left empty: it is the capturing subject's. Nil means the
	// body is a canonical order.
	Map func(h nats.Header, body []byte) ([]*ingestv1.Order, error)
}

// Lookup returns the platform named name.
func Lookup(name string) (Platform, bool) {
	for _, p := range Platforms() {
		if p.Name == name {
			return p, true
		}
	}
	return Platform{}, false
}

// Platforms returns every platform, by name.
func Platforms() []Platform {
	return []Platform{Generic, Shopify, WooCommerce}
}

// Names returns the platforms' names, for messages that list them.
func Names() []string {
	var out []string
	for _, p := range Platforms() {
		out = append(out, p.Name)
	}
	return out
}
