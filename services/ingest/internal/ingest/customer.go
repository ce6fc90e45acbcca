package ingest

import (
	"errors"
	"strings"
	"time"
)

// ErrCustomerNotFound is returned for a customer id or identity key that
// names no customer.
var ErrCustomerNotFound = errors.New("customer not found")

// KeyKind is what an identity key was made from.
type KeyKind int

// The kinds of identity key.
const (
	KeyUnknown KeyKind = iota
	KeyEmail
	KeyPlatform
)

// KindOf reads the kind of a stored identity key from its prefix.
func KindOf(key string) KeyKind {
	switch {
	case strings.HasPrefix(key, "e:"):
		return KeyEmail
	case strings.HasPrefix(key, "p:"):
		return KeyPlatform
	}
	return KeyUnknown
}

// CustomerKey is one identity key linked to a customer. Hash is the keyed
// hash, for matching a key the caller named; it is never shown.
type CustomerKey struct {
	Hash        string
	Kind        KeyKind
	FirstSeenAt time.Time
}

// CustomerOrder is one of a customer's orders with the times its shop
// gave for placing and paying it (zero: no such event).
type CustomerOrder struct {
	Order
	PlacedAt time.Time
	PaidAt   time.Time
}

// Customer is what order-ingest holds on one customer: the identity keys
// that lead to them, their most recent orders and how many they have.
type Customer struct {
	ID         string
	Keys       []CustomerKey
	Orders     []CustomerOrder
	OrderCount int64
}
