package store

import (
	"context"
	"fmt"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// The contract tests drive the store as the use cases of internal/app do:
// order events and agony marks applied by the domain's rules
// (segment.OrderBatch, segment.AgonyBatch) inside UpdateOrders and
// UpdateAgony, rescored by a function each test chooses instead of the
// models.

// Rescore is a customer to score: their features, agony and previous
// score (nil for a customer never scored).
type Rescore struct {
	Features *segment.Features
	Agony    bool
	Old      *segment.Score
}

// Rescorer returns one score per customer, in order, with the outbox
// messages the changes call for.
type Rescorer func(items []Rescore) ([]segment.Score, []outbox.Message)

// Update is one customer changed by a transaction.
type Update struct {
	Features *segment.Features
	Old      *segment.Score
	New      segment.Score
}

// Batch is a batch of order events: Later is told the index of each
// event put off, after the commit.
type Batch struct {
	Events []segment.Event
	Extra  []outbox.Message
	Now    time.Time
	Later  func(i int)
	Force  bool
}

// AgonyBatch is a batch of agony marks.
type AgonyBatch struct {
	Marks []segment.AgonyMark
	Extra []outbox.Message
	Now   time.Time
}

// ApplyWith applies a batch of order events as app.ApplyOrders does and
// returns the changed customers and the number of events applied.
func ApplyWith(ctx context.Context, s *Store, b Batch, rescore Rescorer) ([]Update, int, error) {
	var (
		ups     []Update
		applied int
		later   []int
	)
	err := s.UpdateOrders(ctx, b.Events, b.Now, func(ob *segment.OrderBatch) ([]outbox.Message, error) {
		applied, later = ob.Apply(b.Events, b.Force)
		var msgs []outbox.Message
		var err error
		if ups, msgs, err = rescoreWith(ob.Customers, ob.ChangedCustomers, rescore); err != nil {
			return nil, err
		}
		return append(msgs, b.Extra...), nil
	})
	if err != nil {
		return nil, 0, err
	}
	if b.Later != nil {
		for _, i := range later {
			b.Later(i)
		}
	}
	return ups, applied, nil
}

// MarkAgonyWith applies a batch of agony marks as app.MarkAgony does and
// returns the changed customers and the number of marks that took effect.
func MarkAgonyWith(ctx context.Context, s *Store, b AgonyBatch, rescore Rescorer) ([]Update, int, error) {
	ids := make([]string, len(b.Marks))
	for i, m := range b.Marks {
		ids[i] = m.CustomerID
	}
	var (
		ups     []Update
		applied int
	)
	err := s.UpdateAgony(ctx, ids, b.Now, func(ab *segment.AgonyBatch) ([]outbox.Message, error) {
		applied = ab.Apply(b.Marks)
		var msgs []outbox.Message
		var err error
		if ups, msgs, err = rescoreWith(ab.Customers, ab.Flipped, rescore); err != nil {
			return nil, err
		}
		return append(msgs, b.Extra...), nil
	})
	if err != nil {
		return nil, 0, err
	}
	return ups, applied, nil
}

// SetAgonyWith marks or clears a customer's agony by hand as
// app.SetAgony does.
func SetAgonyWith(ctx context.Context, s *Store, customerID string, on bool, now time.Time, rescore Rescorer) (*Update, error) {
	var ups []Update
	err := s.UpdateAgony(ctx, []string{customerID}, now, func(ab *segment.AgonyBatch) ([]outbox.Message, error) {
		if !ab.Set(customerID, on, now) {
			return nil, ErrNotFound
		}
		var msgs []outbox.Message
		var err error
		ups, msgs, err = rescoreWith(ab.Customers, ab.Flipped, rescore)
		return msgs, err
	})
	if err != nil {
		return nil, err
	}
	return &ups[0], nil
}

func rescoreWith(cs map[string]*segment.Customer, ids []string, rescore Rescorer) ([]Update, []outbox.Message, error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	items := make([]Rescore, len(ids))
	for i, id := range ids {
		c := cs[id]
		items[i] = Rescore{Features: c.Features, Agony: c.Agony, Old: c.Score}
	}
	scores, msgs := rescore(items)
	if len(scores) != len(items) {
		return nil, nil, fmt.Errorf("rescore: %d scores for %d customers", len(scores), len(items))
	}
	ups := make([]Update, len(items))
	for i, it := range items {
		ups[i] = Update{Features: it.Features, Old: it.Old, New: scores[i]}
		cs[ids[i]].Score = &ups[i].New
	}
	return ups, msgs, nil
}
