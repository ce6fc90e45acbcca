// Package app holds the feedback service's use cases, one file each, which
// the gRPC and bus ports call: recording intake (survey responses,
// reviews, sellers' responses, ticket events) with the segments of its
// customers, which it asks segmentation for within a deadline, leaving the
// customers it could not ask to be filled in later; the sweep of
// unanswered tickets and the segment fill-in; claiming and resolving
// recovery cases; and the queries (scores, ticket statistics, the
// recovery and review queues). A use case reads the clock and lets the
// domain decide inside the store's transaction.
package app

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/store"
)

// Profiles tells what segmentation knows of a customer.
type Profiles interface {
	Profile(ctx context.Context, customerID string) (feedback.Profile, error)
}

// ErrUnknownCustomer is what a Profiles answers for a customer
// segmentation does not know (yet).
var ErrUnknownCustomer = errors.New("customer unknown to segmentation")

// Options tune the use cases: the look-ups, the rules' thresholds and the
// background jobs.
type Options struct {
	// Timeout bounds the look-ups of one batch.
	Timeout time.Duration
	// Parallel is the most look-ups in flight.
	Parallel int
	// Backoff: after a batch's look-ups failed, none are tried for this
	// long, so an unavailable segmentation does not slow intake down.
	Backoff time.Duration
	// FirstResponseThreshold: a ticket waiting longer for its first
	// response puts its customer in agony (default 6h).
	FirstResponseThreshold time.Duration
	// FillGiveUp: a customer segmentation still does not know this long
	// after its first response is left unsegmented.
	FillGiveUp time.Duration
	// ValueMaxAge: the value of a customer with an open recovery case is
	// asked again once segmentation told it longer ago than this.
	ValueMaxAge time.Duration
	// ClaimTTL: a recovery case claimed this long ago may be taken over
	// by another agent; 0 means a claim never lapses.
	ClaimTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// App runs the use cases over the store.
type App struct {
	store     *store.Store
	profiles  Profiles
	opts      Options
	log       *slog.Logger
	skipUntil atomic.Int64
}

// New returns the use cases; profiles may be nil (every segment is filled
// in later).
func New(st *store.Store, profiles Profiles, o Options, log *slog.Logger) *App {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.Backoff <= 0 {
		o.Backoff = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FirstResponseThreshold <= 0 {
		o.FirstResponseThreshold = 6 * time.Hour
	}
	return &App{store: st, profiles: profiles, opts: o, log: log}
}

// lookupIntake asks for the profiles of ids within the deadline and returns
// those it got, and the customers segmentation does not know (their orders
// may not have reached it yet). Customers it could not ask about are in
// neither. After a failure it asks nothing for a while (Options.Backoff),
// so that an unavailable segmentation does not slow intake down.
func (a *App) lookupIntake(ctx context.Context, ids []string) (found map[string]feedback.Profile, unknown []string) {
	if time.Now().UnixNano() < a.skipUntil.Load() {
		return map[string]feedback.Profile{}, nil
	}
	found, unknown, failed := a.lookup(ctx, ids)
	if failed > 0 {
		a.skipUntil.Store(time.Now().Add(a.opts.Backoff).UnixNano())
		a.log.WarnContext(ctx, "segmentation unavailable; segments will be filled in later", "customers", failed)
	}
	return found, unknown
}

// lookupNow is lookupIntake for the background jobs, which no caller waits for:
// it asks even while intake backs off, gives each group of look-ups a
// deadline of its own, and its failures do not make intake back off.
func (a *App) lookupNow(ctx context.Context, ids []string) (found map[string]feedback.Profile, unknown []string) {
	found = map[string]feedback.Profile{}
	group := 4 * a.opts.Parallel
	var failed int64
	for start := 0; start < len(ids) && ctx.Err() == nil; start += group {
		f, u, n := a.lookup(ctx, ids[start:min(start+group, len(ids))])
		maps.Copy(found, f)
		unknown = append(unknown, u...)
		failed += n
	}
	if failed > 0 {
		a.log.WarnContext(ctx, "segmentation look-ups failed; asking again later", "customers", failed)
	}
	return found, unknown
}

// lookup asks for ids, Parallel at a time, within Options.Timeout.
func (a *App) lookup(ctx context.Context, ids []string) (found map[string]feedback.Profile, unknown []string, failed int64) {
	out := map[string]feedback.Profile{}
	if a.profiles == nil || len(ids) == 0 {
		return out, nil, 0
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
	defer cancel()
	var mu sync.Mutex
	var nfailed atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.opts.Parallel)
	for _, id := range ids {
		g.Go(func() error {
			p, err := a.profiles.Profile(gctx, id)
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
