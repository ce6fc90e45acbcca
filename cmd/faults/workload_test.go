//go:build faults

package faults

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"
)

// A shop's event as it is published: its subject, body and the message id
// the shop publishes it under (a retry of the same publish reuses it, so
// JetStream drops the copy; a duplicate delivery from the shop's side gets
// another id and reaches order-ingest).
type shopMsg struct {
	Subject string
	Body    []byte
	MsgID   string
	// Order indexes the order the message belongs to.
	Order int
}

type refund struct {
	ID     string
	Amount int64 // minor units of the order's currency
}

// order is one order's whole history as the shop knows it.
type order struct {
	Source, ID, Email, Currency string
	Total                       int64 // minor units of Currency
	Placed, Paid, Cancelled     bool
	Refunds                     []refund
	Start                       time.Time
}

// usdRate is the FX table's one rate: a USD amount is worth half as much in
// EUR, exactly, because the workload uses even USD amounts only.
const usdRate = "0.5"

func (o *order) baseTotal() int64 {
	if o.Currency == "USD" {
		return o.Total / 2
	}
	return o.Total
}

func (o *order) baseRefunded() int64 {
	var r int64
	for _, x := range o.Refunds {
		if o.Currency == "USD" {
			r += x.Amount / 2
		} else {
			r += x.Amount
		}
	}
	return r
}

// workload is a seeded set of orders and the messages that carry them.
type workload struct {
	Orders []order
	Msgs   []shopMsg
	// Emails are the customers, each once.
	Emails []string
}

// newWorkload builds n orders from n/10 customers (at least 10) over two
// shops: most are simply paid; others are placed then paid, partly or
// fully refunded, cancelled after payment, or cancelled unpaid. A tenth of
// the orders have two of their events sent in the wrong order, and dupShare
// of all messages are sent twice.
func newWorkload(seed uint64, n int, dupShare float64) *workload {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	customers := max(n/10, 10)
	w := &workload{}
	for c := 0; c < customers; c++ {
		w.Emails = append(w.Emails, fmt.Sprintf("customer-%d@faults.example", c))
	}
	base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		o := order{
			Source:   []string{"shop-eu", "shop-us"}[rng.IntN(2)],
			ID:       fmt.Sprintf("f-%d", i),
			Email:    w.Emails[rng.IntN(customers)],
			Currency: "EUR",
			Total:    int64(1000 + 2*rng.IntN(25000)), // 10.00 to 509.98, even
			Start:    base.Add(time.Duration(i) * time.Minute),
		}
		if rng.IntN(5) == 0 {
			o.Currency = "USD"
		}
		switch r := rng.Float64(); {
		case r < 0.60:
			o.Paid = true
		case r < 0.70:
			o.Placed, o.Paid = true, true
		case r < 0.85:
			o.Paid = true
			left := o.Total
			for k := 0; k < 1+rng.IntN(2); k++ {
				a := 2 * (1 + rng.Int64N(left/4))
				if a >= left {
					break
				}
				o.Refunds = append(o.Refunds, refund{ID: fmt.Sprintf("r-%d-%d", i, k), Amount: a})
				left -= a
			}
		case r < 0.90:
			o.Paid = true
			o.Refunds = []refund{{ID: fmt.Sprintf("r-%d-full", i), Amount: o.Total}}
		case r < 0.95:
			o.Placed, o.Paid, o.Cancelled = true, true, true
		default:
			o.Placed, o.Cancelled = true, true
		}
		w.Orders = append(w.Orders, o)
	}

	// Each order's events in the shop's order, placed at a send position
	// near the order's index so that orders interleave; some orders swap two
	// neighbouring events.
	type pending struct {
		pos float64
		msg shopMsg
	}
	var all []pending
	for i := range w.Orders {
		o := &w.Orders[i]
		evs := orderMessages(o, i)
		if len(evs) > 1 && rng.IntN(10) == 0 {
			k := rng.IntN(len(evs) - 1)
			evs[k], evs[k+1] = evs[k+1], evs[k]
		}
		for k, m := range evs {
			all = append(all, pending{pos: float64(i) + float64(k)*(5+rng.Float64()*40), msg: m})
		}
	}
	dups := int(float64(len(all)) * dupShare)
	for d := 0; d < dups; d++ {
		src := all[rng.IntN(len(all))]
		m := src.msg
		m.MsgID = m.MsgID + "-dup"
		all = append(all, pending{pos: src.pos + 1 + rng.Float64()*200, msg: m})
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].pos < all[b].pos })
	for _, p := range all {
		w.Msgs = append(w.Msgs, p.msg)
	}
	return w
}

// orderMessages are an order's events as JSON in the shop's order.
func orderMessages(o *order, idx int) []shopMsg {
	subject := "boomerang.ingest.orders." + o.Source
	at := func(d time.Duration) string { return o.Start.Add(d).Format(time.RFC3339) }
	amount := func(minor int64) string { return fmt.Sprintf("%d.%02d", minor/100, minor%100) }
	head := func(kind string, d time.Duration) string {
		return fmt.Sprintf(`{"order_id":%q,"kind":%q,"occurred_at":%q,"currency":%q,"total":%q,"customer":{"email":%q}`,
			o.ID, kind, at(d), o.Currency, amount(o.Total), o.Email)
	}
	var bodies []string
	if o.Placed {
		bodies = append(bodies, head("placed", 0)+"}")
	}
	if o.Paid {
		bodies = append(bodies, head("paid", time.Minute)+"}")
	}
	for k, r := range o.Refunds {
		bodies = append(bodies, fmt.Sprintf(`{"order_id":%q,"kind":"refunded","occurred_at":%q,"refund":{"id":%q,"amount":%q,"currency":%q}}`,
			o.ID, at(time.Duration(k+1)*24*time.Hour), r.ID, amount(r.Amount), o.Currency))
	}
	if o.Cancelled {
		bodies = append(bodies, fmt.Sprintf(`{"order_id":%q,"kind":"cancelled","occurred_at":%q}`, o.ID, at(2*time.Hour)))
	}
	out := make([]shopMsg, len(bodies))
	for i, b := range bodies {
		sum := sha256.Sum256([]byte(subject + "\x00" + b))
		out[i] = shopMsg{Subject: subject, Body: []byte(b), MsgID: "shop-" + hex.EncodeToString(sum[:12]), Order: idx}
	}
	return out
}

// expected is what every service must show for one customer, computed from
// the orders as the shop sent them, by the rules services/*/README.md document.
type expected struct {
	// Points under the default programme: one point per whole EUR of a paid
	// order, less floor(points × refunded ÷ total) of its refunds; a
	// cancelled order keeps nothing.
	Points int64
	// Orders, NetValue (EUR minor units) and Refunds as segmentation
	// counts them: paid orders not cancelled, their value net of refunds,
	// and their refunds.
	Orders, NetValue, Refunds int64
	// AnyOrder is one order of the customer, to find its customer id.
	AnyOrder *order
}

func (w *workload) expect() map[string]*expected {
	out := map[string]*expected{}
	for i := range w.Orders {
		o := &w.Orders[i]
		e := out[o.Email]
		if e == nil {
			e = &expected{}
			out[o.Email] = e
		}
		if e.AnyOrder == nil || (o.Paid && !e.AnyOrder.Paid) {
			e.AnyOrder = o
		}
		if !o.Paid || o.Cancelled {
			continue
		}
		total, refunded := o.baseTotal(), o.baseRefunded()
		points := total / 100
		e.Points += points - points*refunded/total
		e.Orders++
		e.NetValue += total - refunded
		e.Refunds += int64(len(o.Refunds))
	}
	return out
}

// canonicalKeys are the (source, order, kind, refund) keys ORDERS must hold
// exactly once.
func (w *workload) canonicalKeys() map[string]bool {
	keys := map[string]bool{}
	for i := range w.Orders {
		o := &w.Orders[i]
		k := o.Source + "/" + o.ID + "/"
		if o.Placed {
			keys[k+"placed/"] = true
		}
		if o.Paid {
			keys[k+"paid/"] = true
		}
		for _, r := range o.Refunds {
			keys[k+"refunded/"+r.ID] = true
		}
		if o.Cancelled {
			keys[k+"cancelled/"] = true
		}
	}
	return keys
}
