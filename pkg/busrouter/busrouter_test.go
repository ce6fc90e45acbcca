package busrouter

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// msg is a delivered message; the methods the router does not use are
// left to the embedded nil interface.
type msg struct {
	jetstream.Msg
	subject string
	data    []byte
}

func (m *msg) Subject() string      { return m.subject }
func (m *msg) Data() []byte         { return m.data }
func (m *msg) Headers() nats.Header { return nats.Header{} }
func (m *msg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Timestamp: time.Now(), NumDelivered: 1}, nil
}

func msgs(bodies ...string) []jetstream.Msg {
	out := make([]jetstream.Msg, len(bodies))
	for i, b := range bodies {
		out[i] = &msg{subject: "test." + strconv.Itoa(i), data: []byte(b)}
	}
	return out
}

// decodeInt accepts decimal numbers; "panic" panics.
func decodeInt(_ context.Context, m jetstream.Msg) (int, error) {
	s := string(m.Data())
	if s == "panic" {
		panic("decoder bug")
	}
	if s == "" {
		return 0, Reject("empty", "no body")
	}
	return strconv.Atoi(s)
}

func deadLetter(m jetstream.Msg, reason, detail string) outbox.Message {
	return outbox.Message{ID: "dl-" + string(m.Data()), Subject: "dead." + reason, Data: []byte(detail)}
}

// ledger is a handler over ints that fails any batch holding a number in
// fail, records what it applied and parked, and puts negative numbers off.
type ledger struct {
	fail    map[int]bool
	applied []int
	parked  []string
	calls   int
}

func (l *ledger) handle(_ context.Context, b Batch[int]) (Result, error) {
	l.calls++
	for _, m := range b.Messages {
		if l.fail[m.Body] {
			return Result{}, errors.New("cannot apply " + strconv.Itoa(m.Body))
		}
	}
	var res Result
	for _, m := range b.Messages {
		if m.Body < 0 {
			res.Later = append(res.Later, m.Msg)
			continue
		}
		l.applied = append(l.applied, m.Body)
	}
	for _, d := range b.Dead {
		l.parked = append(l.parked, strings.TrimPrefix(d.Subject, "dead.")+":"+d.ID)
	}
	return res, nil
}

func newRouter(t *testing.T) (*Router, *sdkmetric.ManualReader) {
	reader := sdkmetric.NewManualReader()
	r, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)), noop.NewTracerProvider(),
		sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	return r, reader
}

func TestUndecodableMessagesAreParkedWithTheBatch(t *testing.T) {
	r, reader := newRouter(t)
	l := &ledger{}
	h := Handle(r, Route[int]{Name: "test", Decode: decodeInt, InvalidReason: "not_a_number", DeadLetter: deadLetter, Handle: l.handle})
	later, err := h.BatchHandler()(context.Background(), msgs("1", "x", "", "panic", "2", "-3"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.applied, []int{1, 2}) || l.calls != 1 {
		t.Errorf("applied %v in %d calls, want [1 2] in 1", l.applied, l.calls)
	}
	if want := []string{"not_a_number:dl-x", "empty:dl-", "not_a_number:dl-panic"}; !slices.Equal(l.parked, want) {
		t.Errorf("parked %v, want %v", l.parked, want)
	}
	if len(later) != 1 || string(later[0].Data()) != "-3" {
		t.Errorf("later %v, want the message of -3", later)
	}
	got := testkit.Counter(t, reader, "boomerang.consumer.messages", "consumer", "outcome")
	want := map[string]int64{"test/applied": 2, "test/dead_letter": 3, "test/later": 1}
	if len(got) != len(want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("outcomes %v, want %v", got, want)
			break
		}
	}
}

func TestAFailingMessageIsIsolatedThenParkedOnlyWhileHealthy(t *testing.T) {
	r, _ := newRouter(t)
	var down error
	l := &ledger{fail: map[int]bool{7: true}}
	h := Handle(r, Route[int]{Name: "test", Decode: decodeInt, DeadLetter: deadLetter, Handle: l.handle, MaxAttempts: 3,
		Healthy: func(context.Context) error { return down }})
	handle := h.BatchHandler()
	batch := msgs("1", "7", "2")

	// Before MaxAttempts the batch fails as a whole; the messages before
	// and after the bad one are applied on their own meanwhile (and are
	// duplicates when the batch comes back).
	for attempt := 1; attempt < 3; attempt++ {
		if _, err := handle(context.Background(), batch, attempt); err == nil {
			t.Fatalf("attempt %d: no error with 7 failing", attempt)
		}
	}
	if len(l.parked) != 0 {
		t.Fatalf("parked %v before MaxAttempts", l.parked)
	}

	// An outage parks nothing, however many attempts.
	down = errors.New("database unreachable")
	if _, err := handle(context.Background(), batch, 3); err == nil || !strings.Contains(err.Error(), "database unreachable") {
		t.Fatalf("attempt 3 while down: %v, want the outage reported", err)
	}
	if len(l.parked) != 0 {
		t.Fatalf("parked %v during an outage", l.parked)
	}

	down = nil
	l.applied = nil
	if _, err := handle(context.Background(), batch, 3); err != nil {
		t.Fatalf("attempt 3: %v", err)
	}
	if want := []string{ReasonFailed + ":dl-7"}; !slices.Equal(l.parked, want) {
		t.Errorf("parked %v, want %v", l.parked, want)
	}
	if !slices.Equal(l.applied, []int{1, 2}) {
		t.Errorf("applied %v with 7 parked, want [1 2]", l.applied)
	}
}

func TestAHandlerPanicIsAnError(t *testing.T) {
	r, _ := newRouter(t)
	h := Handle(r, Route[int]{Name: "test", Decode: decodeInt, DeadLetter: deadLetter,
		Handle: func(context.Context, Batch[int]) (Result, error) { panic("handler bug") }})
	if _, err := h.BatchHandler()(context.Background(), msgs("1"), 1); err == nil || !strings.Contains(err.Error(), "handler bug") {
		t.Fatalf("got %v, want the panic as an error", err)
	}
}

func TestParallelDecodingKeepsTheOrder(t *testing.T) {
	r, _ := newRouter(t)
	l := &ledger{}
	h := Handle(r, Route[int]{Name: "test", Decode: decodeInt, DeadLetter: deadLetter, Handle: l.handle, Parallel: true})
	bodies := make([]string, 1000)
	want := make([]int, len(bodies))
	for i := range bodies {
		bodies[i], want[i] = strconv.Itoa(i), i
	}
	if _, err := h.BatchHandler()(context.Background(), msgs(bodies...), 1); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.applied, want) {
		t.Errorf("applied out of order")
	}
}
