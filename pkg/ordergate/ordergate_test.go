package ordergate_test

import (
	"math/rand/v2"
	"testing"

	"github.com/boomerang-loyalty/boomerang/pkg/ordergate"
)

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name      string
		last, seq int32
		want      ordergate.Decision
	}{
		{"first event of a new order", 0, 1, ordergate.Apply},
		{"next event", 3, 4, ordergate.Apply},
		{"unnumbered", 7, 0, ordergate.Apply},
		{"redelivery of the last", 4, 4, ordergate.Duplicate},
		{"redelivery of an older one", 4, 2, ordergate.Duplicate},
		{"one missing", 2, 4, ordergate.Later},
		{"order never seen, second event", 0, 2, ordergate.Later},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ordergate.Decide(tc.last, tc.seq); got != tc.want {
				t.Errorf("Decide(%d, %d) = %v, want %v", tc.last, tc.seq, got, tc.want)
			}
		})
	}
}

// Whatever order a batch holds an order's events in, Sequence puts them in
// sequence order, and a gate fed in that order applies each exactly once.
func TestSequenceAppliesEveryPermutationInOneBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 500; round++ {
		var evs []ordergate.Event
		orders := 1 + rng.IntN(4)
		want := 0
		for o := 0; o < orders; o++ {
			n := 1 + rng.IntN(5)
			want += n
			for s := 1; s <= n; s++ {
				k := ordergate.Key{Source: "shop", OrderID: string(rune('a' + o))}
				evs = append(evs, ordergate.Event{Key: k, Seq: int32(s)})
				if rng.IntN(3) == 0 { // a redelivered copy
					evs = append(evs, ordergate.Event{Key: k, Seq: int32(s)})
				}
			}
		}
		evs = append(evs, ordergate.Event{Key: ordergate.Key{Source: "shop", OrderID: "legacy"}})
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })

		g := ordergate.New()
		applied, unnumbered := 0, 0
		seen := map[int]bool{}
		for _, i := range ordergate.Sequence(evs) {
			if seen[i] {
				t.Fatalf("round %d: index %d twice", round, i)
			}
			seen[i] = true
			switch g.Decide(evs[i].Key, evs[i].Seq) {
			case ordergate.Apply:
				if evs[i].Seq == 0 {
					unnumbered++
				} else {
					applied++
				}
			case ordergate.Later:
				t.Fatalf("round %d: %+v put off with its whole history in the batch", round, evs[i])
			}
		}
		if len(seen) != len(evs) || applied != want || unnumbered != 1 {
			t.Fatalf("round %d: %d of %d indices, applied %d numbered (want %d) and %d unnumbered", round, len(seen), len(evs), applied, want, unnumbered)
		}
	}
}

// Events of different orders keep their relative delivery order.
func TestSequenceKeepsOtherOrdersInPlace(t *testing.T) {
	a, b := ordergate.Key{Source: "s", OrderID: "a"}, ordergate.Key{Source: "s", OrderID: "b"}
	evs := []ordergate.Event{{a, 2}, {b, 1}, {a, 1}, {b, 2}}
	got := ordergate.Sequence(evs)
	want := []int{2, 1, 0, 3}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Sequence = %v, want %v", got, want)
		}
	}
}
