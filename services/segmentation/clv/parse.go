package clv

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Format is the layout of a transaction file.
type Format int

const (
	// FormatAuto picks CSV when the first non-empty line has a comma and
	// whitespace-separated columns otherwise.
	FormatAuto Format = iota
	// FormatCSV is comma-separated values (RFC 4180 quoting), with or
	// without a header row.
	FormatCSV
	// FormatWhitespace is columns separated by spaces or tabs, as in the
	// CDNOW files; a header row is allowed.
	FormatWhitespace
)

// ParseFormat reads "auto", "csv" or "whitespace".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto", "":
		return FormatAuto, nil
	case "csv":
		return FormatCSV, nil
	case "whitespace", "ws", "space":
		return FormatWhitespace, nil
	}
	return 0, fmt.Errorf("format must be auto, csv or whitespace, got %q", s)
}

func (f Format) String() string {
	switch f {
	case FormatAuto:
		return "auto"
	case FormatCSV:
		return "csv"
	case FormatWhitespace:
		return "whitespace"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseOptions say how to read a transaction file. Columns are numbered
// from 1; 0 means "find it":
//   - with a header row, a column is found by its name (customer_id,
//     customer, id, date, order_date, amount, value, total, ... see
//     headerNames);
//   - without one, the customer is column 1, the date is the first other
//     column whose first value is a date, and the amount is the last column.
//
// So a three-column file (customer, date, amount) needs no options, and
// neither does CDNOW_sample.txt (master id, sample id, yyyymmdd, number of
// CDs, dollar value): customer 1, date 3, amount 5.
type ParseOptions struct {
	Format         Format
	CustomerColumn int
	DateColumn     int
	AmountColumn   int
}

// ParseError is a row of a transaction file that could not be read.
type ParseError struct {
	Line int // 1-based line of the file
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// ErrBadRow is wrapped by every ParseError about a row's content, so
// callers can tell bad data from a failing reader.
var ErrBadRow = errors.New("bad row")

// headerNames are the column names recognised in a header row, compared
// after lower-casing and dropping spaces, '_' and '-'.
var headerNames = map[string][]string{
	"customer": {"customerid", "customer", "custid", "cust", "customerno", "customernumber", "clientid", "client", "userid", "user", "id", "masterid", "buyerid", "memberid"},
	"date":     {"date", "orderdate", "purchasedate", "transactiondate", "day", "timestamp", "time", "datetime", "occurredat", "createdat", "purchasedat", "orderedat"},
	"amount":   {"amount", "value", "total", "ordertotal", "revenue", "sales", "spend", "price", "monetary", "monetaryvalue", "dollarvalue", "basetotal"},
}

// ParseTransactions reads a transaction file: one purchase per row with a
// customer id, a date and a non-negative amount. Dates are yyyy-mm-dd,
// yyyymmdd, yyyy/mm/dd, or RFC 3339 (the date in its own offset counts).
// Empty lines are skipped. The first bad row stops the parse with a
// *ParseError carrying its line number.
func ParseTransactions(r io.Reader, opts ParseOptions) ([]Transaction, error) {
	for _, c := range []int{opts.CustomerColumn, opts.DateColumn, opts.AmountColumn} {
		if c < 0 {
			return nil, fmt.Errorf("column numbers start at 1, got %d", c)
		}
	}
	br := bufio.NewReaderSize(r, 1<<16)
	format := opts.Format
	if format == FormatAuto {
		var err error
		if format, err = sniffFormat(br); err != nil {
			return nil, err
		}
	}
	p := &rowParser{opts: opts, ids: make(map[string]string)}
	switch format {
	case FormatCSV:
		return p.readCSV(br)
	case FormatWhitespace:
		return p.readFields(br)
	}
	return nil, fmt.Errorf("unknown format %v", format)
}

// sniffFormat looks at the first non-empty line (within the reader's
// buffer) without consuming it.
func sniffFormat(br *bufio.Reader) (Format, error) {
	b, err := br.Peek(br.Size())
	if len(b) == 0 && err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if bytes.IndexByte(line, ',') >= 0 {
			return FormatCSV, nil
		}
		return FormatWhitespace, nil
	}
	return FormatWhitespace, nil // empty input: no transactions either way
}

// rowParser turns rows of fields into transactions once it knows the
// columns, which it learns from the first row.
type rowParser struct {
	opts ParseOptions
	// cust, date and amount are 0-based once resolved; resolved tells.
	cust, date, amount int
	resolved           bool
	// ids interns customer ids: a customer's id is stored once however
	// many purchases they made.
	ids map[string]string
	out []Transaction
}

func (p *rowParser) readCSV(r io.Reader) ([]Transaction, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return p.out, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, &ParseError{Line: pe.Line, Err: fmt.Errorf("%w: %w", ErrBadRow, pe.Err)}
			}
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if err := p.row(rec); err != nil {
			return nil, &ParseError{Line: line, Err: err}
		}
	}
}

func (p *rowParser) readFields(r io.Reader) ([]Transaction, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var fields []string
	for line := 1; sc.Scan(); line++ {
		fields = appendFields(fields[:0], sc.Text())
		if len(fields) == 0 {
			continue
		}
		if err := p.row(fields); err != nil {
			return nil, &ParseError{Line: line, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("a line is longer than 1 MiB: %w", err)
		}
		return nil, err
	}
	return p.out, nil
}

// appendFields is strings.Fields into a reused slice: one slice for the
// whole file instead of one per line.
func appendFields(dst []string, s string) []string {
	start := -1
	for i := 0; i < len(s); i++ {
		space := s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\v' || s[i] == '\f'
		switch {
		case space && start >= 0:
			dst = append(dst, s[start:i])
			start = -1
		case !space && start < 0:
			start = i
		}
	}
	if start >= 0 {
		dst = append(dst, s[start:])
	}
	return dst
}

func (p *rowParser) row(fields []string) error {
	if !p.resolved {
		header, err := p.resolve(fields)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadRow, err)
		}
		p.resolved = true
		if header {
			return nil
		}
	}
	need := max(p.cust, p.date, p.amount) + 1
	if len(fields) < need {
		return fmt.Errorf("%w: %d columns, want at least %d", ErrBadRow, len(fields), need)
	}
	id := strings.TrimSpace(fields[p.cust])
	if id == "" {
		return fmt.Errorf("%w: column %d: empty customer id", ErrBadRow, p.cust+1)
	}
	date, err := parseDate(strings.TrimSpace(fields[p.date]))
	if err != nil {
		return fmt.Errorf("%w: column %d: %w", ErrBadRow, p.date+1, err)
	}
	amount, err := parseAmount(strings.TrimSpace(fields[p.amount]))
	if err != nil {
		return fmt.Errorf("%w: column %d: %w", ErrBadRow, p.amount+1, err)
	}
	interned, ok := p.ids[id]
	if !ok {
		interned = strings.Clone(id) // fields may share a reused buffer
		p.ids[interned] = interned
	}
	p.out = append(p.out, Transaction{CustomerID: interned, Date: date, Amount: amount})
	return nil
}

// resolve fixes the columns from the first row and says whether that row
// is a header. A row is a header when none of its fields is a date.
func (p *rowParser) resolve(fields []string) (header bool, err error) {
	header = true
	for _, f := range fields {
		if _, err := parseDate(strings.TrimSpace(f)); err == nil {
			header = false
			break
		}
	}
	cols := [3]int{p.opts.CustomerColumn - 1, p.opts.DateColumn - 1, p.opts.AmountColumn - 1}
	roles := [3]string{"customer", "date", "amount"}
	if header {
		names := make(map[string]int, len(fields))
		for i, f := range fields {
			key := strings.NewReplacer(" ", "", "_", "", "-", "").Replace(strings.ToLower(strings.TrimSpace(f)))
			if _, dup := names[key]; !dup {
				names[key] = i
			}
		}
		for k, role := range roles {
			if cols[k] >= 0 {
				continue
			}
			for _, name := range headerNames[role] {
				if i, ok := names[name]; ok {
					cols[k] = i
					break
				}
			}
			if cols[k] < 0 {
				return false, fmt.Errorf("header %q: no %s column (name it, e.g. %q, or give its number)", strings.Join(fields, ","), role, headerNames[role][0])
			}
		}
	} else {
		if cols[0] < 0 {
			cols[0] = 0
		}
		if cols[1] < 0 {
			for i, f := range fields {
				if i == cols[0] {
					continue
				}
				if _, err := parseDate(strings.TrimSpace(f)); err == nil {
					cols[1] = i
					break
				}
			}
		}
		if cols[2] < 0 {
			cols[2] = len(fields) - 1
		}
		if cols[1] < 0 {
			return false, errors.New("no date column found")
		}
	}
	if cols[0] == cols[1] || cols[0] == cols[2] || cols[1] == cols[2] {
		return false, fmt.Errorf("customer, date and amount need three different columns, got %d, %d and %d", cols[0]+1, cols[1]+1, cols[2]+1)
	}
	p.cust, p.date, p.amount = cols[0], cols[1], cols[2]
	return header, nil
}

// parseDate accepts the date forms exports use, chosen by shape so that a
// row costs one time.Parse.
func parseDate(s string) (time.Time, error) {
	var layout string
	switch {
	case len(s) == 8 && allDigits(s):
		layout = "20060102"
	case len(s) == 10 && s[4] == '-':
		layout = time.DateOnly
	case len(s) == 10 && s[4] == '/':
		layout = "2006/01/02"
	case len(s) == 19 && s[4] == '-' && s[10] == ' ':
		layout = time.DateTime
	case len(s) == 19 && s[4] == '-' && s[10] == 'T':
		layout = "2006-01-02T15:04:05"
	case len(s) > 19 && s[4] == '-' && s[10] == 'T':
		layout = time.RFC3339Nano
	default:
		return time.Time{}, fmt.Errorf("date %q: want yyyy-mm-dd, yyyymmdd, yyyy/mm/dd or RFC 3339", s)
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q: %w", s, err)
	}
	return t, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseAmount reads a plain decimal. Negative amounts (refunds) are an
// error rather than silently netted: the spend model needs purchases, and
// refunds belong subtracted from their orders before export.
func parseAmount(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("amount %q is not a number", s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("amount %q is not finite", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("amount %q is negative", s)
	}
	return v, nil
}
