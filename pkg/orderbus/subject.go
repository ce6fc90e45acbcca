package orderbus

import (
	"fmt"
	"strings"

	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// KindToken is the subject token of an event kind ("" for a kind this
// version does not know).
func KindToken(k ordersv1.OrderEventKind) string {
	switch k {
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED:
		return "placed"
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID:
		return "paid"
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED:
		return "refunded"
	case ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED:
		return "cancelled"
	}
	return ""
}

// checkSubject tells whether a canonical event was published where its
// payload says it belongs. A consumer applies the payload, but the bus's
// permissions, its ordering (one customer's events in stream order) and
// the erasure of a customer's events all go by the subject: an event whose
// subject names another customer or kind than its payload would credit one
// customer from a subject that belongs to another, so it is refused.
func checkSubject(subject string, ev *ordersv1.OrderEvent) error {
	rest, ok := strings.CutPrefix(subject, Prefix)
	kind, customer, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return fmt.Errorf("%w: subject %q is not %s<kind>.<customer_id>", ErrSubjectMismatch, subject, Prefix)
	}
	if customer != ev.GetCustomerId() {
		return fmt.Errorf("%w: subject names customer %q, payload %q", ErrSubjectMismatch, customer, ev.GetCustomerId())
	}
	if want := KindToken(ev.GetKind()); kind != want {
		return fmt.Errorf("%w: subject names kind %q, payload %s", ErrSubjectMismatch, kind, ev.GetKind())
	}
	return nil
}
