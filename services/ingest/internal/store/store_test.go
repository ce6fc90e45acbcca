package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/fx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// backends runs the contract suite against every store implementation.
var backends = testkit.Databases("ingest.db")

func openStore(tb testing.TB, url string) *store.Store {
	tb.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	st, err := store.Open(ctx, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func preparer(tb testing.TB) *ingest.Preparer {
	tb.Helper()
	rates, err := fx.Load("EUR", strings.NewReader("date,currency,rate\n2026-01-01,USD,0.9\n"))
	if err != nil {
		tb.Fatal(err)
	}
	h, err := ingest.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		tb.Fatal(err)
	}
	return ingest.NewPreparer(rates, h)
}

func paid(source, id, customer, email string, total int64) *ingestv1.Order {
	return &ingestv1.Order{
		Source: source, OrderId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
		OccurredAt: timestamppb.New(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)),
		Total:      &commonv1.Money{MinorUnits: total, Currency: "USD"},
		Customer:   &ingestv1.CustomerInput{PlatformCustomerId: customer, Email: email},
	}
}

func refund(source, id, refundID string, amount int64) *ingestv1.Order {
	return &ingestv1.Order{
		Source: source, OrderId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED,
		OccurredAt: timestamppb.New(time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)),
		Refund:     &ingestv1.RefundInput{RefundId: refundID, Amount: &commonv1.Money{MinorUnits: amount, Currency: "USD"}},
	}
}

// apply applies orders in one UpdateOrders transaction with the rules
// of ingest.Batch, as the IngestOrders use case does, writing an outbox
// message for each accepted event.
func apply(tb testing.TB, st *store.Store, p *ingest.Preparer, orders ...*ingestv1.Order) []ingest.Result {
	tb.Helper()
	prepared := make([]*ingest.Prepared, len(orders))
	for i, o := range orders {
		prep, err := p.Prepare(o, time.Now())
		if err != nil {
			tb.Fatal(err)
		}
		prepared[i] = prep
	}
	res, err := applyPrepared(st, prepared, func(r ingest.Result) []outbox.Message {
		if r.Outcome != ingest.Accepted {
			return nil
		}
		return []outbox.Message{{ID: r.EventID, Subject: "boomerang.orders.v1.x." + r.CustomerID, Data: []byte(r.EventID)}}
	})
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// applyPrepared applies prepared events in one transaction; msgs, if
// set, gives the outbox messages of each result.
func applyPrepared(st *store.Store, prepared []*ingest.Prepared, msgs func(ingest.Result) []outbox.Message) ([]ingest.Result, error) {
	res := make([]ingest.Result, len(prepared))
	keys, ids := ingest.Keys(prepared)
	err := st.UpdateOrders(context.Background(), keys, ids, func(b *ingest.Batch) ([]outbox.Message, error) {
		var out []outbox.Message
		for i, p := range prepared {
			r, err := b.Apply(p, "EUR")
			if err != nil {
				return nil, err
			}
			res[i] = r
			if msgs != nil {
				out = append(out, msgs(r)...)
			}
		}
		return out, nil
	})
	return res, err
}

func count(tb testing.TB, db *sql.DB, query string, args ...any) int {
	tb.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestStore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Run("exactly once within and across batches", func(t *testing.T) {
				st, p := openStore(t, b.URL(t)), preparer(t)
				res := apply(t, st, p, paid("s", "1", "c1", "", 1000), paid("s", "1", "c1", "", 1000), refund("s", "1", "r1", 100))
				want := []ingest.Outcome{ingest.Accepted, ingest.Duplicate, ingest.Accepted}
				for i, r := range res {
					if r.Outcome != want[i] {
						t.Fatalf("result %d = %v, want %v", i, r.Outcome, want[i])
					}
				}
				res = apply(t, st, p, refund("s", "1", "r1", 100), paid("s", "1", "c1", "", 1000))
				if res[0].Outcome != ingest.Duplicate || res[1].Outcome != ingest.Duplicate {
					t.Fatalf("replay: %+v", res)
				}
				if n := count(t, st.DB().R, "SELECT COUNT(*) FROM order_events"); n != 2 {
					t.Fatalf("%d events, want 2", n)
				}
				if n := count(t, st.DB().R, "SELECT COUNT(*) FROM outbox"); n != 2 {
					t.Fatalf("%d outbox messages, want 2", n)
				}
			})
			t.Run("one customer across shops by e-mail", func(t *testing.T) {
				st, p := openStore(t, b.URL(t)), preparer(t)
				res := apply(t, st, p,
					paid("shop-a", "1", "a-7", "ann@example.com", 100),
					paid("shop-b", "1", "", " ANN@example.com", 100),
					paid("shop-b", "2", "b-9", "ann@example.com", 100),
					paid("shop-a", "2", "a-8", "bob@example.com", 100))
				if res[0].CustomerID != res[1].CustomerID || res[0].CustomerID != res[2].CustomerID {
					t.Fatalf("same e-mail, different customers: %s %s %s", res[0].CustomerID, res[1].CustomerID, res[2].CustomerID)
				}
				if res[3].CustomerID == res[0].CustomerID {
					t.Fatal("different people share a customer")
				}
				// The platform id linked on shop-b now finds the customer
				// without an e-mail.
				if r := apply(t, st, p, paid("shop-b", "3", "b-9", "", 100))[0]; r.CustomerID != res[0].CustomerID {
					t.Fatalf("platform id b-9 resolved to %s, want %s", r.CustomerID, res[0].CustomerID)
				}
				var clear int
				if err := st.DB().R.QueryRow("SELECT COUNT(*) FROM identity_keys WHERE key_hash LIKE '%ann%'").Scan(&clear); err != nil || clear != 0 {
					t.Fatalf("identity keys in clear text: %d, %v", clear, err)
				}
			})
			t.Run("rejection writes nothing", func(t *testing.T) {
				st, p := openStore(t, b.URL(t)), preparer(t)
				res := apply(t, st, p, paid("s", "1", "c1", "", 1000), refund("s", "1", "r1", 1001), refund("s", "2", "r1", 1))
				if res[1].Outcome != ingest.Rejected || res[1].Rejection.Reason != ingest.ReasonRefundExceeds {
					t.Fatalf("over-refund: %+v", res[1])
				}
				if res[2].Outcome != ingest.Rejected || res[2].Rejection.Reason != ingest.ReasonUnknownOrder {
					t.Fatalf("refund of unknown order: %+v", res[2])
				}
				// The rejected key is free: a corrected refund is accepted.
				if r := apply(t, st, p, refund("s", "1", "r1", 1000))[0]; r.Outcome != ingest.Accepted {
					t.Fatalf("corrected refund: %+v", r)
				}
				order, history, err := st.GetOrder(context.Background(), "s", "1")
				if err != nil {
					t.Fatal(err)
				}
				if order.Status != ingestv1.OrderStatus_ORDER_STATUS_REFUNDED || len(history) != 2 || history[1].GetOrderSequence() != 2 {
					t.Fatalf("order %+v, %d events", order, len(history))
				}
			})
		})
	}
}

// TestConcurrentSubmitters races several stores on one PostgreSQL
// database, as replicas would: every key yields one event, and concurrent
// refunds never exceed their order.
func TestConcurrentSubmitters(t *testing.T) {
	url := testkit.Postgres(t)
	p := preparer(t)
	setup := openStore(t, url)
	apply(t, setup, p, paid("s", "big", "c0", "", 10000))

	const workers = 4
	var wg sync.WaitGroup
	results := make([][]ingest.Result, workers)
	for w := 0; w < workers; w++ {
		st := openStore(t, url)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var orders []*ingestv1.Order
			for i := 0; i < 40; i++ {
				// Same orders and e-mails from every worker, and refunds
				// that together exceed the order.
				orders = append(orders, paid("s", fmt.Sprint(i), "", fmt.Sprintf("p%d@example.com", i%7), 100))
				orders = append(orders, refund("s", "big", fmt.Sprintf("w%d-r%d", w, i), 100))
			}
			results[w] = apply(t, st, p, orders...)
		}()
	}
	wg.Wait()
	refunds := 0
	for _, rs := range results {
		for _, r := range rs {
			if r.Outcome == ingest.Accepted && strings.Contains(fmt.Sprint(r.Event.GetRefund().GetRefundId()), "-r") {
				refunds++
			}
		}
	}
	db := setup.DB().R
	if n := count(t, db, "SELECT COUNT(*) FROM order_events WHERE kind = $1", int(ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID)); n != 41 {
		t.Fatalf("%d paid events, want 41", n)
	}
	if refunds != 100 || count(t, db, "SELECT COUNT(*) FROM order_events WHERE kind = $1", int(ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED)) != 100 {
		t.Fatalf("%d refunds accepted, want exactly 100 (the order's 100.00 in 1.00 refunds)", refunds)
	}
	if n := count(t, db, "SELECT COUNT(DISTINCT customer_id) FROM orders WHERE order_id <> 'big'"); n != 7 {
		t.Fatalf("%d customers for 7 e-mails", n)
	}
	if n := count(t, db, "SELECT refunded FROM orders WHERE order_id = 'big'"); n != 10000 {
		t.Fatalf("refunded %d, want 10000", n)
	}
}

// BenchmarkApply measures a consumer batch of 256 new paid orders from
// returning customers, applied in one transaction.
func BenchmarkApply(b *testing.B) {
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			st, p := openStore(b, be.URL(b)), preparer(b)
			const batch = 256
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				orders := make([]*ingestv1.Order, batch)
				for i := range orders {
					orders[i] = paid("bench", fmt.Sprint(n), fmt.Sprint(n%5000), fmt.Sprintf("c%d@example.com", n%5000), 12990)
					n++
				}
				apply(b, st, p, orders...)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "orders/s")
		})
	}
}

// BenchmarkGetOrder measures the read of an order with its history.
func BenchmarkGetOrder(b *testing.B) {
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			st, p := openStore(b, be.URL(b)), preparer(b)
			apply(b, st, p, paid("s", "1", "c", "", 1000), refund("s", "1", "r1", 10), refund("s", "1", "r2", 10))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := st.GetOrder(ctx, "s", "1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
