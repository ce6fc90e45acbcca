package hot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// Redis is the hot store in Redis. Its key layout (see
// services/segmentation/README.md), under a prefix (default "boomerang:seg:"):
//
//	profile:<customer>   string  the profile, binary (see codec.go)
//	top:clv, top:spend   zset    customer → CLV / net spend (minor units)
//	segment:<segment>    zset    members, all with score 0, paged by id (BYLEX)
//	stats:segments       hash    <segment>:customers|value|clv → total
//	stats:orders         hash    <n> → customers with exactly n orders
//	summary              string  the last scoring run's summary as JSON
//	built:v2             string  time of the last rebuild; absent after a flush, during a rebuild
//	                             and after a failed one; named for the profile encoding, so that
//	                             a version that cannot read it finds none and rebuilds from SQL
type Redis struct {
	c      *redis.Client
	prefix string
}

var _ Store = (*Redis)(nil)

// NewRedis returns the hot store on c with keys under prefix.
func NewRedis(c *redis.Client, prefix string) *Redis {
	return &Redis{c: c, prefix: prefix}
}

func (r *Redis) profileKey(id string) string         { return r.prefix + "profile:" + id }
func (r *Redis) segmentKey(s segment.Segment) string { return r.prefix + "segment:" + s.String() }
func (r *Redis) boardKey(by Ranking) string {
	if by == ByCLV {
		return r.prefix + "top:clv"
	}
	return r.prefix + "top:spend"
}
func (r *Redis) segStatsKey() string   { return r.prefix + "stats:segments" }
func (r *Redis) orderStatsKey() string { return r.prefix + "stats:orders" }
func (r *Redis) summaryKey() string    { return r.prefix + "summary" }
func (r *Redis) builtKey() string      { return r.prefix + "built:v2" }

// chunk bounds the commands of one round trip.
const chunk = 1000

func (r *Redis) Put(ctx context.Context, ps []segment.Profile) error {
	for start := 0; start < len(ps); start += chunk {
		if err := r.put(ctx, ps[start:min(start+chunk, len(ps))]); err != nil {
			return err
		}
	}
	return nil
}

func (r *Redis) put(ctx context.Context, ps []segment.Profile) error {
	keys := make([]string, len(ps))
	for i, p := range ps {
		keys[i] = r.profileKey(p.CustomerID)
	}
	olds, err := r.c.MGet(ctx, keys...).Result()
	if err != nil {
		return fmt.Errorf("hot: read profiles: %w", err)
	}
	// A customer twice in one call moves from the first profile to the
	// second, as if written one after the other.
	latest := map[string]*segment.Profile{}
	delta := segment.NewPopulation()
	// One buffer holds every encoded profile of the call; each command
	// keeps its own slice of it until the pipeline is sent.
	buf := make([]byte, 0, 128*len(ps))
	_, err = r.c.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for i := range ps {
			p := &ps[i]
			old := latest[p.CustomerID]
			if old == nil && olds[i] != nil {
				s, _ := olds[i].(string)
				o := segment.Profile{}
				if err := decodeProfile([]byte(s), &o); err != nil {
					return profileError(p.CustomerID, err)
				}
				old = &o
			}
			latest[p.CustomerID] = p
			delta.Add(old, -1)
			delta.Add(p, 1)
			start := len(buf)
			buf = appendProfile(buf, p)
			pipe.Set(ctx, keys[i], buf[start:len(buf):len(buf)], 0)
			// Only what moved is written: most orders of a known customer
			// leave their segment, and often their CLV, as they were.
			for _, by := range []Ranking{ByCLV, BySpend} {
				v, ok := onBoard(p, by)
				was, wasOn := onBoard(old, by)
				switch {
				case ok && (!wasOn || v != was):
					pipe.ZAdd(ctx, r.boardKey(by), redis.Z{Score: float64(v), Member: p.CustomerID})
				case !ok && wasOn:
					pipe.ZRem(ctx, r.boardKey(by), p.CustomerID)
				}
			}
			oldSeg, oldIn := inSegment(old)
			newSeg, newIn := inSegment(p)
			if oldIn && (!newIn || oldSeg != newSeg) {
				pipe.ZRem(ctx, r.segmentKey(oldSeg), p.CustomerID)
			}
			if newIn && (!oldIn || oldSeg != newSeg) {
				pipe.ZAdd(ctx, r.segmentKey(newSeg), redis.Z{Member: p.CustomerID})
			}
		}
		for s, st := range delta.Segments {
			pipe.HIncrBy(ctx, r.segStatsKey(), s.String()+":customers", st.Customers)
			pipe.HIncrBy(ctx, r.segStatsKey(), s.String()+":value", st.Value)
			pipe.HIncrBy(ctx, r.segStatsKey(), s.String()+":clv", st.CLV)
		}
		for n, c := range delta.Orders {
			pipe.HIncrBy(ctx, r.orderStatsKey(), strconv.FormatInt(n, 10), c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("hot: write profiles: %w", err)
	}
	return nil
}

func (r *Redis) Profile(ctx context.Context, id string) (segment.Profile, error) {
	var p segment.Profile
	b, err := r.c.Get(ctx, r.profileKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return p, ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("hot: profile: %w", err)
	}
	if err := decodeProfile(b, &p); err != nil {
		return p, profileError(id, err)
	}
	return p, nil
}

func (r *Redis) Top(ctx context.Context, by Ranking, n int) ([]Ranked, error) {
	zs, err := r.c.ZRevRangeWithScores(ctx, r.boardKey(by), 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("hot: top: %w", err)
	}
	if len(zs) == 0 {
		return nil, nil
	}
	out := make([]Ranked, len(zs))
	for i, z := range zs {
		out[i] = Ranked{CustomerID: z.Member.(string), Value: int64(z.Score)}
	}
	return out, nil
}

func (r *Redis) Members(ctx context.Context, s segment.Segment, after string, n int) ([]string, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	ids, err := r.c.ZRangeArgs(ctx, redis.ZRangeArgs{Key: r.segmentKey(s), Start: start, Stop: "+", ByLex: true, Count: int64(n)}).Result()
	if err != nil {
		return nil, fmt.Errorf("hot: members: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return ids, nil
}

func (r *Redis) Population(ctx context.Context) (*segment.Population, error) {
	pop := segment.NewPopulation()
	segs, err := r.c.HGetAll(ctx, r.segStatsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("hot: population: %w", err)
	}
	for field, v := range segs {
		name, what, ok := strings.Cut(field, ":")
		s, err := segment.ParseSegment(name)
		n, nerr := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || nerr != nil {
			return nil, fmt.Errorf("hot: population field %q=%q", field, v)
		}
		st := pop.Segments[s]
		switch what {
		case "customers":
			st.Customers = n
		case "value":
			st.Value = n
		case "clv":
			st.CLV = n
		}
		pop.Segments[s] = st
	}
	for s, st := range pop.Segments {
		if st == (segment.SegmentStat{}) {
			delete(pop.Segments, s) // counters that went back to zero
		}
	}
	orders, err := r.c.HGetAll(ctx, r.orderStatsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("hot: population: %w", err)
	}
	for field, v := range orders {
		k, kerr := strconv.ParseInt(field, 10, 64)
		n, nerr := strconv.ParseInt(v, 10, 64)
		if kerr != nil || nerr != nil {
			return nil, fmt.Errorf("hot: population field %q=%q", field, v)
		}
		if n != 0 {
			pop.Orders[k] = n
		}
	}
	return pop, nil
}

func (r *Redis) SetSummary(ctx context.Context, s Summary) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := r.c.Set(ctx, r.summaryKey(), b, 0).Err(); err != nil {
		return fmt.Errorf("hot: summary: %w", err)
	}
	return nil
}

func (r *Redis) Summary(ctx context.Context) (Summary, error) {
	var s Summary
	b, err := r.c.Get(ctx, r.summaryKey()).Bytes()
	if errors.Is(err, redis.Nil) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("hot: summary: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("hot: summary: %w", err)
	}
	return s, nil
}

// Replace writes the profiles in place and builds leaderboards, segments
// and counters under temporary keys, then renames them over the live ones
// in one transaction, so readers see the old or the new state, never a
// half-built leaderboard.
func (r *Redis) Replace(ctx context.Context, ps []segment.Profile, s Summary) error {
	tmp := r.prefix + "rebuild:"
	live := map[string]string{} // temporary key → live key, for keys written
	var allLive []string
	for _, by := range []Ranking{ByCLV, BySpend} {
		allLive = append(allLive, r.boardKey(by))
	}
	for _, sg := range segment.Segments {
		allLive = append(allLive, r.segmentKey(sg))
	}
	allLive = append(allLive, r.segStatsKey(), r.orderStatsKey())
	tmpOf := func(k string) string { return tmp + strings.TrimPrefix(k, r.prefix) }
	var tmps []string
	for _, k := range allLive {
		tmps = append(tmps, tmpOf(k))
	}
	// Unmarked until it is done: a rebuild that fails half way is done
	// again at the next check rather than left in place.
	if err := r.c.Del(ctx, append(tmps, r.builtKey())...).Err(); err != nil {
		return fmt.Errorf("hot: rebuild: %w", err)
	}
	pop := segment.NewPopulation()
	for start := 0; start < len(ps); start += chunk {
		part := ps[start:min(start+chunk, len(ps))]
		buf := make([]byte, 0, 128*len(part))
		_, err := r.c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for i := range part {
				p := &part[i]
				start := len(buf)
				buf = appendProfile(buf, p)
				pipe.Set(ctx, r.profileKey(p.CustomerID), buf[start:len(buf):len(buf)], 0)
				pop.Add(p, 1)
				for _, by := range []Ranking{ByCLV, BySpend} {
					if v, ok := onBoard(p, by); ok {
						k := r.boardKey(by)
						live[tmpOf(k)] = k
						pipe.ZAdd(ctx, tmpOf(k), redis.Z{Score: float64(v), Member: p.CustomerID})
					}
				}
				if sg, ok := inSegment(p); ok {
					k := r.segmentKey(sg)
					live[tmpOf(k)] = k
					pipe.ZAdd(ctx, tmpOf(k), redis.Z{Member: p.CustomerID})
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("hot: rebuild: %w", err)
		}
	}
	summary, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = r.c.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		var segFields, orderFields []any
		for sg, st := range pop.Segments {
			segFields = append(segFields, sg.String()+":customers", st.Customers, sg.String()+":value", st.Value, sg.String()+":clv", st.CLV)
		}
		for n, c := range pop.Orders {
			orderFields = append(orderFields, strconv.FormatInt(n, 10), c)
		}
		if len(segFields) > 0 {
			live[tmpOf(r.segStatsKey())] = r.segStatsKey()
			pipe.HSet(ctx, tmpOf(r.segStatsKey()), segFields...)
		}
		if len(orderFields) > 0 {
			live[tmpOf(r.orderStatsKey())] = r.orderStatsKey()
			pipe.HSet(ctx, tmpOf(r.orderStatsKey()), orderFields...)
		}
		for _, k := range allLive {
			if _, ok := live[tmpOf(k)]; ok {
				pipe.Rename(ctx, tmpOf(k), k)
			} else {
				pipe.Del(ctx, k)
			}
		}
		pipe.Set(ctx, r.summaryKey(), summary, 0)
		pipe.Set(ctx, r.builtKey(), time.Now().UTC().Format(time.RFC3339Nano), 0)
		return nil
	})
	if err != nil {
		return fmt.Errorf("hot: rebuild: %w", err)
	}
	return r.dropProfilesNotIn(ctx, ps)
}

// dropProfilesNotIn deletes the profiles of customers the rebuild did not
// write (erased customers), so that a rebuild leaves exactly what SQL holds.
func (r *Redis) dropProfilesNotIn(ctx context.Context, ps []segment.Profile) error {
	keep := make(map[string]struct{}, len(ps))
	for i := range ps {
		keep[r.profileKey(ps[i].CustomerID)] = struct{}{}
	}
	iter := r.c.Scan(ctx, 0, r.profileKey("*"), chunk).Iterator()
	var drop []string
	for iter.Next(ctx) {
		if _, ok := keep[iter.Val()]; !ok {
			drop = append(drop, iter.Val())
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("hot: rebuild: %w", err)
	}
	for start := 0; start < len(drop); start += chunk {
		if err := r.c.Del(ctx, drop[start:min(start+chunk, len(drop))]...).Err(); err != nil {
			return fmt.Errorf("hot: rebuild: %w", err)
		}
	}
	return nil
}

func (r *Redis) Built(ctx context.Context) (bool, error) {
	n, err := r.c.Exists(ctx, r.builtKey()).Result()
	if err != nil {
		return false, fmt.Errorf("hot: %w", err)
	}
	return n == 1, nil
}
