package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/orderimport"
	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform"
	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
)

// importTarget is the share of plain SubmitOrders throughput the import
// of a file must reach.
const importTarget = 0.8

// importSource is the shop the benchmark's orders come from.
const importSource = "bench"

// benchOrder is one order of the import benchmark: paid, and every
// twentieth refunded in part.
type benchOrder struct {
	id, customer        int
	currency, total, px string
	refund              bool
}

func benchOrderAt(i, customers int) benchOrder {
	o := benchOrder{id: i, customer: i % customers, currency: "USD", total: "129.90", px: "59.95", refund: i%20 == 7}
	switch i % 3 {
	case 1:
		o.currency, o.total, o.px = "JPY", "15800", "7400"
	case 2:
		o.currency, o.total, o.px = "EUR", "99.00", "44.50"
	}
	return o
}

func (o benchOrder) refundAmount() string {
	switch o.currency {
	case "JPY":
		return "1000"
	}
	return "10.00"
}

// writePaid and writeRefund write the order's events in order-ingest's
// JSON shape, one a line.
func (o benchOrder) writePaid(w *bufio.Writer) {
	fmt.Fprintf(w, `{"order_id":"o-%d","kind":"paid","occurred_at":"2026-11-01T10:00:00Z","currency":%q,"total":%q,`+
		`"channel":"web","customer":{"id":"c-%d","email":"customer%d@example.com","marketing_consent":true},`+
		`"items":[{"sku":"SKU-%d","category":"shoes","quantity":2,"price":%q}]}`+"\n",
		o.id, o.currency, o.total, o.customer, o.customer, o.id%97, o.px)
}

func (o benchOrder) writeRefund(w *bufio.Writer) {
	fmt.Fprintf(w, `{"order_id":"o-%d","kind":"refunded","occurred_at":"2026-11-03T10:00:00Z","refund":{"id":"r-1","amount":%q,"currency":%q}}`+"\n",
		o.id, o.refundAmount(), o.currency)
}

// events are the same orders as protobuf, for the plain SubmitOrders run.
func (o benchOrder) events() []*ingestv1.Order {
	m := func(text string) *commonv1.Money {
		minor, err := money.Parse(text, o.currency)
		if err != nil {
			panic(err) // the texts above are valid amounts
		}
		return &commonv1.Money{MinorUnits: minor, Currency: o.currency}
	}
	id := "o-" + strconv.Itoa(o.id)
	c := strconv.Itoa(o.customer)
	out := []*ingestv1.Order{{
		Source: importSource, OrderId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID,
		OccurredAt: timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)), Total: m(o.total), Channel: "web",
		Customer: &ingestv1.CustomerInput{PlatformCustomerId: "c-" + c, Email: "customer" + c + "@example.com", MarketingConsent: ptrTrue()},
		Items:    []*ingestv1.LineItemInput{{Sku: "SKU-" + strconv.Itoa(o.id%97), Category: "shoes", Quantity: 2, UnitPrice: m(o.px)}},
	}}
	if o.refund {
		out = append(out, &ingestv1.Order{
			Source: importSource, OrderId: id, Kind: ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED,
			OccurredAt: timestamppb.New(time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)),
			Refund:     &ingestv1.RefundInput{RefundId: "r-1", Amount: m(o.refundAmount())},
		})
	}
	return out
}

func ptrTrue() *bool { t := true; return &t }

// refundLag is how many orders later a refund's line comes in the file,
// so that with parallel batches an order's payment and refund are often
// in different calls.
const refundLag = 3

// writeImportFile writes n orders as JSON Lines, streaming, and returns
// the number of events and the file's size.
func writeImportFile(path string, n, customers int) (events int, size int64, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n+refundLag; i++ {
		if i < n {
			benchOrderAt(i, customers).writePaid(w)
			events++
		}
		if j := i - refundLag; j >= 0 && j < n {
			if o := benchOrderAt(j, customers); o.refund {
				o.writeRefund(w)
				events++
			}
		}
	}
	if err := w.Flush(); err != nil {
		return 0, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	return events, st.Size(), f.Close()
}

// benchPlatform is a fresh single process in a directory of its own.
type benchPlatform struct {
	*platform.Main
	dir  string
	stop func()
}

func startBenchPlatform(ctx context.Context, o options) (*benchPlatform, error) {
	dir, err := os.MkdirTemp("", "boombench-import-")
	if err != nil {
		return nil, err
	}
	rates := filepath.Join(dir, "rates.csv")
	if err := os.WriteFile(rates, []byte("date,currency,rate\n2020-01-01,USD,0.9\n2020-01-01,JPY,0.006\n"), 0o600); err != nil {
		return nil, err
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
	if o.database != "" {
		env["INGEST_DATABASE_URL"] = o.database
	}
	p := platform.New()
	p.Logs = io.Discard
	runCtx, cancel := context.WithCancel(ctx)
	if err := p.Open(runCtx, config.Map(env)); err != nil {
		cancel()
		os.RemoveAll(dir)
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	return &benchPlatform{Main: p, dir: dir, stop: func() {
		cancel()
		<-done
		p.Close()
		if !o.keep {
			os.RemoveAll(dir)
		}
	}}, nil
}

func (p *benchPlatform) client() (ingestv1.IngestServiceClient, func(), error) {
	tok, err := os.ReadFile(filepath.Join(p.dir, "admin.token"))
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpcx.Dial(p.GRPCAddr(), grpcx.ClientOptions{Token: strings.TrimSpace(string(tok)), DefaultTimeout: time.Minute})
	if err != nil {
		return nil, nil, err
	}
	return ingestv1.NewIngestServiceClient(conn), func() { conn.Close() }, nil
}

// submitRun sends the orders with plain SubmitOrders calls: batches of up
// to 500 events, an order's events always in one batch, from parallel
// callers. It is the rate the import is held against.
func submitRun(ctx context.Context, client ingestv1.IngestServiceClient, n, customers, parallel int) (int, time.Duration, error) {
	batches := make(chan []*ingestv1.Order, parallel)
	go func() {
		defer close(batches)
		var b []*ingestv1.Order
		for i := 0; i < n; i++ {
			evs := benchOrderAt(i, customers).events()
			if len(b)+len(evs) > orderimport.MaxBatch {
				select {
				case batches <- b:
				case <-ctx.Done():
					return
				}
				b = nil
			}
			b = append(b, evs...)
		}
		if len(b) > 0 {
			select {
			case batches <- b:
			case <-ctx.Done():
			}
		}
	}()
	var accepted atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				resp, err := client.SubmitOrders(ctx, &ingestv1.SubmitOrdersRequest{Orders: b})
				if err != nil {
					once.Do(func() { firstErr = err })
					continue
				}
				for _, r := range resp.GetResults() {
					if r.GetOutcome() != ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED {
						once.Do(func() { firstErr = fmt.Errorf("order %s: %s %s", r.GetOrderId(), r.GetReason(), r.GetMessage()) })
						continue
					}
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(accepted.Load()), time.Since(start), firstErr
}

// importRun is the import benchmark: it writes a JSON Lines file of
// -orders orders, sends the same orders with plain SubmitOrders calls to a
// fresh platform, imports the file with boomctl's import code into
// another fresh platform, and sets the two rates side by side. With
// -rounds above 1 it repeats the pair in alternating order (A B B A ...),
// so that a machine whose load drifts during the run favours neither.
func importRun(ctx context.Context, o options, out io.Writer) error {
	dir, err := os.MkdirTemp("", "boombench-file-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "orders.jsonl")
	events, size, err := writeImportFile(file, o.orders, o.customers)
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	fmt.Fprintf(out, "single-process mode: embedded NATS, services %s, ingest on %s, %d orders (%d events) from %d customers, "+
		"batches of %d, %d calls in flight, %d round(s); the file is %.1f MiB\n\n",
		o.services, dbKind(o.database), o.orders, events, o.customers, orderimport.MaxBatch, o.parallel, max(o.rounds, 1), float64(size)/(1<<20))

	var grpcTook, importTook time.Duration
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tmeasure\tevents/s\tseconds\t")
	for round := range max(o.rounds, 1) {
		first, second := "grpc", "import"
		if round%2 == 1 {
			first, second = second, first
		}
		for _, m := range []string{first, second} {
			var took time.Duration
			var err error
			if m == "grpc" {
				took, err = measureSubmit(ctx, o, events)
				grpcTook += took
				fmt.Fprintf(tw, "%d\tgRPC SubmitOrders, %d callers, batches of %d\t%.0f\t%.1f\t\n", round+1, o.parallel, orderimport.MaxBatch, float64(events)/took.Seconds(), took.Seconds())
			} else {
				profile := ""
				if round == 0 {
					profile = o.cpuProfile
				}
				took, err = measureImport(ctx, o, file, events, profile)
				importTook += took
				fmt.Fprintf(tw, "%d\torders import of the JSON Lines file (read, decode, batch, submit)\t%.0f\t%.1f\t\n", round+1, float64(events)/took.Seconds(), took.Seconds())
			}
			if err != nil {
				return err
			}
		}
	}
	tw.Flush()
	ratio := grpcTook.Seconds() / importTook.Seconds()
	fmt.Fprintf(out, "\nimport / SubmitOrders = %.2f (target ≥ %.2f: %s)\n", ratio, importTarget,
		map[bool]string{true: "meets", false: "MISSES"}[ratio >= importTarget])
	return nil
}

// measureSubmit times plain SubmitOrders calls of every order on a fresh
// platform.
func measureSubmit(ctx context.Context, o options, events int) (time.Duration, error) {
	p, err := startBenchPlatform(ctx, o)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	client, closeConn, err := p.client()
	if err != nil {
		return 0, err
	}
	defer closeConn()
	sent, took, err := submitRun(ctx, client, o.orders, o.customers, o.parallel)
	if err != nil {
		return 0, fmt.Errorf("SubmitOrders run: %w", err)
	}
	if sent != events {
		return 0, fmt.Errorf("SubmitOrders run: %d events accepted, want %d", sent, events)
	}
	return took, nil
}

// measureImport times the import of the file on a fresh platform, from
// opening the file to the last answer.
func measureImport(ctx context.Context, o options, file string, events int, cpuProfile string) (time.Duration, error) {
	p, err := startBenchPlatform(ctx, o)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	client, closeConn, err := p.client()
	if err != nil {
		return 0, err
	}
	defer closeConn()
	if cpuProfile != "" {
		pf, err := os.Create(cpuProfile)
		if err != nil {
			return 0, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := orderimport.Open(orderimport.JSONL, f, orderimport.Options{Source: importSource})
	if err != nil {
		return 0, err
	}
	counts, err := orderimport.New(client, orderimport.Config{Batch: orderimport.MaxBatch, Parallel: o.parallel}).Run(ctx, r, orderimport.Hooks{})
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	if counts.Accepted != int64(events) {
		return 0, fmt.Errorf("import: %+v, want %d accepted", counts, events)
	}
	return took, nil
}
