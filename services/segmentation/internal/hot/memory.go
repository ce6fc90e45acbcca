package hot

import (
	"context"
	"sync"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// Memory is the in-process hot store of the single process without Redis.
type Memory struct {
	mu       sync.RWMutex
	profiles map[string]segment.Profile
	members  map[segment.Segment]map[string]struct{}
	pop      *segment.Population
	summary  Summary
	built    bool
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-process store.
func NewMemory() *Memory {
	m := &Memory{}
	m.reset()
	return m
}

func (m *Memory) reset() {
	m.profiles = map[string]segment.Profile{}
	m.members = map[segment.Segment]map[string]struct{}{}
	m.pop = segment.NewPopulation()
	m.summary = Summary{}
}

func (m *Memory) Put(_ context.Context, ps []segment.Profile) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range ps {
		m.put(p)
	}
	return nil
}

func (m *Memory) put(p segment.Profile) {
	var old *segment.Profile
	if o, ok := m.profiles[p.CustomerID]; ok {
		old = &o
	}
	m.pop.Add(old, -1)
	m.pop.Add(&p, 1)
	if s, ok := inSegment(old); ok {
		delete(m.members[s], p.CustomerID)
	}
	if s, ok := inSegment(&p); ok {
		if m.members[s] == nil {
			m.members[s] = map[string]struct{}{}
		}
		m.members[s][p.CustomerID] = struct{}{}
	}
	m.profiles[p.CustomerID] = p
}

func (m *Memory) Profile(_ context.Context, id string) (segment.Profile, error) {
	m.mu.RLock()
	p, ok := m.profiles[id]
	m.mu.RUnlock()
	if !ok {
		return segment.Profile{}, ErrNotFound
	}
	return p, nil
}

func (m *Memory) Top(_ context.Context, by Ranking, n int) ([]Ranked, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t := topN{n: n}
	for id, p := range m.profiles {
		if v, ok := onBoard(&p, by); ok {
			t.offer(Ranked{CustomerID: id, Value: v})
		}
	}
	return t.out, nil
}

func (m *Memory) Members(_ context.Context, s segment.Segment, after string, n int) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	f := firstN{n: n, after: after}
	for id := range m.members[s] {
		f.offer(id)
	}
	return f.out, nil
}

func (m *Memory) Population(context.Context) (*segment.Population, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := segment.NewPopulation()
	for k, v := range m.pop.Segments {
		out.Segments[k] = v
	}
	for k, v := range m.pop.Orders {
		out.Orders[k] = v
	}
	return out, nil
}

func (m *Memory) SetSummary(_ context.Context, s Summary) error {
	m.mu.Lock()
	m.summary = s
	m.mu.Unlock()
	return nil
}

func (m *Memory) Summary(context.Context) (Summary, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.summary, nil
}

func (m *Memory) Replace(_ context.Context, ps []segment.Profile, s Summary) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reset()
	for _, p := range ps {
		m.put(p)
	}
	m.summary, m.built = s, true
	return nil
}

func (m *Memory) Built(context.Context) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.built, nil
}
