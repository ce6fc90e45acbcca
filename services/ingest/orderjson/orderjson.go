// Package orderjson is order-ingest's JSON order format (plain or in a
// CloudEvents 1.0 envelope, amounts as decimal text) for programs outside
// the service: boomctl's import of JSON Lines reads every line with it, so
// the file format and the bus's JSON are one definition. The decoding
// itself is order-ingest's own (internal/orderjson); this package only
// exposes it.
package orderjson

import (
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"

	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/orderjson"
)

// Error is a decoding failure; Field names the offending field ("" for the
// document as a whole).
type Error = orderjson.Error

// ErrSyntax marks a document that is not a JSON object of the order shape.
var ErrSyntax = orderjson.ErrSyntax

// Decode reads one order as order-ingest reads it from the bus: the event
// kind defaults to paid, a CloudEvents envelope lends its type and time.
func Decode(data []byte) (*ingestv1.Order, error) { return orderjson.Decode(data) }
