package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
)

// The services the customer 360 read asks, by the names it reports them
// under when they do not answer.
const (
	PeerLedger       = "points-ledger"
	PeerSegmentation = "segmentation"
	PeerFeedback     = "feedback"
)

// CustomerStore is what the customer read needs of the database.
type CustomerStore interface {
	// CustomerByKey returns the customer an identity key is linked to, or
	// ingest.ErrCustomerNotFound.
	CustomerByKey(ctx context.Context, key string) (string, error)
	// Customer returns a customer's keys, recent orders and order count,
	// or ingest.ErrCustomerNotFound.
	Customer(ctx context.Context, id string, ordersLimit int) (ingest.Customer, error)
}

// Ledger is the part of the points ledger's API the read calls.
type Ledger interface {
	GetAccount(ctx context.Context, in *ledgerv1.GetAccountRequest, opts ...grpc.CallOption) (*ledgerv1.GetAccountResponse, error)
}

// Segmentation is the part of segmentation's API the read calls.
type Segmentation interface {
	GetProfile(ctx context.Context, in *segmentationv1.GetProfileRequest, opts ...grpc.CallOption) (*segmentationv1.GetProfileResponse, error)
}

// Feedback is the part of feedback's API the read calls.
type Feedback interface {
	ListRecoveryQueue(ctx context.Context, in *feedbackv1.ListRecoveryQueueRequest, opts ...grpc.CallOption) (*feedbackv1.ListRecoveryQueueResponse, error)
}

// Peers are the other services' APIs; a nil one is not reachable from
// here and is reported unavailable.
type Peers struct {
	Ledger       Ledger
	Segmentation Segmentation
	Feedback     Feedback
}

// CustomerRef names a customer by exactly one key: the unified id, an
// e-mail address, or a customer id on a source.
type CustomerRef struct {
	ID         string
	Email      string
	Source     string
	PlatformID string
}

// CustomerView is what Boomerang holds on one customer. Account, Profile
// and Cases are the other services' answers; Unavailable names the ones
// that gave none.
type CustomerView struct {
	ingest.Customer
	// KeySource is the source of the platform key the request named ("":
	// none), the only key whose source is known: a stored key is a keyed
	// hash of its source and id together.
	KeyHash, KeySource string
	Account            *ledgerv1.GetAccountResponse
	Profile            *segmentationv1.GetProfileResponse
	Cases              []*feedbackv1.RecoveryCase
	Unavailable        []string
}

// ErrNoCustomerKey is returned for a CustomerRef that names no key.
var ErrNoCustomerKey = errors.New("no customer key given: want an id, an e-mail, or a source and platform customer id")

// maxOpenCases bounds the open recovery cases listed for one customer.
const maxOpenCases = 100

// Customers is the customer 360 read: it finds the customer by any key,
// reads what order-ingest holds, and asks the ledger, segmentation and
// feedback in parallel, each with its own deadline.
type Customers struct {
	hasher  *ingest.Hasher
	store   CustomerStore
	peers   Peers
	timeout time.Duration
	log     *slog.Logger
}

// NewCustomers returns the read; hasher hashes e-mails and platform ids
// as ingestion does, and timeout bounds each peer's answer.
func NewCustomers(hasher *ingest.Hasher, st CustomerStore, peers Peers, timeout time.Duration, log *slog.Logger) *Customers {
	return &Customers{hasher: hasher, store: st, peers: peers, timeout: timeout, log: log}
}

// GetCustomer gathers what Boomerang holds on the customer ref names, or
// returns ingest.ErrCustomerNotFound. A peer that fails or runs out of
// time is named in Unavailable; the rest is still returned.
func (c *Customers) GetCustomer(ctx context.Context, ref CustomerRef, ordersLimit int) (*CustomerView, error) {
	v := &CustomerView{}
	id := ref.ID
	if id == "" {
		switch {
		case ref.Email != "":
			v.KeyHash = c.hasher.EmailKey(ref.Email)
		case ref.Source != "" && ref.PlatformID != "":
			v.KeyHash = c.hasher.PlatformKey(ref.Source, strings.TrimSpace(ref.PlatformID))
			v.KeySource = ref.Source
		default:
			return nil, ErrNoCustomerKey
		}
		var err error
		if id, err = c.store.CustomerByKey(ctx, v.KeyHash); err != nil {
			return nil, err
		}
	}
	cust, err := c.store.Customer(ctx, id, ordersLimit)
	if err != nil {
		return nil, fmt.Errorf("customer %s: %w", id, err)
	}
	v.Customer = cust

	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := map[string]bool{}
	ask := func(peer string, reachable bool, call func(ctx context.Context) error) {
		if !reachable {
			mu.Lock()
			failed[peer] = true
			mu.Unlock()
			return
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			err := call(pctx)
			if err == nil || status.Code(err) == codes.NotFound {
				return
			}
			c.log.WarnContext(ctx, "customer read: a service did not answer", "peer", peer, "code", status.Code(err).String(), "error", err)
			mu.Lock()
			failed[peer] = true
			mu.Unlock()
		})
	}
	ask(PeerLedger, c.peers.Ledger != nil, func(ctx context.Context) error {
		a, err := c.peers.Ledger.GetAccount(ctx, &ledgerv1.GetAccountRequest{CustomerId: id})
		v.Account = a
		return err
	})
	ask(PeerSegmentation, c.peers.Segmentation != nil, func(ctx context.Context) error {
		p, err := c.peers.Segmentation.GetProfile(ctx, &segmentationv1.GetProfileRequest{CustomerId: id})
		v.Profile = p
		return err
	})
	ask(PeerFeedback, c.peers.Feedback != nil, func(ctx context.Context) error {
		q, err := c.peers.Feedback.ListRecoveryQueue(ctx, &feedbackv1.ListRecoveryQueueRequest{CustomerId: id, Limit: maxOpenCases})
		v.Cases = q.GetCases()
		return err
	})
	wg.Wait()
	for _, p := range []string{PeerLedger, PeerSegmentation, PeerFeedback} {
		if failed[p] {
			v.Unavailable = append(v.Unavailable, p)
		}
	}
	return v, nil
}
