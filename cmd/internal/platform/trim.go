package platform

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// idleTrimmer gives the Go heap's free memory back to the kernel while the
// process is idle. The runtime collects only when allocation calls for it
// (or every two minutes) and returns free memory only down to what its
// next collection target allows for (twice the live heap, plus a tenth, at
// GOGC=100), so after a burst of orders a quiet process keeps hundreds of
// megabytes of heap it does not use: the garbage of the burst, and what
// the bus lets go of as its duplicate windows (one minute) and per-subject
// caches (two minutes) expire. A trim is two collections (the second
// empties the sync.Pools the first only set aside) and a return of every
// free page: a fraction of a second of one core, taken after one, two,
// four, eight... looks in a row found the process idle, so a long quiet
// spell costs a trim per doubling of its length.
type idleTrimmer struct {
	every time.Duration // how often allocation is looked at
	quiet uint64        // bytes allocated between two looks below which the process is idle
	log   *slog.Logger
	read  func() heapSample
	trim  func()
}

// heapSample is what a look at the heap sees.
type heapSample struct {
	allocs   uint64 // bytes allocated since the process started
	released uint64 // bytes of heap returned to the kernel
}

// newIdleTrimmer looks every 30s: an idle single process allocates about
// 150 kB a second (outbox polls, consumers' pulls, metrics); a loaded one
// hundreds of megabytes.
func newIdleTrimmer(log *slog.Logger) *idleTrimmer {
	return &idleTrimmer{
		every: 30 * time.Second, quiet: 64 << 20, log: log,
		read: readHeap,
		trim: func() { runtime.GC(); debug.FreeOSMemory() },
	}
}

// run looks until ctx is done and trims after the 1st, 2nd, 4th, 8th...
// idle look in a row.
func (t *idleTrimmer) run(ctx context.Context) {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	prev := t.read()
	idle := 0 // looks in a row that found the process idle
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := t.read()
		allocated := now.allocs - prev.allocs
		prev = now
		if allocated >= t.quiet {
			idle = 0
			continue
		}
		if idle++; idle&(idle-1) != 0 {
			continue
		}
		t.trim()
		prev = t.read()
		t.log.DebugContext(ctx, "idle heap returned to the kernel", "idle_for", time.Duration(idle)*t.every,
			"returned_bytes", int64(prev.released)-int64(now.released))
	}
}

// readHeap reads the runtime's heap metrics.
func readHeap() heapSample {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return heapSample{allocs: s[0].Value.Uint64(), released: s[1].Value.Uint64()}
}
