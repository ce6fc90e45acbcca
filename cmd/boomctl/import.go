package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"text/tabwriter"
	"time"
	_ "time/tzdata" // --timezone works without the system's zone files

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/orderimport"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
)

// importFlags are the flags of `orders import`.
type importFlags struct {
	format     string
	source     string
	timezone   string
	batch      int
	parallel   int
	retries    int
	checkpoint string
	rejects    string
	progress   string
}

var sourcePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// checkpointEvery bounds how often the checkpoint file is rewritten while
// an import runs; it is written at the end, and on interruption, too.
const checkpointEvery = 500 * time.Millisecond

func (a *app) ordersImportCommand() *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Backfill order history from Shopify or WooCommerce CSV exports or JSON Lines",
		Long: `Import order history into order-ingest (IngestService.SubmitOrders): every order of the
files becomes its events, sent in batches of --batch with --parallel calls in flight. Files are
read as a stream, so their size does not matter; "-" reads stdin.

Formats (--format, found from the content by default):
  shopify      Shopify's order export (Orders > Export, CSV): one row per line item, the
               order's columns on its first row. The order id is the "Id" column.
  woocommerce  WooCommerce orders as the Customer/Order/Coupon Export extension writes them in
               its "Default" or "Default - One Row per Item" format. Times are the shop's local
               time: give its zone with --timezone.
  jsonl        One canonical JSON order event a line, the JSON order-ingest reads from the bus.
Columns are found by their header's names, in any order; others are ignored.

Each CSV order yields its paid event (placed if it was never paid), a refunded event for what
was refunded (each WooCommerce refund with its id; Shopify's export has only the amount, sent
as refund "import"), and a cancelled event if it was cancelled; WooCommerce drafts and trashed
orders are skipped. The order id is the platform's numeric id, the one its webhooks send, so
a webhook sent again for an old order finds its payment a duplicate of the import. Importing a
file again changes nothing: every event comes back a duplicate.

The events of one order are sent in file order: in one call, or a later call only once the
earlier one is answered. A call that fails for a passing reason is retried (--retries); a
request refused for an invalid order is sent again without it, and the order is rejected.

With --checkpoint, the file records the position before which every order is done; the same
command run again resumes there (a finished file is skipped). Ctrl-C finishes the calls in
flight and writes the checkpoint. Rejections go to --rejects as JSON Lines (file, row,
order_id, kind, refund_id, reason, message); row counts CSV records from the header (row 1), as
a spreadsheet numbers them, or JSON lines.

Progress goes to stderr: one updating line on a terminal, a line every few seconds otherwise.
A summary follows on stdout.

Exits 0 when every order was read and answered, rejections included (the summary counts them,
--rejects lists them); 1 when the import stopped before the end (a call kept failing, the
platform refused the token, Ctrl-C): run it again with the same --checkpoint to go on.`,
		Example: `  boomctl orders import --source shop-us --checkpoint import.ckpt --rejects rejects.jsonl orders_export_1.csv orders_export_2.csv
  boomctl orders import --source shop-eu --timezone Europe/Berlin woocommerce-orders.csv
  zcat history.jsonl.gz | boomctl orders import --source inhouse -`,
		Args: cobra.MinimumNArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, files []string) error {
			return a.importOrders(cmd, &f, files)
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&f.format, "format", "auto", "file format: auto, shopify, woocommerce or jsonl")
	fs.StringVar(&f.source, "source", "", "the shop the orders come from, as its webhooks name it (required for CSV; JSON lines may name their own)")
	fs.StringVar(&f.timezone, "timezone", "UTC", "time zone of times written without an offset (WooCommerce's), e.g. Europe/Berlin")
	fs.IntVar(&f.batch, "batch", orderimport.MaxBatch, "events per SubmitOrders call, 1 to 500")
	fs.IntVar(&f.parallel, "parallel", 4, "SubmitOrders calls in flight")
	fs.IntVar(&f.retries, "retries", 8, "retries of a call that failed for a passing reason (unavailable, deadline) before the import stops")
	fs.StringVar(&f.checkpoint, "checkpoint", "", "file recording how far the import got; an import with the same file resumes there")
	fs.StringVar(&f.rejects, "rejects", "", "append rejected orders to this file as JSON Lines")
	fs.StringVar(&f.progress, "progress", "auto", "progress on stderr: auto, bar, lines or none")
	return cmd
}

// importFile is one FILE argument on its way.
type importFile struct {
	name   string // as given
	path   string // absolute; "-" for stdin
	size   int64  // -1 for stdin
	format orderimport.Format
	state  *orderimport.FileState
	start  orderimport.Position
	skip   bool               // done before this run
	this   orderimport.Counts // this run's
}

func (a *app) importOrders(cmd *cobra.Command, f *importFlags, names []string) error {
	ctx := cmd.Context()
	format := orderimport.Format("")
	if f.format != "auto" {
		var ok bool
		if format, ok = orderimport.ParseFormat(f.format); !ok {
			return usagef("--format: want auto, shopify, woocommerce or jsonl, got %q", f.format)
		}
	}
	if f.source != "" && !sourcePattern.MatchString(f.source) {
		return usagef("--source %q: lower-case letters, digits, - and _", f.source)
	}
	if f.batch < 1 || f.batch > orderimport.MaxBatch {
		return usagef("--batch: want 1 to %d, got %d", orderimport.MaxBatch, f.batch)
	}
	if f.parallel < 1 || f.parallel > 64 {
		return usagef("--parallel: want 1 to 64, got %d", f.parallel)
	}
	if f.retries < 0 {
		return usagef("--retries: want 0 or more, got %d", f.retries)
	}
	loc, err := time.LoadLocation(f.timezone)
	if err != nil {
		return usagef("--timezone: %v", err)
	}
	switch f.progress {
	case "auto", "bar", "lines", "none":
	default:
		return usagef("--progress: want auto, bar, lines or none, got %q", f.progress)
	}
	for _, n := range names {
		if n == "-" && (len(names) > 1 || f.checkpoint != "") {
			return usagef(`"-" (stdin) must be the only file, without --checkpoint`)
		}
	}

	cp := &orderimport.Checkpoint{}
	if f.checkpoint != "" {
		if cp, err = orderimport.LoadCheckpoint(f.checkpoint); err != nil {
			return err
		}
		if cp.Source != "" && cp.Source != f.source {
			return usagef("--source %q: the checkpoint %s is of an import from %q", f.source, f.checkpoint, cp.Source)
		}
		cp.Source = f.source
	}

	// Open every file first: a mistake in the last one is better found
	// before the first is sent.
	var files []*importFile
	var readers []io.Reader
	defer func() {
		for _, r := range readers {
			closeReader(r)
		}
	}()
	for _, name := range names {
		file, r, err := a.openImportFile(cmd, name, format, f, cp)
		if err != nil {
			return err
		}
		files, readers = append(files, file), append(readers, r)
	}

	var rejects *rejectWriter
	if f.rejects != "" {
		out, err := os.OpenFile(f.rejects, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("--rejects: %w", err)
		}
		defer out.Close()
		rejects = &rejectWriter{w: bufio.NewWriter(out), f: out}
	}

	conn, err := a.dial(cmd)
	if err != nil {
		return err
	}
	defer conn.Close()
	retries := f.retries
	if retries == 0 {
		retries = -1 // the importer's "never"; its zero is the default
	}
	im := orderimport.New(ingestv1.NewIngestServiceClient(conn), orderimport.Config{Batch: f.batch, Parallel: f.parallel, Retries: retries})

	prog := newProgress(a.stderr, f.progress, files)
	stopProgress := prog.start(im)
	started := time.Now()
	shown := 0 // rejections told on stderr, without --rejects

	var runErr error
	for i, file := range files {
		if file.skip {
			prog.println(fmt.Sprintf("%s: already imported (see %s)", file.name, f.checkpoint))
			continue
		}
		prog.current(i)
		r, err := a.importReader(file, readers[i], f, loc)
		if err != nil {
			runErr = fmt.Errorf("%s: %w", file.name, err)
			break
		}
		base := orderimport.Counts{}
		if file.state != nil {
			base = file.state.Counts
		}
		lastSave := time.Time{}
		hooks := orderimport.Hooks{
			Rejected: func(rj orderimport.Rejection) error {
				if rejects != nil {
					return rejects.write(file.name, rj)
				}
				if shown < 20 {
					prog.println(fmt.Sprintf("rejected: %s row %d order %s%s: %s: %s", file.name, rj.Row, dash(rj.OrderID), kindNote(rj), rj.Reason, rj.Message))
				} else if shown == 20 {
					prog.println("more rejections: keep them all with --rejects FILE")
				}
				shown++
				return nil
			},
			Committed: func(pos orderimport.Position, c orderimport.Counts) error {
				file.this = c
				if file.state == nil {
					return nil
				}
				file.state.Position, file.state.Counts = pos, base.Add(c)
				if time.Since(lastSave) < checkpointEvery {
					return nil
				}
				lastSave = time.Now()
				return saveCheckpoint(cp, f.checkpoint, rejects)
			},
		}
		_, err = im.Run(ctx, r, hooks)
		if file.state != nil {
			file.state.Done = err == nil
			if serr := saveCheckpoint(cp, f.checkpoint, rejects); serr != nil && err == nil {
				err = serr
			}
		}
		if err != nil {
			runErr = err
			break
		}
	}
	stopProgress()
	if rejects != nil {
		if err := rejects.flush(); err != nil && runErr == nil {
			runErr = fmt.Errorf("--rejects: %w", err)
		}
	}
	if err := a.printImportSummary(files, f, time.Since(started)); err != nil {
		return err
	}
	return a.importError(runErr, f.checkpoint)
}

// openImportFile opens one FILE argument, tells its format and finds it
// in the checkpoint.
func (a *app) openImportFile(cmd *cobra.Command, name string, format orderimport.Format, f *importFlags, cp *orderimport.Checkpoint) (*importFile, io.Reader, error) {
	file := &importFile{name: name, path: "-", size: -1, format: format}
	var r io.Reader
	var head []byte
	if name == "-" {
		br := bufio.NewReaderSize(cmd.InOrStdin(), 64<<10)
		head, _ = br.Peek(64 << 10)
		r = br
	} else {
		fh, err := os.Open(name)
		if err != nil {
			return nil, nil, err
		}
		head = make([]byte, 64<<10)
		n, err := fh.ReadAt(head, 0)
		if err != nil && err != io.EOF {
			fh.Close()
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		head = head[:n]
		if file.path, err = filepath.Abs(name); err != nil {
			fh.Close()
			return nil, nil, err
		}
		r = fh
	}
	if file.format == "" {
		detected, err := orderimport.Detect(head)
		if err != nil {
			closeReader(r)
			return nil, nil, fmt.Errorf("%s: %w (or give --format)", name, err)
		}
		file.format = detected
	}
	if file.format != orderimport.JSONL && f.source == "" {
		closeReader(r)
		return nil, nil, usagef("--source is required for %s CSV files (%s)", file.format, name)
	}
	if fh, ok := r.(*os.File); ok {
		size, hash, err := orderimport.Identify(fh)
		if err != nil {
			fh.Close()
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		file.size = size
		if f.checkpoint != "" {
			st, err := cp.State(file.path, size, hash, file.format)
			if err != nil {
				fh.Close()
				return nil, nil, fmt.Errorf("%w; remove %s to start over", err, f.checkpoint)
			}
			file.state, file.start, file.skip = st, st.Position, st.Done
		}
	}
	return file, r, nil
}

func closeReader(r io.Reader) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

func (a *app) importReader(file *importFile, r io.Reader, f *importFlags, loc *time.Location) (orderimport.Reader, error) {
	opts := orderimport.Options{Source: f.source, Location: loc}
	if rs, ok := r.(io.ReadSeeker); ok && file.start.Offset > 0 {
		return orderimport.Resume(file.format, rs, file.start, opts)
	}
	return orderimport.Open(file.format, r, opts)
}

func kindNote(rj orderimport.Rejection) string {
	switch {
	case rj.RefundID != "":
		return " (" + rj.Kind + " " + rj.RefundID + ")"
	case rj.Kind != "":
		return " (" + rj.Kind + ")"
	}
	return ""
}

// saveCheckpoint writes the checkpoint after the rejections it covers are
// safely in the rejects file.
func saveCheckpoint(cp *orderimport.Checkpoint, path string, rejects *rejectWriter) error {
	if path == "" {
		return nil
	}
	if rejects != nil {
		if err := rejects.sync(); err != nil {
			return fmt.Errorf("--rejects: %w", err)
		}
	}
	if err := cp.Save(path); err != nil {
		return fmt.Errorf("--checkpoint: %w", err)
	}
	return nil
}

// importError turns how an import ended into what boomctl reports: a
// call that failed for good is the call's error, with its hints, after a
// line on how to go on.
func (a *app) importError(err error, checkpoint string) error {
	if err == nil {
		return nil
	}
	again := "run the same command again to resume from " + checkpoint
	if checkpoint == "" {
		again = "without --checkpoint, running it again starts from the beginning (what was done comes back as duplicates)"
	}
	if errors.Is(err, orderimport.ErrInterrupted) {
		return fmt.Errorf("import interrupted; %s", again)
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		fmt.Fprintf(a.stderr, "boomctl: import stopped; %s\n", again)
		return &callError{method: "SubmitOrders", addr: a.addr, err: se.GRPCStatus().Err()}
	}
	return fmt.Errorf("import stopped: %w; %s", err, again)
}

// rejectWriter appends rejections to the --rejects file.
type rejectWriter struct {
	w *bufio.Writer
	f *os.File
}

type rejectLine struct {
	File string `json:"file"`
	orderimport.Rejection
}

func (r *rejectWriter) write(file string, rj orderimport.Rejection) error {
	b, err := json.Marshal(rejectLine{File: file, Rejection: rj})
	if err != nil {
		return err
	}
	_, err = r.w.Write(append(b, '\n'))
	return err
}

func (r *rejectWriter) flush() error { return r.w.Flush() }

// sync makes the rejections written so far durable, before a checkpoint
// says their rows are done.
func (r *rejectWriter) sync() error {
	if err := r.w.Flush(); err != nil {
		return err
	}
	return r.f.Sync()
}

// importSummary is the summary's JSON form.
type importSummary struct {
	Files   []importFileSummary `json:"files"`
	Total   orderimport.Counts  `json:"total"`
	Seconds float64             `json:"seconds"`
	Rejects string              `json:"rejects_file,omitempty"`
}

type importFileSummary struct {
	File   string             `json:"file"`
	Format orderimport.Format `json:"format"`
	// Counts are of every run of a checkpointed import; ThisRun of this
	// one.
	Counts  orderimport.Counts `json:"counts"`
	ThisRun orderimport.Counts `json:"this_run"`
	Done    bool               `json:"done"`
}

func (a *app) printImportSummary(files []*importFile, f *importFlags, took time.Duration) error {
	s := importSummary{Seconds: took.Seconds(), Rejects: f.rejects}
	var thisRun orderimport.Counts
	for _, file := range files {
		fs := importFileSummary{File: file.name, Format: file.format, Counts: file.this, ThisRun: file.this}
		if file.state != nil {
			fs.Counts, fs.Done = file.state.Counts, file.state.Done
		}
		s.Files = append(s.Files, fs)
		s.Total = s.Total.Add(fs.Counts)
		thisRun = thisRun.Add(file.this)
	}
	if a.jsonOutput() {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tFORMAT\tORDERS\tEVENTS\tACCEPTED\tDUPLICATE\tREJECTED")
	for _, fs := range s.Files {
		c := fs.Counts
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", fs.File, fs.Format, c.Orders, c.Events, c.Accepted, c.Duplicate, c.Rejected)
	}
	if len(s.Files) > 1 {
		c := s.Total
		fmt.Fprintf(tw, "total\t\t%d\t%d\t%d\t%d\t%d\n", c.Orders, c.Events, c.Accepted, c.Duplicate, c.Rejected)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	rate := 0.0
	if took > 0 {
		rate = float64(thisRun.Events) / took.Seconds()
	}
	fmt.Fprintf(a.stdout, "This run: %d events in %s (%.0f events/s).", thisRun.Events, took.Round(time.Millisecond), rate)
	if s.Total.Rejected > 0 {
		fmt.Fprintf(a.stdout, " %d rejected", s.Total.Rejected)
		if s.Total.Unreadable > 0 {
			fmt.Fprintf(a.stdout, " (%d orders unreadable)", s.Total.Unreadable)
		}
		if f.rejects != "" {
			fmt.Fprintf(a.stdout, ": see %s", f.rejects)
		}
		fmt.Fprint(a.stdout, ".")
	}
	if s.Total.Skipped > 0 {
		fmt.Fprintf(a.stdout, " %d orders skipped (drafts, trashed: no event).", s.Total.Skipped)
	}
	fmt.Fprintln(a.stdout)
	return nil
}
