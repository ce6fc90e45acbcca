package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// memoryTargetMB (MiB) is the single process's steady resident size the memory
// run holds it to.
const memoryTargetMB = 300

// procMemory is what /proc/self/status says of this process: the
// platform's, since boombench runs it in process.
type procMemory struct {
	rss, hwm uint64 // bytes: resident now, peak resident
	files    uint64 // bytes of rss that map files: the program's code, SQLite's shared memory
}

func readProcMemory() (procMemory, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return procMemory{}, err
	}
	defer f.Close()
	return parseProcStatus(f)
}

// parseProcStatus reads VmRSS and VmHWM, and RssFile and RssShmem where
// the kernel has them (in kB), from a /proc/PID/status.
func parseProcStatus(r io.Reader) (procMemory, error) {
	var m procMemory
	found := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM" && key != "RssFile" && key != "RssShmem") {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) != 2 || fields[1] != "kB" {
			return m, fmt.Errorf("%s: unexpected %q", key, val)
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %w", key, err)
		}
		switch key {
		case "VmRSS":
			m.rss = kb << 10
			found++
		case "VmHWM":
			m.hwm = kb << 10
			found++
		default:
			m.files += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if found != 2 {
		return m, fmt.Errorf("VmRSS and VmHWM: found %d of 2", found)
	}
	return m, nil
}

// memorySampler records the peak of the Go heap in use once a second
// (the kernel keeps the peak resident size itself, VmHWM).
type memorySampler struct {
	mu       sync.Mutex
	peakHeap uint64
	stop     chan struct{}
	done     chan struct{}
}

func startMemorySampler(progress io.Writer, published func() int) *memorySampler {
	s := &memorySampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for i := 1; ; i++ {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			s.mu.Lock()
			s.peakHeap = max(s.peakHeap, ms.HeapInuse)
			s.mu.Unlock()
			if i%10 == 0 {
				pm, _ := readProcMemory()
				fmt.Fprintf(progress, "%s published %d, RSS %s, heap in use %s\n",
					time.Now().Format(time.TimeOnly), published(), mb(pm.rss), mb(ms.HeapInuse))
			}
		}
	}()
	return s
}

func (s *memorySampler) Stop() uint64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakHeap
}

func mb(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// memoryRun publishes o.orders orders from o.customers customers through
// the single process as fast as it takes them, waits until every consumer
// of ORDERS has applied them, lets the process settle for o.settle, and
// prints the resident size and Go heap at each point: whether memory
// stays bounded under a long load. Orders are built as they are sent, so
// boombench's own share of the process stays a few megabytes.
func memoryRun(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, o options, out, progress io.Writer) error {
	idle, err := readProcMemory()
	if err != nil {
		return err
	}
	w, err := newWindow(nc, publishWindow)
	if err != nil {
		return err
	}
	stream, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	// Every order is one canonical event on ORDERS.
	target := info.State.LastSeq + uint64(o.orders)
	var mu sync.Mutex
	published := 0
	sampler := startMemorySampler(progress, func() int { mu.Lock(); defer mu.Unlock(); return published })
	start := time.Now()
	const chunk = 1000
	for first := 0; first < o.orders; first += chunk {
		for _, p := range makePayloadsFrom(first, min(chunk, o.orders-first), o.customers) {
			if err := w.Publish(ctx, &nats.Msg{Subject: "boomerang.ingest.orders.bench", Data: p}); err != nil {
				sampler.Stop()
				return err
			}
		}
		mu.Lock()
		published = first + min(chunk, o.orders-first)
		mu.Unlock()
	}
	if err := w.Wait(ctx); err != nil {
		sampler.Stop()
		return err
	}
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			sampler.Stop()
			return err
		}
		if info.State.LastSeq >= target {
			break
		}
		select {
		case <-ctx.Done():
			sampler.Stop()
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := quiesce(ctx, js, time.Hour); err != nil {
		sampler.Stop()
		return err
	}
	elapsed := time.Since(start)
	loaded, err := readProcMemory()
	if err != nil {
		sampler.Stop()
		return err
	}
	var loadedMS runtime.MemStats
	runtime.ReadMemStats(&loadedMS)
	fmt.Fprintf(progress, "%s all applied; settling for %s\n", time.Now().Format(time.TimeOnly), o.settle)
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
		sampler.Stop()
		return ctx.Err()
	}
	peakHeap := sampler.Stop()
	steady, err := readProcMemory()
	if err != nil {
		return err
	}
	var steadyMS runtime.MemStats
	runtime.ReadMemStats(&steadyMS)
	// The live heap: what a collection keeps, taken after the resident
	// sizes above so that forcing it changes none of them.
	runtime.GC()
	var liveMS runtime.MemStats
	runtime.ReadMemStats(&liveMS)
	if o.memProfile != "" {
		f, err := os.Create(o.memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, "single-process mode: embedded NATS, services %s, %d orders from %d customers, applied by every consumer in %s (%.0f orders/s)\n\n",
		o.services, o.orders, o.customers, elapsed.Round(time.Second), float64(o.orders)/elapsed.Seconds())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	// What the Go runtime holds from the kernel, less what it gave back,
	// is at most its resident share; of the rest of RSS, mapped files are
	// the program's code and SQLite's shared memory, and the anonymous
	// rest is SQLite's page caches and other allocations of the pure-Go
	// SQLite, which allocates outside the Go heap.
	outside := func(pm procMemory, ms runtime.MemStats) string {
		goRes := ms.Sys - ms.HeapReleased
		if pm.rss < goRes+pm.files {
			return "0 MiB"
		}
		return mb(pm.rss - goRes - pm.files)
	}
	fmt.Fprintln(tw, "point\tRSS\tGo heap in use\tGo heap idle, not returned\tGo runtime, not returned\tSQLite and other non-Go\tmapped files\t")
	fmt.Fprintf(tw, "idle, before the load\t%s\t\t\t\t\t%s\t\n", mb(idle.rss), mb(idle.files))
	fmt.Fprintf(tw, "peak during the load\t%s\t%s\t\t\t\t\t\n", mb(steady.hwm), mb(peakHeap))
	fmt.Fprintf(tw, "all applied\t%s\t%s\t%s\t%s\t%s\t%s\t\n", mb(loaded.rss), mb(loadedMS.HeapInuse),
		mb(loadedMS.HeapIdle-loadedMS.HeapReleased), mb(loadedMS.Sys-loadedMS.HeapReleased), outside(loaded, loadedMS), mb(loaded.files))
	fmt.Fprintf(tw, "steady, %s later\t%s\t%s\t%s\t%s\t%s\t%s\t\n", o.settle, mb(steady.rss), mb(steadyMS.HeapInuse),
		mb(steadyMS.HeapIdle-steadyMS.HeapReleased), mb(steadyMS.Sys-steadyMS.HeapReleased), outside(steady, steadyMS), mb(steady.files))
	fmt.Fprintf(tw, "live Go heap after a collection\t\t%s\t\t\t\t\t\n", mb(liveMS.HeapAlloc))
	tw.Flush()
	// The embedded server keeps state per subject of each stream, and the
	// subjects carry the customer: what the customer count costs it.
	var subjects []string
	for name := range js.StreamNames(ctx).Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		subjects = append(subjects, fmt.Sprintf("%s %d", name, info.State.NumSubjects))
	}
	sort.Strings(subjects)
	fmt.Fprintf(out, "\nsubjects per stream: %s\n", strings.Join(subjects, ", "))
	fmt.Fprintf(out, "steady RSS = %s (target < %d MiB: %s)\n", mb(steady.rss), memoryTargetMB,
		map[bool]string{true: "meets", false: "MISSES"}[steady.rss < memoryTargetMB<<20])
	return nil
}
