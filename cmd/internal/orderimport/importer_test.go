package orderimport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

// fakeIngest answers SubmitOrders with order-ingest's rules that matter
// to an importer: one result per order in request order, duplicates by
// (source, order, kind, refund), a refund or cancellation of an order it
// has not seen rejected as unknown_order, and a request with a broken
// field rule (here: the e-mail "bad") refused whole with field
// violations. It stands in for the service to test the importer's
// batching, ordering, retries and splitting; the end-to-end test in
// boomctl runs the real one.
type fakeIngest struct {
	mu       sync.Mutex
	events   map[string]bool
	orders   map[string]bool
	calls    int
	accepted []string // order keys, as accepted

	delay     func() time.Duration
	fail      func(call int) error // an error for this call, or nil
	maxOrders int                  // more orders in a request are "larger than max"
	noIndex   bool                 // violations name no order
	onCall    func(call int)
}

func newFake() *fakeIngest {
	return &fakeIngest{events: map[string]bool{}, orders: map[string]bool{}}
}

func (f *fakeIngest) SubmitOrders(ctx context.Context, req *ingestv1.SubmitOrdersRequest, _ ...grpc.CallOption) (*ingestv1.SubmitOrdersResponse, error) {
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.mu.Unlock()
	if f.onCall != nil {
		f.onCall(call)
	}
	if f.fail != nil {
		if err := f.fail(call); err != nil {
			return nil, err
		}
	}
	if f.maxOrders > 0 && len(req.GetOrders()) > f.maxOrders {
		return nil, status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", len(req.GetOrders()), f.maxOrders)
	}
	var violations []grpcx.FieldViolation
	for i, o := range req.GetOrders() {
		if o.GetCustomer().GetEmail() == "bad" {
			field := fmt.Sprintf("orders[%d].customer.email", i)
			if f.noIndex {
				field = "(message)"
			}
			violations = append(violations, grpcx.FieldViolation{Field: field, Description: "must be an e-mail address"})
		}
	}
	if len(violations) > 0 {
		return nil, grpcx.InvalidArgument("invalid request: "+grpcx.Summary(violations), violations)
	}
	if f.delay != nil {
		time.Sleep(f.delay())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &ingestv1.SubmitOrdersResponse{}
	for _, o := range req.GetOrders() {
		order := o.GetSource() + "/" + o.GetOrderId()
		key := order + "/" + o.GetKind().String() + "/" + o.GetRefund().GetRefundId()
		r := &ingestv1.OrderResult{OrderId: o.GetOrderId()}
		switch {
		case f.events[key]:
			r.Outcome = ingestv1.OrderOutcome_ORDER_OUTCOME_DUPLICATE
		case !f.orders[order] && (o.GetKind() == refunded || o.GetKind() == cancelled):
			r.Outcome, r.Reason = ingestv1.OrderOutcome_ORDER_OUTCOME_REJECTED, "unknown_order"
		default:
			r.Outcome = ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED
			f.events[key], f.orders[order] = true, true
			f.accepted = append(f.accepted, key)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// history writes n orders as JSON Lines: each paid, and for most a
// refund or a cancellation some lines later, so that an order's events
// land in different batches.
func history(n int, seed uint64) (doc string, events int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	type later struct {
		at   int
		line string
	}
	var pending []later
	var b strings.Builder
	for i := 0; i < n || len(pending) > 0; i++ {
		if i < n {
			fmt.Fprintf(&b, `{"order_id":"o-%d","occurred_at":"2026-05-01T10:00:00Z","currency":"EUR","total":"10.00","customer":{"email":"c%d@example.com"}}`+"\n", i, i%50)
			events++
			switch rng.IntN(3) {
			case 0:
				pending = append(pending, later{i + 1 + rng.IntN(20), fmt.Sprintf(`{"order_id":"o-%d","kind":"refunded","occurred_at":"2026-05-02T10:00:00Z","refund":{"id":"r1","amount":"4.00","currency":"EUR"}}`, i)})
			case 1:
				pending = append(pending, later{i + 1 + rng.IntN(20), fmt.Sprintf(`{"order_id":"o-%d","kind":"cancelled","occurred_at":"2026-05-02T10:00:00Z"}`, i)})
			}
		}
		kept := pending[:0]
		for _, p := range pending {
			if p.at <= i {
				b.WriteString(p.line + "\n")
				events++
			} else {
				kept = append(kept, p)
			}
		}
		pending = kept
	}
	return b.String(), events
}

type recorder struct {
	positions []Position
	rejects   []Rejection
	last      Counts
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		Rejected: func(rj Rejection) error { r.rejects = append(r.rejects, rj); return nil },
		Committed: func(p Position, c Counts) error {
			r.positions = append(r.positions, p)
			r.last = c
			return nil
		},
	}
}

func jsonl(tb testing.TB, doc string) Reader {
	tb.Helper()
	r, err := Open(JSONL, strings.NewReader(doc), Options{Source: "s"})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// An order's refund or cancellation in a later batch is sent only once
// the batch with its payment is answered: with small batches, many calls
// in flight and answers in any order, order-ingest never sees a refund
// before its order.
func TestImportKeepsEachOrdersEventsInOrder(t *testing.T) {
	doc, events := history(600, 7)
	f := newFake()
	f.delay = func() time.Duration { return time.Duration(rand.IntN(1500)) * time.Microsecond }
	var rec recorder
	im := New(f, Config{Batch: 3, Parallel: 8})
	got, err := im.Run(context.Background(), jsonl(t, doc), rec.hooks())
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{Orders: got.Orders, Events: int64(events), Accepted: int64(events)}
	if got != want || len(rec.rejects) > 0 {
		t.Fatalf("counts %+v, want %+v; rejections %v", got, want, rec.rejects)
	}
	for i := 1; i < len(rec.positions); i++ {
		if rec.positions[i].Offset < rec.positions[i-1].Offset {
			t.Fatalf("commits went back: %+v after %+v", rec.positions[i], rec.positions[i-1])
		}
	}
	if end := rec.positions[len(rec.positions)-1]; end.Offset != int64(len(doc)) {
		t.Errorf("last commit at %+v, want the file's end %d", end, len(doc))
	}
	if _, live := im.Progress(); live != got {
		t.Errorf("progress %+v, want %+v", live, got)
	}

	// Again: every event a duplicate, nothing accepted.
	again, err := New(f, Config{Batch: 7, Parallel: 4}).Run(context.Background(), jsonl(t, doc), Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Duplicate != int64(events) || again.Accepted != 0 || again.Rejected != 0 {
		t.Errorf("second import %+v, want %d duplicates", again, events)
	}
}

func line(id, email string) string {
	return fmt.Sprintf(`{"order_id":"%s","occurred_at":"2026-05-01T10:00:00Z","currency":"EUR","total":"1","customer":{"email":"%s"}}`+"\n", id, email)
}

// A request refused whole for a broken field rule is sent again without
// the orders the violations name; when they name none, it is halved until
// the bad orders stand alone. Either way exactly the bad orders are
// rejected, as invalid, with their field's message, and unreadable lines
// are reported in file order with them.
func TestImportFindsInvalidOrders(t *testing.T) {
	var b strings.Builder
	bad := map[string]bool{"o-3": true, "o-4": true, "o-17": true}
	for i := 0; i < 25; i++ {
		id := fmt.Sprintf("o-%d", i)
		email := fmt.Sprintf("c%d@example.com", i)
		if bad[id] {
			email = "bad"
		}
		b.WriteString(line(id, email))
		if i == 10 {
			b.WriteString("{broken\n")
		}
	}
	for _, noIndex := range []bool{false, true} {
		t.Run(fmt.Sprintf("violations name no order: %v", noIndex), func(t *testing.T) {
			f := newFake()
			f.noIndex = noIndex
			var rec recorder
			got, err := New(f, Config{Batch: 10, Parallel: 2}).Run(context.Background(), jsonl(t, b.String()), rec.hooks())
			if err != nil {
				t.Fatal(err)
			}
			want := Counts{Orders: 26, Events: 25, Accepted: 22, Rejected: 4, Unreadable: 1}
			if got != want {
				t.Errorf("counts %+v, want %+v", got, want)
			}
			var ids []string
			for _, r := range rec.rejects {
				ids = append(ids, fmt.Sprintf("%d:%s:%s", r.Row, r.OrderID, r.Reason))
			}
			if w := "4:o-3:invalid 5:o-4:invalid 12::malformed 19:o-17:invalid"; strings.Join(ids, " ") != w {
				t.Errorf("rejections %v, want %s", ids, w)
			}
			wantMsg := "customer.email: must be an e-mail address"
			if noIndex {
				wantMsg = "invalid request: (message): must be an e-mail address"
			}
			if rec.rejects[0].Message != wantMsg || rec.rejects[0].Kind != "paid" {
				t.Errorf("rejection %+v, want kind paid, message %q", rec.rejects[0], wantMsg)
			}
		})
	}
}

// A request above the server's size limit is halved until it fits.
func TestImportSplitsTooLargeRequests(t *testing.T) {
	doc, events := history(40, 3)
	f := newFake()
	f.maxOrders = 3
	got, err := New(f, Config{Batch: 20, Parallel: 2}).Run(context.Background(), jsonl(t, doc), Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Accepted != int64(events) || got.Rejected != 0 {
		t.Errorf("counts %+v, want %d accepted", got, events)
	}
}

func TestImportRetries(t *testing.T) {
	doc, events := history(30, 5)
	t.Run("passing failures", func(t *testing.T) {
		f := newFake()
		f.fail = func(call int) error {
			if call%3 != 0 {
				return status.Error(codes.Unavailable, "down for a moment")
			}
			return nil
		}
		got, err := New(f, Config{Batch: 4, Parallel: 1, Retries: 3, Backoff: time.Millisecond}).Run(context.Background(), jsonl(t, doc), Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Accepted != int64(events) {
			t.Errorf("counts %+v, want %d accepted", got, events)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		f := newFake()
		f.fail = func(call int) error {
			if call > 2 {
				return status.Error(codes.Unavailable, "gone")
			}
			return nil
		}
		var rec recorder
		got, err := New(f, Config{Batch: 4, Parallel: 1, Retries: 2, Backoff: time.Millisecond}).Run(context.Background(), jsonl(t, doc), rec.hooks())
		if status.Code(errors.Unwrap(err)) != codes.Unavailable {
			t.Fatalf("error %v, want Unavailable", err)
		}
		if f.calls != 2+3 {
			t.Errorf("%d calls, want 2 answered and 3 tries of the third", f.calls)
		}
		if got.Events != 8 || len(rec.positions) != 2 {
			t.Errorf("committed %+v in %d commits, want the 8 events of the two answered calls", got, len(rec.positions))
		}
	})
	t.Run("does not retry what cannot pass", func(t *testing.T) {
		f := newFake()
		f.fail = func(int) error { return status.Error(codes.PermissionDenied, "no ingest:write") }
		_, err := New(f, Config{Batch: 4, Parallel: 3, Backoff: time.Millisecond}).Run(context.Background(), jsonl(t, doc), Hooks{})
		if status.Code(errors.Unwrap(err)) != codes.PermissionDenied || f.calls > 3 {
			t.Errorf("error %v after %d calls, want PermissionDenied at once", err, f.calls)
		}
	})
}

// An interrupted import finishes the calls in flight and commits them:
// what order-ingest accepted is exactly what comes before the last
// committed position, so a resumed import sends nothing twice.
func TestImportInterrupted(t *testing.T) {
	doc, events := history(400, 11)
	f := newFake()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.delay = func() time.Duration { return time.Duration(rand.IntN(500)) * time.Microsecond }
	f.onCall = func(call int) {
		if call == 20 {
			cancel()
		}
	}
	var rec recorder
	first, err := New(f, Config{Batch: 5, Parallel: 4}).Run(ctx, jsonl(t, doc), rec.hooks())
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("error %v, want ErrInterrupted", err)
	}
	pos := rec.positions[len(rec.positions)-1]
	if pos.Offset == 0 || pos.Offset >= int64(len(doc)) {
		t.Fatalf("interrupted at %+v of %d bytes", pos, len(doc))
	}
	if first.Accepted != int64(len(f.accepted)) {
		t.Errorf("committed %d accepted, the server accepted %d", first.Accepted, len(f.accepted))
	}

	r, err := Resume(JSONL, strings.NewReader(doc), pos, Options{Source: "s"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := New(f, Config{Batch: 5, Parallel: 4}).Run(context.Background(), r, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	total := first.Add(second)
	if total.Accepted != int64(events) || total.Duplicate != 0 || total.Rejected != 0 || total.Events != int64(events) {
		t.Errorf("first %+v + resumed %+v = %+v, want %d accepted and nothing else", first, second, total, events)
	}
}

// A hook's error stops the import and is returned.
func TestImportHookError(t *testing.T) {
	doc, _ := history(50, 2)
	boom := errors.New("disk full")
	n := 0
	_, err := New(newFake(), Config{Batch: 5}).Run(context.Background(), jsonl(t, doc), Hooks{
		Committed: func(Position, Counts) error {
			if n++; n == 3 {
				return boom
			}
			return nil
		},
	})
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want %v", err, boom)
	}
}
