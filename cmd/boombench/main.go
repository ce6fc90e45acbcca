// Command boombench is Boomerang's end-to-end load benchmark. It starts the
// single-process platform on free ports in a temporary directory, measures
// the raw JetStream publish rate of this machine, then publishes orders to
// boomerang.ingest.orders.<source> and times each one until its canonical
// event appears on the ORDERS subjects, and until points-ledger publishes
// the points it earned; then it times GetAccount calls. It prints
// throughput and latency percentiles as a table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform"
	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "boombench:", err)
		os.Exit(1)
	}
}

type options struct {
	orders     int
	customers  int
	paced      time.Duration
	database   string
	ledgerDB   string
	batch      int
	keep       bool
	cpuProfile string
	services   string
	drain      string
	memory     bool
	settle     time.Duration
	memProfile string
	importRun  bool
	parallel   int
	rounds     int
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("boombench", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.orders, "orders", 50000, "orders to publish in the throughput run")
	fs.IntVar(&o.customers, "customers", 5000, "distinct customers the orders come from")
	fs.DurationVar(&o.paced, "paced", 5*time.Second, "length of the paced latency run (at half the measured throughput)")
	fs.StringVar(&o.database, "database", "", "ingest database URL (default: SQLite in the temporary directory)")
	fs.StringVar(&o.ledgerDB, "ledger-database", "", "ledger database URL (default: SQLite in the temporary directory)")
	fs.IntVar(&o.batch, "batch", 256, "INGEST_BATCH_SIZE")
	fs.StringVar(&o.services, "services", strings.Join(platform.AllServices, ","),
		"BOOMERANG_SERVICES: the services to run (ingest alone measures it without the others sharing the cores)")
	fs.StringVar(&o.drain, "drain", "",
		"after the runs, start each of these services (ledger, segmentation; not among -services) alone on the same NATS and time how fast it applies all of ORDERS")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	fs.BoolVar(&o.memory, "memory", false,
		"instead of the throughput and latency runs, publish -orders from -customers, wait until every consumer has applied them, settle, and print the process's peak and steady resident size and Go heap")
	fs.DurationVar(&o.settle, "settle", 3*time.Minute,
		"with -memory: idle time before the steady resident size is read (past the streams' one-minute duplicate window and NATS's two-minute expiry of per-block subject state)")
	fs.StringVar(&o.memProfile, "memprofile", "", "with -memory: write a heap profile to this file after the settle")
	fs.BoolVar(&o.importRun, "import", false,
		"instead of the other runs, write -orders orders to a JSON Lines file, send them with plain SubmitOrders calls, import the file with boomctl's import into a fresh platform, and compare the two rates")
	fs.IntVar(&o.parallel, "parallel", 4, "with -import: calls in flight, for both runs")
	fs.IntVar(&o.rounds, "rounds", 1, "with -import: pairs of runs, in alternating order")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the throughput run (with -import: of the import) to this file (and of each -drain run to FILE.<service>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.cpuProfile = *cpuProfile
	if o.importRun {
		return importRun(ctx, o, out)
	}
	dir, err := os.MkdirTemp("", "boombench-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	rates := filepath.Join(dir, "rates.csv")
	if err := os.WriteFile(rates, []byte("date,currency,rate\n2020-01-01,USD,0.9\n2020-01-01,JPY,0.006\n"), 0o600); err != nil {
		return err
	}
	env := map[string]string{
		"BOOMERANG_DATA_DIR":           dir,
		"BOOMERANG_GRPC_ADDR":          "127.0.0.1:0",
		"BOOMERANG_HTTP_ADDR":          "127.0.0.1:0",
		"INGEST_WEBHOOK_ADDR":          "127.0.0.1:0",
		"BOOMERANG_EMBEDDED_NATS_ADDR": "127.0.0.1:-1",
		"BOOMERANG_BASE_CURRENCY":      "EUR",
		"BOOMERANG_FX_RATES_FILE":      rates,
		"BOOMERANG_LOG_LEVEL":          "error",
		"INGEST_BATCH_SIZE":            strconv.Itoa(o.batch),
		"BOOMERANG_SERVICES":           o.services,
	}
	if o.memory {
		// To take heap profiles while the load runs.
		env["BOOMERANG_PPROF"] = "1"
	}
	if o.database != "" {
		env["INGEST_DATABASE_URL"] = o.database
	}
	if o.ledgerDB != "" {
		env["LEDGER_DATABASE_URL"] = o.ledgerDB
	}
	p := platform.New()
	p.Logs = io.Discard
	runCtx, cancel := context.WithCancel(ctx)
	if err := p.Open(runCtx, config.Map(env)); err != nil {
		cancel()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
		p.Close()
	}()

	nc, err := nats.Connect(p.NATSURL(), p.NATSCredentials(busauth.Admin).Options()...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}

	if o.memory {
		fmt.Fprintf(os.Stderr, "profiles: http://%s/debug/pprof/ with the bearer token in %s\n", p.HTTPAddr(), filepath.Join(dir, "admin.token"))
		return memoryRun(ctx, nc, js, o, out, os.Stderr)
	}
	payloads := makePayloads(o.orders, o.customers)
	raw, err := rawPublishRate(ctx, nc, js, payloads, false)
	if err != nil {
		return fmt.Errorf("raw publish: %w", err)
	}
	rawSync, err := rawPublishRate(ctx, nc, js, payloads[:min(len(payloads), 10000)], true)
	if err != nil {
		return fmt.Errorf("raw publish: %w", err)
	}
	relay, err := relayRate(ctx, nc, js, payloads, o.batch, p.Logs)
	if err != nil {
		return fmt.Errorf("relay floor: %w", err)
	}
	drains := map[string]string{"ledger": "points-ledger", "segmentation": "segmentation"}
	var drainList []string
	for _, name := range strings.Split(o.drain, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if _, ok := drains[name]; !ok || strings.Contains(","+o.services+",", ","+name+",") {
			return fmt.Errorf("-drain %s: want ledger or segmentation, not among -services", name)
		}
		drainList = append(drainList, name)
	}
	withLedger := strings.Contains(","+o.services+",", ",ledger,")
	withSegmentation := strings.Contains(","+o.services+",", ",segmentation,")
	fmt.Fprintf(out, "single-process mode: embedded NATS, services %s, ingest on %s, ledger on %s, batch %d, %d orders from %d customers\n\n",
		o.services, dbKind(o.database), dbKind(o.ledgerDB), o.batch, o.orders, o.customers)

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
	}
	var segDrained <-chan time.Time
	if withSegmentation {
		// Every order is one canonical event on ORDERS: segmentation has
		// applied the run when its consumer has acked them all.
		if segDrained, err = drainWatch(ctx, js, "segmentation", uint64(o.orders)); err != nil {
			return err
		}
	}
	thr, err := ingestRun(ctx, nc, js, payloads, 0, withLedger)
	pprof.StopCPUProfile()
	if err != nil {
		return fmt.Errorf("throughput run: %w", err)
	}
	var segElapsed time.Duration
	if withSegmentation {
		select {
		case at := <-segDrained:
			segElapsed = at.Sub(thr.start)
		case <-time.After(10 * time.Minute):
			return errors.New("segmentation did not apply the run within 10 minutes")
		}
	}
	rate := float64(thr.n) / thr.elapsed.Seconds()
	pacedRate := rate / 2
	pacedN := int(pacedRate * o.paced.Seconds())
	pacedPayloads := makePayloadsFrom(o.orders, pacedN, o.customers)
	paced, err := ingestRun(ctx, nc, js, pacedPayloads, pacedRate, withLedger)
	if err != nil {
		return fmt.Errorf("paced run: %w", err)
	}

	// Reads are timed on a quiet platform: every consumer of ORDERS done.
	if err := quiesce(ctx, js, 2*time.Minute); err != nil {
		return err
	}
	var accountLat runResult
	if withLedger {
		if accountLat, err = getAccountRun(ctx, p.GRPCAddr(), filepath.Join(dir, "admin.token"), thr.customers, 5000); err != nil {
			return fmt.Errorf("GetAccount run: %w", err)
		}
	}

	type drained struct {
		name    string
		n       uint64
		elapsed time.Duration
	}
	var drainResults []drained
	for _, name := range drainList {
		profile := ""
		if o.cpuProfile != "" {
			profile = o.cpuProfile + "." + name
		}
		n, elapsed, err := drainRun(ctx, js, p.NATSURL(), withBusUser(env, name, p.NATSCredentials(name)), name, drains[name], profile)
		if err != nil {
			return fmt.Errorf("%s alone: %w", name, err)
		}
		drainResults = append(drainResults, drained{name, n, elapsed})
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\trate/s\tp50\tp90\tp99\tmax\t")
	fmt.Fprintf(tw, "raw JetStream publish, async (same payloads)\t%.0f\t\t\t\t\t\n", raw)
	fmt.Fprintf(tw, "raw JetStream publish, one at a time\t%.0f\t\t\t\t\t\n", rawSync)
	fmt.Fprintf(tw, "JetStream relay floor: publish, consume in batches, republish, ack\t%.0f\t\t\t\t\t\n", relay)
	fmt.Fprintf(tw, "ingest, saturated: publish → canonical event\t%.0f\t%s\t%s\t%s\t%s\t\n", rate,
		pct(thr.lat, 50), pct(thr.lat, 90), pct(thr.lat, 99), pct(thr.lat, 100))
	fmt.Fprintf(tw, "ingest, paced at %.0f/s: publish → canonical event\t%.0f\t%s\t%s\t%s\t%s\t\n", pacedRate,
		float64(paced.n)/paced.elapsed.Seconds(), pct(paced.lat, 50), pct(paced.lat, 90), pct(paced.lat, 99), pct(paced.lat, 100))
	if withSegmentation {
		fmt.Fprintf(tw, "segmentation, saturated: publish → features applied (its ORDERS consumer drained)\t%.0f\t\t\t\t\t\n",
			float64(thr.n)/segElapsed.Seconds())
	}
	for _, d := range drainResults {
		fmt.Fprintf(tw, "%s alone: applies all of ORDERS (%d events) after a start on a fresh database\t%.0f\t\t\t\t\t\n",
			d.name, d.n, float64(d.n)/d.elapsed.Seconds())
	}
	drainVerdict := func() {
		for _, d := range drainResults {
			r := float64(d.n) / d.elapsed.Seconds() / rate
			fmt.Fprintf(out, "%s alone / ingest alone = %.2f (each with the cores to itself; target: keeps up, ≥ 1.00: %s)\n", d.name, r,
				map[bool]string{true: "meets", false: "MISSES"}[r >= 1])
		}
	}
	segVerdict := func() {
		if withSegmentation {
			srate := float64(thr.n) / segElapsed.Seconds()
			fmt.Fprintf(out, "segmentation / ingest throughput, sharing the cores = %.2f (≥ 0.95, the pipeline's drain allowed: %s)\n", srate/rate,
				map[bool]string{true: "keeps up", false: "falls behind"}[srate >= 0.95*rate])
		}
	}
	if !withLedger {
		tw.Flush()
		fmt.Fprintln(out)
		segVerdict()
		drainVerdict()
		fmt.Fprintf(out, "ingest / raw async publish = %.2f (target ≥ 0.33: %s)\n", rate/raw, map[bool]string{true: "meets", false: "MISSES"}[rate >= raw/3])
		fmt.Fprintf(out, "ingest / raw one-at-a-time publish = %.2f\n", rate/rawSync)
		floorVerdict(out, rate, relay, 0.5, "ingest / relay floor")
		fmt.Fprintf(out, "relay floor / raw async publish = %.2f\n", relay/raw)
		return nil
	}
	lrate := float64(thr.n) / thr.ledgerElapsed.Seconds()
	fmt.Fprintf(tw, "ledger, saturated: publish → points earned\t%.0f\t%s\t%s\t%s\t%s\t\n", lrate,
		pct(thr.ledgerLat, 50), pct(thr.ledgerLat, 90), pct(thr.ledgerLat, 99), pct(thr.ledgerLat, 100))
	fmt.Fprintf(tw, "ledger, paced at %.0f/s: publish → points earned\t%.0f\t%s\t%s\t%s\t%s\t\n", pacedRate,
		float64(paced.n)/paced.ledgerElapsed.Seconds(), pct(paced.ledgerLat, 50), pct(paced.ledgerLat, 90), pct(paced.ledgerLat, 99), pct(paced.ledgerLat, 100))
	fmt.Fprintf(tw, "GetAccount over gRPC, one caller (%d calls)\t%.0f\t%s\t%s\t%s\t%s\t\n", len(accountLat.lat),
		float64(len(accountLat.lat))/accountLat.elapsed.Seconds(), pct(accountLat.lat, 50), pct(accountLat.lat, 90), pct(accountLat.lat, 99), pct(accountLat.lat, 100))
	tw.Flush()
	fmt.Fprintf(out, "\nledger / ingest throughput, sharing the cores = %.2f (≥ 0.95, the pipeline's drain allowed: %s)\n", lrate/rate,
		map[bool]string{true: "keeps up", false: "falls behind"}[lrate >= 0.95*rate])
	fmt.Fprintf(out, "GetAccount p99 = %s (target < 2ms)\n", pct(accountLat.lat, 99))
	segVerdict()
	drainVerdict()
	verdict := func(r float64) string {
		if rate >= r/3 {
			return "meets"
		}
		return "MISSES"
	}
	fmt.Fprintf(out, "\ningest / raw async publish = %.2f (target ≥ 0.33: %s)\n", rate/raw, verdict(raw))
	fmt.Fprintf(out, "ingest / raw one-at-a-time publish = %.2f (target ≥ 0.33: %s)\n", rate/rawSync, verdict(rawSync))
	floorVerdict(out, rate, relay, 0, "ingest / relay floor, sharing the cores")
	floorVerdict(out, lrate, relay, 0.25, "order → points / relay floor")
	p99 := pct(paced.ledgerLat, 99)
	ok := len(paced.ledgerLat) > 0 && percentile(paced.ledgerLat, 99) <= 50*time.Millisecond
	fmt.Fprintf(out, "order → points paced at half the saturated rate: p99 %s (target ≤ 50ms: %s)\n", p99,
		map[bool]string{true: "meets", false: "MISSES"}[ok])
	fmt.Fprintf(out, "relay floor / raw async publish = %.2f\n", relay/raw)
	return nil
}

// floorVerdict prints a rate against the relay floor measured in the same
// run, and against target when one is set.
func floorVerdict(out io.Writer, rate, relay, target float64, what string) {
	if target == 0 {
		fmt.Fprintf(out, "%s = %.2f\n", what, rate/relay)
		return
	}
	fmt.Fprintf(out, "%s = %.2f (target ≥ %.2f: %s)\n", what, rate/relay, target,
		map[bool]string{true: "meets", false: "MISSES"}[rate >= target*relay])
}

func dbKind(url string) string {
	if url == "" {
		return "SQLite"
	}
	return "PostgreSQL"
}

func makePayloads(n, customers int) [][]byte { return makePayloadsFrom(0, n, customers) }

// makePayloadsFrom builds n JSON orders numbered from first: a mix of
// currencies, discounts, line items, and shops.
func makePayloadsFrom(first, n, customers int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		id := first + i
		c := id % customers
		cur, total, price := "USD", "129.90", "59.95"
		if id%3 == 1 {
			cur, total, price = "JPY", "15800", "7400"
		} else if id%3 == 2 {
			cur, total, price = "EUR", "99.00", "44.50"
		}
		out[i] = []byte(fmt.Sprintf(`{"order_id":"o-%d","kind":"paid","occurred_at":"2026-11-01T10:00:00Z","currency":%q,"total":%q,`+
			`"channel":"web","discount":{"codes":["WELCOME"],"amount":"0"},`+
			`"customer":{"id":"c-%d","email":"customer%d@example.com","marketing_consent":true},`+
			`"items":[{"sku":"SKU-%d","category":"shoes","quantity":2,"price":%q}]}`,
			id, cur, total, c, c, id%97, price))
	}
	return out
}

// rawPublishRate publishes the payloads to a scratch stream on the same
// server — asynchronously, or each waiting for its ack — and returns
// messages per second until the last ack.
func rawPublishRate(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, payloads [][]byte, sync bool) (float64, error) {
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "BENCH_RAW", Subjects: []string{"bench.raw"}, Storage: jetstream.FileStorage,
	}); err != nil {
		return 0, err
	}
	defer js.DeleteStream(context.WithoutCancel(ctx), "BENCH_RAW")
	w, err := newWindow(nc, publishWindow)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for _, p := range payloads {
		if sync {
			if _, err := js.Publish(ctx, "bench.raw", p); err != nil {
				return 0, err
			}
			continue
		}
		if err := w.Publish(ctx, &nats.Msg{Subject: "bench.raw", Data: p}); err != nil {
			return 0, err
		}
	}
	if err := w.Wait(ctx); err != nil {
		return 0, err
	}
	return float64(len(payloads)) / time.Since(start).Seconds(), nil
}

// drainRun starts service alone in a second platform on the same NATS,
// with a data directory of its own, and times how fast its durable
// consumer of ORDERS (new, so it starts at the stream's beginning) applies
// everything the stream holds: the service's capacity with no other
// service sharing the cores, to set beside ingest's alone.
func drainRun(ctx context.Context, js jetstream.JetStream, natsURL string, env map[string]string, service, consumer, cpuProfile string) (uint64, time.Duration, error) {
	stream, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		return 0, 0, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	dir, err := os.MkdirTemp("", "boombench-"+service+"-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	own := maps.Clone(env)
	own["BOOMERANG_DATA_DIR"], own["NATS_URL"], own["BOOMERANG_SERVICES"] = dir, natsURL, service
	q := platform.New()
	q.Logs = io.Discard
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := q.Open(runCtx, config.Map(own)); err != nil {
		return 0, 0, err
	}
	defer q.Close()
	// Open made the consumer; it has acked nothing yet.
	drained, err := drainWatch(runCtx, js, consumer, 0)
	if err != nil {
		return 0, 0, err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, 0, err
		}
		defer pprof.StopCPUProfile()
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- q.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case at := <-drained:
		return info.State.Msgs, at.Sub(start), nil
	case <-time.After(10 * time.Minute):
		return 0, 0, errors.New("not drained after 10 minutes")
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// drainWatch sends the time at which the durable consumer name of ORDERS
// has acked n more messages than the stream holds now.
func drainWatch(ctx context.Context, js jetstream.JetStream, name string, n uint64) (<-chan time.Time, error) {
	stream, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		return nil, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	target := info.State.LastSeq + n
	cons, err := stream.Consumer(ctx, name)
	if err != nil {
		return nil, err
	}
	done := make(chan time.Time, 1)
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ci, err := cons.Info(ctx)
			if err == nil && ci.AckFloor.Stream >= target {
				done <- time.Now()
				return
			}
		}
	}()
	return done, nil
}

// publishWindow is how many publishes each publishing loop keeps awaiting
// their acks: enough to keep the server busy, never the client's cap.
const publishWindow = 4096

type runResult struct {
	start   time.Time
	n       int
	elapsed time.Duration
	lat     []time.Duration
	// Until points-ledger published the points of every order.
	ledgerElapsed time.Duration
	ledgerLat     []time.Duration
	customers     []string
}

// relayRate measures the JetStream work every order costs any ingest that
// keeps its input in a stream and publishes its output to another, with
// none of ingest's own work: the payloads are published to a scratch
// input stream, a durable pull consumer takes them in batches through the
// consumer ingest uses, each is published to a scratch output stream with
// a Nats-Msg-Id (awaiting the acks), and the batch is acked. Messages per
// second until the last is through: the ceiling of ingest on this server.
func relayRate(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, payloads [][]byte, batch int, logs io.Writer) (float64, error) {
	for _, name := range []string{"BENCH_IN", "BENCH_OUT"} {
		subj := "bench." + strings.ToLower(strings.TrimPrefix(name, "BENCH_"))
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}, Storage: jetstream.FileStorage}); err != nil {
			return 0, err
		}
		defer js.DeleteStream(context.WithoutCancel(ctx), name)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "BENCH_IN", jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy,
		MaxAckPending: batch * 8})
	if err != nil {
		return 0, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The input loop and the relay each publish through a window of their
	// own: the relay's holds one batch, which it awaits before acking.
	in, err := newWindow(nc, publishWindow)
	if err != nil {
		return 0, err
	}
	out, err := newWindow(nc, batch)
	if err != nil {
		return 0, err
	}
	var relayed atomic.Int64
	done := make(chan struct{})
	bc := natsx.NewBatchConsumer(cons, natsx.BatchOptions{MaxBatch: batch}, slog.New(slog.NewTextHandler(logs, nil)))
	go bc.Run(runCtx, func(ctx context.Context, msgs []jetstream.Msg, _ int) ([]jetstream.Msg, error) {
		for _, m := range msgs {
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			if err := out.Publish(ctx, &nats.Msg{Subject: "bench.out", Data: m.Data(),
				Header: nats.Header{jetstream.MsgIDHeader: []string{strconv.FormatUint(md.Sequence.Stream, 10)}}}); err != nil {
				return nil, err
			}
		}
		if err := out.Wait(ctx); err != nil {
			return nil, err
		}
		if relayed.Add(int64(len(msgs))) == int64(len(payloads)) {
			close(done)
		}
		return nil, nil
	})
	start := time.Now()
	for _, p := range payloads {
		if err := in.Publish(ctx, &nats.Msg{Subject: "bench.in", Data: p}); err != nil {
			return 0, err
		}
	}
	if err := in.Wait(ctx); err != nil {
		return 0, err
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("only %d of %d relayed after 5 minutes", relayed.Load(), len(payloads))
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return float64(len(payloads)) / time.Since(start).Seconds(), nil
}

// ingestRun publishes payloads (at rate per second, or as fast as
// possible when 0) and waits for every canonical event, and with ledger
// for every order's points.
func ingestRun(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, payloads [][]byte, rate float64, ledger bool) (runResult, error) {
	n := len(payloads)
	sent := make([]int64, n)
	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	var first int
	fmt.Sscanf(orderIDOf(payloads[0]), "o-%d", &first)
	var got, gotLedger atomic.Int64
	all, allLedger := make(chan struct{}), make(chan struct{})
	var ledgerLat []time.Duration
	customers := map[string]bool{}
	lsub, err := nc.Subscribe("boomerang.ledger.v1.earned.>", func(m *nats.Msg) {
		now := time.Now().UnixNano()
		ev := &ledgerv1.LedgerEvent{}
		if proto.Unmarshal(m.Data, ev) != nil {
			return
		}
		var id int
		if _, err := fmt.Sscanf(ev.GetEarned().GetOrderId(), "o-%d", &id); err != nil || id < first || id >= first+n {
			return
		}
		mu.Lock()
		ledgerLat = append(ledgerLat, time.Duration(now-atomic.LoadInt64(&sent[id-first])))
		customers[ev.GetCustomerId()] = true
		mu.Unlock()
		if gotLedger.Add(1) == int64(n) {
			close(allLedger)
		}
	})
	if err != nil {
		return runResult{}, err
	}
	defer lsub.Unsubscribe()
	lsub.SetPendingLimits(-1, -1)
	sub, err := nc.Subscribe("boomerang.orders.v1.>", func(m *nats.Msg) {
		now := time.Now().UnixNano()
		ev := &ordersv1.OrderEvent{}
		if proto.Unmarshal(m.Data, ev) != nil {
			return
		}
		var id int
		if _, err := fmt.Sscanf(ev.GetOrderId(), "o-%d", &id); err != nil || id < first || id >= first+n {
			return
		}
		mu.Lock()
		lat = append(lat, time.Duration(now-atomic.LoadInt64(&sent[id-first])))
		mu.Unlock()
		if got.Add(1) == int64(n) {
			close(all)
		}
	})
	if err != nil {
		return runResult{}, err
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)

	w, err := newWindow(nc, publishWindow)
	if err != nil {
		return runResult{}, err
	}
	start := time.Now()
	for i, p := range payloads {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		// The clock starts once the window lets the order go, so a wait
		// for an ack is not counted as ingest's latency.
		if err := w.Reserve(ctx); err != nil {
			return runResult{}, err
		}
		atomic.StoreInt64(&sent[i], time.Now().UnixNano())
		if err := w.Publish(ctx, &nats.Msg{Subject: "boomerang.ingest.orders.bench", Data: p}); err != nil {
			return runResult{}, err
		}
	}
	if err := w.Wait(ctx); err != nil {
		return runResult{}, err
	}
	select {
	case <-all:
	case <-time.After(10 * time.Minute):
		return runResult{}, fmt.Errorf("only %d of %d canonical events after 10 minutes", got.Load(), n)
	case <-ctx.Done():
		return runResult{}, ctx.Err()
	}
	elapsed := time.Since(start)
	if !ledger {
		close(allLedger)
	}
	select {
	case <-allLedger:
	case <-time.After(10 * time.Minute):
		return runResult{}, fmt.Errorf("only %d of %d points-earned events after 10 minutes", gotLedger.Load(), n)
	case <-ctx.Done():
		return runResult{}, ctx.Err()
	}
	ledgerElapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sort.Slice(ledgerLat, func(i, j int) bool { return ledgerLat[i] < ledgerLat[j] })
	ids := make([]string, 0, len(customers))
	for c := range customers {
		ids = append(ids, c)
	}
	return runResult{start: start, n: n, elapsed: elapsed, lat: lat, ledgerElapsed: ledgerElapsed, ledgerLat: ledgerLat, customers: ids}, nil
}

// quiesce waits until every consumer of the ORDERS stream has applied
// and acknowledged everything.
func quiesce(ctx context.Context, js jetstream.JetStream, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		s, err := js.Stream(ctx, "ORDERS")
		if err != nil {
			return err
		}
		busy := false
		for name := range s.ConsumerNames(ctx).Name() {
			c, err := s.Consumer(ctx, name)
			if err != nil {
				return err
			}
			if info := c.CachedInfo(); info.NumPending > 0 || info.NumAckPending > 0 {
				busy = true
			}
		}
		if !busy {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consumers of ORDERS still busy after %v", limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// getAccountRun times GetAccount calls for the given customers, one at a
// time, over the platform's gRPC port.
func getAccountRun(ctx context.Context, addr, tokenFile string, customers []string, calls int) (runResult, error) {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return runResult{}, err
	}
	conn, err := grpcx.Dial(addr, grpcx.ClientOptions{Token: strings.TrimSpace(string(tok))})
	if err != nil {
		return runResult{}, err
	}
	defer conn.Close()
	client := ledgerv1.NewLedgerServiceClient(conn)
	lat := make([]time.Duration, 0, calls)
	start := time.Now()
	for i := 0; i < calls && len(customers) > 0; i++ {
		t := time.Now()
		if _, err := client.GetAccount(ctx, &ledgerv1.GetAccountRequest{CustomerId: customers[i%len(customers)]}); err != nil {
			return runResult{}, err
		}
		lat = append(lat, time.Since(t))
	}
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return runResult{n: len(lat), elapsed: elapsed, lat: lat}, nil
}

func orderIDOf(p []byte) string {
	const key = `"order_id":"`
	s := string(p)
	for i := 0; i+len(key) < len(s); i++ {
		if s[i:i+len(key)] == key {
			j := i + len(key)
			k := j
			for k < len(s) && s[k] != '"' {
				k++
			}
			return s[j:k]
		}
	}
	return ""
}

func pct(sorted []time.Duration, p int) string {
	if len(sorted) == 0 {
		return "-"
	}
	return percentile(sorted, p).Round(10 * time.Microsecond).String()
}

// percentile is the p-th percentile of sorted, which is not empty.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}
