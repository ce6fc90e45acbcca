package platform

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"testing"
	"time"
)

// TestIdleTrimmerRun plays a process through busy and idle spells: it is
// trimmed after the 1st, 2nd, 4th and 8th idle look in a row, and a busy
// look starts the count again.
func TestIdleTrimmerRun(t *testing.T) {
	const busy, idle = 500, 5 // bytes allocated between two looks
	looks := []uint64{busy, idle, idle, idle, idle, idle, idle, idle, idle, idle, busy, idle, idle, idle}
	want := []int{1, 2, 4, 8, 11, 12} // the looks, counted from 0, that end in a trim
	// The samples the trimmer reads in turn: one before the first look,
	// one per look, and one after each trim.
	samples := []heapSample{{}}
	lookOf := []int{-1} // the look each sample is read at
	allocs := uint64(0)
	for i, a := range looks {
		allocs += a
		samples = append(samples, heapSample{allocs: allocs})
		lookOf = append(lookOf, i)
		if slices.Contains(want, i) {
			samples = append(samples, heapSample{allocs: allocs, released: 1 << 20})
			lookOf = append(lookOf, i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reads := 0
	var got []int
	tr := &idleTrimmer{
		every: time.Millisecond, quiet: 100, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Once the samples run out the test is over: the ticker may still
		// win the race with the cancellation once, and what follows is not
		// counted.
		read: func() heapSample {
			if reads == len(samples) {
				return samples[reads-1]
			}
			s := samples[reads]
			if reads++; reads == len(samples) {
				cancel()
			}
			return s
		},
		trim: func() {
			if ctx.Err() == nil {
				got = append(got, lookOf[reads-1])
			}
		},
	}
	done := make(chan struct{})
	go func() { defer close(done); tr.run(ctx) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after the last look")
	}
	if !slices.Equal(got, want) {
		t.Errorf("trimmed at looks %v, want %v", got, want)
	}
}

// The real trim returns the free heap to the kernel.
func TestIdleTrimmerReturnsFreeHeap(t *testing.T) {
	garbage := make([][]byte, 64)
	for i := range garbage {
		garbage[i] = make([]byte, 1<<20)
	}
	runtime.KeepAlive(garbage)
	garbage = nil
	before := readHeap()
	newIdleTrimmer(slog.New(slog.NewTextHandler(io.Discard, nil))).trim()
	after := readHeap()
	if returned := after.released - before.released; returned < 48<<20 {
		t.Errorf("%d bytes of heap returned to the kernel, want most of the 64 MiB let go", returned)
	}
}
