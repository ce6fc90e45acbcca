// Package intake turns what customers say and how tickets went, as the
// boomerang.feedback.v1 requests that arrive over gRPC or the bus, into the
// domain's inputs, validated by the same rules either way; and it asks
// segmentation for the customers' segments and values before a batch is
// stored, within a deadline, leaving the customers it could not ask to be
// filled in later.
package intake

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/store"
)

// Scoped is the key of a source's id: ids are unique only within their
// source (a survey tool, a help desk), and a source holds no "/".
func Scoped(source, id string) string { return source + "/" + id }

// FromSurvey is a survey response's domain input; its ID is scoped by its
// source.
func FromSurvey(r *feedbackv1.SubmitSurveyResponseRequest) *feedback.Response {
	return &feedback.Response{ID: Scoped(r.GetSource(), r.GetResponseId()), CustomerID: r.GetCustomerId(), Kind: feedback.Kind(r.GetKind()),
		Score: int(r.GetScore()), Channel: r.GetChannel(), Comment: r.GetComment(), OrderID: r.GetOrderId(),
		TicketID: r.GetTicketId(), At: r.GetRespondedAt().AsTime()}
}

// FromReview is a review's domain input.
func FromReview(r *feedbackv1.SubmitReviewRequest) *feedback.Review {
	return &feedback.Review{ID: r.GetReviewId(), Platform: r.GetPlatform(), CustomerID: r.GetCustomerId(),
		Rating: int(r.GetRating()), Text: r.GetText(), Product: r.GetProduct(), CreatedAt: r.GetCreatedAt().AsTime()}
}

// FromReviewResponse is a seller's response's domain input.
func FromReviewResponse(r *feedbackv1.RespondToReviewRequest) *feedback.ReviewResponse {
	return &feedback.ReviewResponse{ReviewID: r.GetReviewId(), Platform: r.GetPlatform(), Text: r.GetText(),
		RespondedAt: r.GetRespondedAt().AsTime()}
}

// FromTicketEvent is a ticket event's domain input; its ID and TicketID
// are scoped by its source.
func FromTicketEvent(r *feedbackv1.RecordTicketEventRequest) *feedback.TicketEvent {
	return &feedback.TicketEvent{ID: Scoped(r.GetSource(), r.GetEventId()), TicketID: Scoped(r.GetSource(), r.GetTicketId()), CustomerID: r.GetCustomerId(),
		Kind: feedback.TicketEventKind(r.GetKind()), Channel: r.GetChannel(), At: r.GetOccurredAt().AsTime()}
}

// Profiles tells what segmentation knows of a customer.
type Profiles interface {
	Profile(ctx context.Context, customerID string) (feedback.Profile, error)
}

// ErrUnknownCustomer is what a Profiles answers for a customer
// segmentation does not know (yet).
var ErrUnknownCustomer = errors.New("customer unknown to segmentation")

// Options tune the look-ups.
type Options struct {
	// Timeout bounds the look-ups of one batch.
	Timeout time.Duration
	// Parallel is the most look-ups in flight.
	Parallel int
	// Backoff: after a batch's look-ups failed, none are tried for this
	// long, so an unavailable segmentation does not slow intake down.
	Backoff time.Duration
}

// Intake stores batches with the segments of their customers.
type Intake struct {
	store     *store.Store
	profiles  Profiles
	opts      Options
	log       *slog.Logger
	skipUntil atomic.Int64
}

// New returns the intake; profiles may be nil (every segment is filled
// in later).
func New(st *store.Store, profiles Profiles, o Options, log *slog.Logger) *Intake {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.Backoff <= 0 {
		o.Backoff = 10 * time.Second
	}
	return &Intake{store: st, profiles: profiles, opts: o, log: log}
}

// Apply looks the batch's customers up and stores the batch.
func (i *Intake) Apply(ctx context.Context, in []store.Input, dead []outbox.Message) (store.Result, error) {
	var ids []string
	seen := map[string]bool{}
	for _, x := range in {
		var id string
		switch {
		case x.Response != nil:
			id = x.Response.CustomerID
		case x.Review != nil:
			id = x.Review.CustomerID
		case x.Ticket != nil:
			id = x.Ticket.CustomerID
		}
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	found, _ := i.Lookup(ctx, ids)
	return i.store.Intake(ctx, in, found, dead)
}

// Lookup asks for the profiles of ids within the deadline and returns
// those it got, and the customers segmentation does not know (their orders
// may not have reached it yet). Customers it could not ask about are in
// neither. After a failure it asks nothing for a while (Options.Backoff),
// so that an unavailable segmentation does not slow intake down.
func (i *Intake) Lookup(ctx context.Context, ids []string) (found map[string]feedback.Profile, unknown []string) {
	if time.Now().UnixNano() < i.skipUntil.Load() {
		return map[string]feedback.Profile{}, nil
	}
	found, unknown, failed := i.lookup(ctx, ids)
	if failed > 0 {
		i.skipUntil.Store(time.Now().Add(i.opts.Backoff).UnixNano())
		i.log.WarnContext(ctx, "segmentation unavailable; segments will be filled in later", "customers", failed)
	}
	return found, unknown
}

// LookupNow is Lookup for the background jobs, which no caller waits for:
// it asks even while intake backs off, gives each group of look-ups a
// deadline of its own, and its failures do not make intake back off.
func (i *Intake) LookupNow(ctx context.Context, ids []string) (found map[string]feedback.Profile, unknown []string) {
	found = map[string]feedback.Profile{}
	group := 4 * i.opts.Parallel
	var failed int64
	for start := 0; start < len(ids) && ctx.Err() == nil; start += group {
		f, u, n := i.lookup(ctx, ids[start:min(start+group, len(ids))])
		maps.Copy(found, f)
		unknown = append(unknown, u...)
		failed += n
	}
	if failed > 0 {
		i.log.WarnContext(ctx, "segmentation look-ups failed; asking again later", "customers", failed)
	}
	return found, unknown
}

// lookup asks for ids, Parallel at a time, within Options.Timeout.
func (i *Intake) lookup(ctx context.Context, ids []string) (found map[string]feedback.Profile, unknown []string, failed int64) {
	out := map[string]feedback.Profile{}
	if i.profiles == nil || len(ids) == 0 {
		return out, nil, 0
	}
	ctx, cancel := context.WithTimeout(ctx, i.opts.Timeout)
	defer cancel()
	var mu sync.Mutex
	var nfailed atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(i.opts.Parallel)
	for _, id := range ids {
		g.Go(func() error {
			p, err := i.profiles.Profile(gctx, id)
			switch {
			case err == nil:
				mu.Lock()
				out[id] = p
				mu.Unlock()
			case errors.Is(err, ErrUnknownCustomer):
				mu.Lock()
				unknown = append(unknown, id)
				mu.Unlock()
			default:
				nfailed.Add(1)
			}
			return nil
		})
	}
	_ = g.Wait()
	return out, unknown, nfailed.Load()
}

// Check applies the rules the .proto files cannot say to an intake
// request, over gRPC and the bus alike: no string may hold a NUL byte
// (PostgreSQL refuses it in text, and a message it refuses would be tried
// forever), and a review's platform may not hold "/" (the review key is
// "<platform>/<review id>", so ("a/b", "c") and ("a", "b/c") would be one
// review).
func Check(m proto.Message) []grpcx.FieldViolation {
	var out []grpcx.FieldViolation
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
			return true
		}
		s := v.String()
		if strings.ContainsRune(s, 0) {
			out = append(out, grpcx.FieldViolation{Field: string(fd.Name()), Description: "must not contain a NUL byte"})
		}
		if fd.Name() == "platform" && strings.Contains(s, "/") {
			out = append(out, grpcx.FieldViolation{Field: string(fd.Name()), Description: `must not contain "/"`})
		}
		return true
	})
	return out
}
