package orderimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

// Submitter is the call the importer makes; ingestv1.IngestServiceClient
// is one.
type Submitter interface {
	SubmitOrders(ctx context.Context, in *ingestv1.SubmitOrdersRequest, opts ...grpc.CallOption) (*ingestv1.SubmitOrdersResponse, error)
}

// MaxBatch is the most orders one SubmitOrders call takes.
const MaxBatch = 500

// Config tunes an Importer; zero values take the defaults.
type Config struct {
	// Batch is the number of events per call, 1 to MaxBatch (default 500).
	Batch int
	// Parallel is the number of calls in flight (default 4).
	Parallel int
	// Retries is how often a call that failed for a passing reason
	// (Unavailable, DeadlineExceeded, Aborted, ResourceExhausted) is
	// tried again before the import stops (default 8; negative: never).
	Retries int
	// Backoff is the wait before the first retry, doubled for each next
	// one up to MaxBackoff (defaults 250ms and 10s).
	Backoff, MaxBackoff time.Duration
}

func (c Config) withDefaults() Config {
	if c.Batch <= 0 || c.Batch > MaxBatch {
		c.Batch = MaxBatch
	}
	if c.Parallel <= 0 {
		c.Parallel = 4
	}
	if c.Retries == 0 {
		c.Retries = 8
	}
	if c.Backoff <= 0 {
		c.Backoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	return c
}

// Counts are what an import did. Accepted, Duplicate and Rejected count
// events; Rejected also counts each order whose rows could not be read
// (Unreadable), which sends nothing. Skipped are orders read that are
// no order event at all (a WooCommerce draft or trashed order).
type Counts struct {
	Orders     int64 `json:"orders"`
	Events     int64 `json:"events"`
	Accepted   int64 `json:"accepted"`
	Duplicate  int64 `json:"duplicate"`
	Rejected   int64 `json:"rejected"`
	Unreadable int64 `json:"unreadable"`
	Skipped    int64 `json:"skipped"`
}

// Add returns c plus d.
func (c Counts) Add(d Counts) Counts {
	return Counts{
		Orders: c.Orders + d.Orders, Events: c.Events + d.Events, Accepted: c.Accepted + d.Accepted,
		Duplicate: c.Duplicate + d.Duplicate, Rejected: c.Rejected + d.Rejected, Unreadable: c.Unreadable + d.Unreadable,
		Skipped: c.Skipped + d.Skipped,
	}
}

// Rejection is an event order-ingest rejected, or an order whose rows
// could not be read (Kind empty).
type Rejection struct {
	Row      int64  `json:"row"`
	OrderID  string `json:"order_id"`
	Kind     string `json:"kind,omitempty"`
	RefundID string `json:"refund_id,omitempty"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
}

// Hooks are told what became of the file, in file order, from one
// goroutine.
type Hooks struct {
	// Rejected is called for each rejection before the Committed call
	// whose position passes it.
	Rejected func(Rejection) error
	// Committed is called when every order before pos is done
	// (accepted, duplicate or rejected); counts are this run's totals up
	// to pos. An error stops the import.
	Committed func(pos Position, counts Counts) error
}

// ErrInterrupted is returned when the import's context ended: the calls
// in flight were finished and committed, nothing after them was sent.
var ErrInterrupted = errors.New("interrupted")

// Importer submits what readers read. Its progress counters add up over
// every Run.
type Importer struct {
	sub Submitter
	cfg Config

	readOffset atomic.Int64
	live       struct{ orders, events, accepted, duplicate, rejected, unreadable, skipped atomic.Int64 }
}

// New returns an importer that submits through sub.
func New(sub Submitter, cfg Config) *Importer {
	return &Importer{sub: sub, cfg: cfg.withDefaults()}
}

// Progress is where the current run's reader is (bytes read of its file)
// and what every run has done so far, committed or not.
func (im *Importer) Progress() (readOffset int64, c Counts) {
	return im.readOffset.Load(), Counts{
		Orders: im.live.orders.Load(), Events: im.live.events.Load(), Accepted: im.live.accepted.Load(),
		Duplicate: im.live.duplicate.Load(), Rejected: im.live.rejected.Load(), Unreadable: im.live.unreadable.Load(),
		Skipped: im.live.skipped.Load(),
	}
}

// part is an order's share of a batch: the whole order, or a slice of
// the events of an order too large for one batch.
type part struct {
	row    int64
	id     string
	err    error
	events int  // how many of the batch's events are this part's
	last   bool // the order's last part: the order counts here
}

type batch struct {
	parts  []part
	events []*ingestv1.Order
	end    Position
	deps   []*batch

	finished chan struct{} // closed when the batch is resolved or given up
	// Set before finished is closed.
	err       error // the batch failed; the import stops
	abandoned bool  // never sent: the import stopped first
	counts    Counts
	rejects   []Rejection
}

func (b *batch) done() bool {
	select {
	case <-b.finished:
		return true
	default:
		return false
	}
}

// result is what became of one event.
type result struct {
	outcome         ingestv1.OrderOutcome
	reason, message string
	kind, refundID  string // of a rejected event, for its report
}

// Run reads r to its end and submits its orders, Parallel calls at a
// time. The events of one order go in file order: in the same call, or
// in a later call only once the earlier one is answered, because
// order-ingest rejects a refund or cancellation of an order it has not
// seen (unknown_order) on gRPC rather than waiting for it.
//
// When ctx ends, the calls in flight are finished (their answers are
// still wanted for the checkpoint), nothing more is sent, and Run returns
// ErrInterrupted. A call that keeps failing, an error from r or from a
// hook stops the import the same way and is returned.
func (im *Importer) Run(ctx context.Context, r Reader, h Hooks) (Counts, error) {
	cfg := im.cfg
	stopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	// The calls outlive an interruption: an answered call is one less to
	// send again.
	callCtx := context.WithoutCancel(ctx)

	window := make(chan struct{}, 4*cfg.Parallel) // batches read but not committed
	slots := make(chan struct{}, cfg.Parallel)    // calls in flight
	queue := make(chan *batch, cap(window))
	var committed Counts
	var commitErr error
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		stopped := false
		for b := range queue {
			<-b.finished
			<-window
			if stopped || b.err != nil || b.abandoned {
				stopped = true
				continue
			}
			if err := im.commit(b, h, &committed); err != nil {
				commitErr, stopped = err, true
				stop(err)
			}
		}
	}()

	var wg sync.WaitGroup
	last := map[string]*batch{} // order key → the latest batch with its events
	dispatch := func(b *batch) bool {
		select {
		case window <- struct{}{}:
		case <-stopCtx.Done():
			return false
		}
		queue <- b
		if len(b.events) == 0 {
			b.finish(nil, nil)
			return true
		}
		select {
		case slots <- struct{}{}:
		case <-stopCtx.Done():
			b.abandoned = true
			close(b.finished)
			return false
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			// Every batch dispatched is sent, also when the import is
			// interrupted meanwhile: its dependencies are in flight and
			// answer, and so whatever was sent is committed.
			for _, d := range b.deps {
				<-d.finished
				if d.err != nil || d.abandoned {
					b.abandoned = true
					close(b.finished)
					return
				}
			}
			results, err := im.submit(callCtx, stopCtx, b.events)
			if err != nil {
				stop(err)
			}
			b.finish(results, err)
			im.addLive(b.counts)
		}()
		return true
	}

	cur := &batch{finished: make(chan struct{})}
	var readErr error
	prevEnd := r.Position()
	im.readOffset.Store(prevEnd.Offset)
read:
	for stopCtx.Err() == nil {
		o, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			stop(err)
			break
		}
		end := r.Position()
		im.readOffset.Store(end.Offset)
		im.live.orders.Add(1)
		if o.Err != nil || len(o.Events) == 0 {
			if o.Err != nil {
				im.live.rejected.Add(1)
				im.live.unreadable.Add(1)
			} else {
				im.live.skipped.Add(1)
			}
			cur.parts = append(cur.parts, part{row: o.Row, id: o.ID, err: o.Err, last: true})
			cur.end, prevEnd = end, end
			continue
		}
		key := o.Events[0].GetSource() + "\x00" + o.Events[0].GetOrderId()
		events := o.Events
		for len(events) > 0 {
			room := cfg.Batch - len(cur.events)
			if room < len(events) && len(cur.events) > 0 {
				// The order goes whole into the next batch.
				if !dispatch(cur) {
					break read
				}
				cur = &batch{finished: make(chan struct{}), end: prevEnd}
				continue
			}
			n := min(room, len(events))
			if d := last[key]; d != nil && d != cur && !d.done() && !slices.Contains(cur.deps, d) {
				cur.deps = append(cur.deps, d)
			}
			last[key] = cur
			cur.events = append(cur.events, events[:n]...)
			events = events[n:]
			p := part{row: o.Row, id: o.ID, events: n, last: len(events) == 0}
			cur.parts = append(cur.parts, p)
			if p.last {
				cur.end = end
			} else {
				cur.end = prevEnd
			}
			if len(cur.events) == cfg.Batch {
				if !dispatch(cur) {
					break read
				}
				cur = &batch{finished: make(chan struct{}), end: cur.end}
			}
		}
		prevEnd = end
		if len(last) > 8*cfg.Batch*cfg.Parallel {
			for k, b := range last {
				if b.done() {
					delete(last, k)
				}
			}
		}
	}
	if len(cur.parts) > 0 && stopCtx.Err() == nil {
		dispatch(cur)
	}
	wg.Wait()
	close(queue)
	<-collected

	switch cause := context.Cause(stopCtx); {
	case readErr != nil:
		return committed, fmt.Errorf("read: %w", readErr)
	case commitErr != nil:
		return committed, commitErr
	case ctx.Err() != nil:
		return committed, ErrInterrupted
	case cause != nil && !errors.Is(cause, context.Canceled):
		return committed, cause
	}
	return committed, nil
}

// finish records the batch's results and lets go of its events.
func (b *batch) finish(results []result, err error) {
	defer close(b.finished)
	b.events = nil
	if err != nil {
		b.err = err
		return
	}
	i := 0
	for _, p := range b.parts {
		if p.last {
			b.counts.Orders++
		}
		if p.err != nil {
			var re *RowError
			reason, msg := ReasonMalformed, p.err.Error()
			if errors.As(p.err, &re) {
				reason, msg = re.Reason, re.Message
			}
			b.counts.Rejected++
			b.counts.Unreadable++
			b.rejects = append(b.rejects, Rejection{Row: p.row, OrderID: p.id, Reason: reason, Message: msg})
			continue
		}
		if p.events == 0 && p.last {
			b.counts.Skipped++
			continue
		}
		for _, r := range results[i : i+p.events] {
			b.counts.Events++
			switch r.outcome {
			case ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED:
				b.counts.Accepted++
			case ingestv1.OrderOutcome_ORDER_OUTCOME_DUPLICATE:
				b.counts.Duplicate++
			default:
				b.counts.Rejected++
				b.rejects = append(b.rejects, Rejection{
					Row: p.row, OrderID: p.id, Kind: r.kind, RefundID: r.refundID, Reason: r.reason, Message: r.message,
				})
			}
		}
		i += p.events
	}
}

func (im *Importer) addLive(c Counts) {
	im.live.events.Add(c.Events)
	im.live.accepted.Add(c.Accepted)
	im.live.duplicate.Add(c.Duplicate)
	im.live.rejected.Add(c.Rejected - c.Unreadable) // unreadable rows counted when read
}

func (im *Importer) commit(b *batch, h Hooks, total *Counts) error {
	for _, r := range b.rejects {
		if h.Rejected != nil {
			if err := h.Rejected(r); err != nil {
				return err
			}
		}
	}
	*total = total.Add(b.counts)
	if h.Committed != nil {
		return h.Committed(b.end, *total)
	}
	return nil
}

// submit sends events and returns one result each. A request order-ingest
// finds invalid as a whole (InvalidArgument with field violations) is
// sent again without the orders the violations name, which are rejected
// as invalid; when the violations do not say which, it is split in halves
// until they do. A request too large for the server is split the same way.
func (im *Importer) submit(ctx, stopCtx context.Context, events []*ingestv1.Order) ([]result, error) {
	out := make([]result, len(events))
	if err := im.submitInto(ctx, stopCtx, events, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (im *Importer) submitInto(ctx, stopCtx context.Context, events []*ingestv1.Order, out []result) error {
	resp, err := im.call(ctx, stopCtx, events)
	if err == nil {
		rs := resp.GetResults()
		if len(rs) != len(events) {
			return fmt.Errorf("SubmitOrders answered %d results for %d orders", len(rs), len(events))
		}
		for i, r := range rs {
			switch r.GetOutcome() {
			case ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED, ingestv1.OrderOutcome_ORDER_OUTCOME_DUPLICATE:
				out[i] = result{outcome: r.GetOutcome()}
			case ingestv1.OrderOutcome_ORDER_OUTCOME_REJECTED:
				out[i] = rejected(events[i], r.GetReason(), r.GetMessage())
			default:
				out[i] = rejected(events[i], "unknown_outcome", "SubmitOrders answered "+r.GetOutcome().String())
			}
		}
		return nil
	}
	st, _ := status.FromError(err)
	switch {
	case st.Code() == codes.InvalidArgument:
		if len(events) == 1 {
			out[0] = rejected(events[0], ReasonInvalid, violationText(st, 0))
			return nil
		}
		bad, all := violated(st, len(events))
		if !all || len(bad) == 0 {
			return im.split(ctx, stopCtx, events, out)
		}
		var rest []*ingestv1.Order
		var at []int
		for i, ev := range events {
			if msg, ok := bad[i]; ok {
				out[i] = rejected(ev, ReasonInvalid, msg)
				continue
			}
			rest, at = append(rest, ev), append(at, i)
		}
		if len(rest) == 0 {
			return nil
		}
		sub := make([]result, len(rest))
		if err := im.submitInto(ctx, stopCtx, rest, sub); err != nil {
			return err
		}
		for j, i := range at {
			out[i] = sub[j]
		}
		return nil
	case tooLarge(st):
		if len(events) == 1 {
			out[0] = rejected(events[0], ReasonTooLarge, st.Message())
			return nil
		}
		return im.split(ctx, stopCtx, events, out)
	}
	return fmt.Errorf("SubmitOrders: %w", err)
}

// split sends the halves one after the other, so that an order's events
// keep their order.
func (im *Importer) split(ctx, stopCtx context.Context, events []*ingestv1.Order, out []result) error {
	h := len(events) / 2
	if err := im.submitInto(ctx, stopCtx, events[:h], out[:h]); err != nil {
		return err
	}
	return im.submitInto(ctx, stopCtx, events[h:], out[h:])
}

// call makes one SubmitOrders call, trying again after passing failures
// unless the import is stopping.
func (im *Importer) call(ctx, stopCtx context.Context, events []*ingestv1.Order) (*ingestv1.SubmitOrdersResponse, error) {
	wait := im.cfg.Backoff
	for attempt := 0; ; attempt++ {
		resp, err := im.sub.SubmitOrders(ctx, &ingestv1.SubmitOrdersRequest{Orders: events})
		if err == nil || !retryable(err) || attempt >= im.cfg.Retries || stopCtx.Err() != nil {
			return resp, err
		}
		// Jitter keeps parallel calls that failed together from
		// retrying together.
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-t.C:
		case <-stopCtx.Done():
			t.Stop()
			return nil, err
		}
		wait = min(2*wait, im.cfg.MaxBackoff)
	}
}

func retryable(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true
	case codes.ResourceExhausted:
		return !tooLarge(st)
	}
	return false
}

// tooLarge recognises gRPC's refusal of a message above the size limit,
// on either side.
func tooLarge(st *status.Status) bool {
	return st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max")
}

var violationIndex = regexp.MustCompile(`^orders\[(\d+)\]\.?`)

// violated maps the request's field violations to the orders they name:
// index → "field: description; ...". all is false when a violation names
// no order of the request.
func violated(st *status.Status, n int) (map[int]string, bool) {
	bad := map[int]string{}
	all := true
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, fv := range br.GetFieldViolations() {
			m := violationIndex.FindStringSubmatch(fv.GetField())
			i := -1
			if m != nil {
				i, _ = strconv.Atoi(m[1])
			}
			if i < 0 || i >= n {
				all = false
				continue
			}
			msg := strings.TrimPrefix(fv.GetField(), m[0]) + ": " + fv.GetDescription()
			if prev, ok := bad[i]; ok {
				msg = prev + "; " + msg
			}
			bad[i] = msg
		}
	}
	return bad, all
}

// violationText is what a one-order request's violations say.
func violationText(st *status.Status, i int) string {
	if bad, _ := violated(st, i+1); bad[i] != "" {
		return bad[i]
	}
	return st.Message()
}

func rejected(ev *ingestv1.Order, reason, message string) result {
	return result{
		outcome: ingestv1.OrderOutcome_ORDER_OUTCOME_REJECTED, reason: reason, message: message,
		kind: KindName(ev.GetKind()), refundID: ev.GetRefund().GetRefundId(),
	}
}

// KindName is an event kind as the import's reports write it: placed,
// paid, refunded, cancelled.
func KindName(k ordersv1.OrderEventKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "ORDER_EVENT_KIND_"))
}
