package orderimport

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
)

func newCSVReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	// Exports differ in how many trailing columns they fill, and
	// spreadsheets that touched a file leave stray quotes: both are read,
	// not refused.
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	return cr
}

// csvRows reads records and knows where it stands in the file.
type csvRows struct {
	cr   *csv.Reader
	base Position // where cr started
	rows int64    // records cr returned
}

// newCSVRows starts reading at at; at the beginning of a file it skips a
// UTF-8 byte order mark.
func newCSVRows(r io.Reader, at Position) (*csvRows, error) {
	if at.Offset == 0 {
		br := bufio.NewReader(r)
		if b, err := br.Peek(len(utf8BOM)); err == nil && string(b) == string(utf8BOM) {
			if _, err := br.Discard(len(utf8BOM)); err != nil {
				return nil, err
			}
			at.Offset += int64(len(utf8BOM))
		}
		r = br
	}
	return &csvRows{cr: newCSVReader(r), base: at}, nil
}

func (c *csvRows) position() Position {
	return Position{Offset: c.base.Offset + c.cr.InputOffset(), Row: c.base.Row + c.rows}
}

// read returns the next record and its row number. A record the CSV
// parser cannot read is returned as a *RowError, and reading goes on
// after it; other errors (io.EOF, I/O) end the file.
func (c *csvRows) read() ([]string, int64, error) {
	rec, err := c.cr.Read()
	if err == io.EOF {
		return nil, 0, err
	}
	c.rows++
	row := c.base.Row + c.rows
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return nil, row, rowErr(ReasonMalformed, "CSV: %v", pe.Err)
	}
	if err != nil {
		return nil, row, err
	}
	return rec, row, nil
}

// columns finds cells by their header name, whatever the column order,
// ignoring case and surrounding space.
type columns map[string]int

func newColumns(header []string) columns {
	c := make(columns, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, string(utf8BOM))
		}
		name := strings.ToLower(strings.TrimSpace(h))
		if _, dup := c[name]; !dup {
			c[name] = i
		}
	}
	return c
}

func (c columns) has(name string) bool { _, ok := c[name]; return ok }

// missing returns the names of required columns the header lacks.
func (c columns) missing(names ...string) []string {
	var out []string
	for _, n := range names {
		if !c.has(n) {
			out = append(out, n)
		}
	}
	return out
}

// get returns a record's cell, trimmed; "" when the column or the cell
// is absent.
func (c columns) get(rec []string, name string) string {
	i, ok := c[name]
	if !ok || i >= len(rec) {
		return ""
	}
	return cell(rec[i])
}

// cell trims a value and undoes the quote exports put before a leading
// = + - or @ so that spreadsheets do not run it as a formula.
func cell(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 1 && s[0] == '\'' && strings.ContainsRune("=+-@", rune(s[1])) {
		s = s[1:]
	}
	return s
}

// amount reads a decimal in the currency's major unit; "" is no amount.
func amount(field, text, currency string) (*commonv1.Money, error) {
	if text == "" {
		return nil, nil
	}
	minor, err := money.Parse(text, currency)
	if err != nil {
		if errors.Is(err, money.ErrUnknownCurrency) {
			return nil, rowErr(ReasonUnknownCurrency, "%s: %v", field, err)
		}
		return nil, rowErr(ReasonInvalid, "%s: %v", field, err)
	}
	return &commonv1.Money{MinorUnits: minor, Currency: currency}, nil
}

// currencyCode checks a currency column: three upper-case letters of a
// known currency.
func currencyCode(field, s string) (string, error) {
	if s == "" {
		return "", rowErr(ReasonInvalid, "%s: empty", field)
	}
	if !money.Known(s) {
		return "", rowErr(ReasonUnknownCurrency, "%s: %q is not an ISO 4217 currency", field, s)
	}
	return s, nil
}

// timeLayouts are the ways exports write a time: with an offset
// (Shopify), or in the shop's local time (WooCommerce).
var timeLayouts = []struct {
	layout string
	local  bool
}{
	{"2006-01-02 15:04:05 -0700", false},
	{time.RFC3339Nano, false},
	{"2006-01-02 15:04:05", true},
	{"2006-01-02T15:04:05", true},
	{"2006-01-02 15:04", true},
	{"2006-01-02", true},
}

// parseTime reads a time; a time without an offset is in loc.
func parseTime(field, s string, loc *time.Location) (time.Time, error) {
	for _, l := range timeLayouts {
		var t time.Time
		var err error
		if l.local {
			t, err = time.ParseInLocation(l.layout, s, loc)
		} else {
			t, err = time.Parse(l.layout, s)
		}
		if err == nil {
			return t, nil
		}
	}
	return time.Time{}, rowErr(ReasonInvalid, "%s: %q is not a time (want e.g. 2026-03-01 10:00:00 +0100 or 2026-03-01 10:00:00)", field, s)
}

// orderID checks a platform's numeric order id and keeps it as text:
// Shopify's ids pass 2^53, which a float would round.
func orderID(field, s string) (string, error) {
	if s == "" {
		return "", rowErr(ReasonInvalid, "%s: empty; the platform's numeric order id is required", field)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", rowErr(ReasonInvalid, "%s: %q is not a numeric order id (a spreadsheet may have rewritten it, e.g. as 1.2E+13)", field, s)
		}
	}
	return s, nil
}

// quantity reads a line item's quantity.
func quantity(field, s string) (int64, error) {
	var q int64
	if s == "" || len(s) > 9 {
		return 0, rowErr(ReasonInvalid, "%s: %q is not a quantity", field, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, rowErr(ReasonInvalid, "%s: %q is not a quantity", field, s)
		}
		q = q*10 + int64(s[i]-'0')
	}
	return q, nil
}

// truncate shortens s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// country keeps a two-letter country code and drops anything else (a
// country's name): the input rules want ISO 3166-1 alpha-2.
func country(s string) string {
	if len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' {
		return s
	}
	return ""
}

// checkHeader fails on a header that lacks required columns.
func checkHeader(format Format, cols columns, required ...string) error {
	if m := cols.missing(required...); len(m) > 0 {
		return fmt.Errorf("%s CSV: the header lacks %s", format, strings.Join(m, ", "))
	}
	return nil
}

// discountInput is an order's discount, nil when it had none: exports
// write a zero amount on orders without one, and a zero discount is not a
// discounted purchase.
func discountInput(codes []string, field, text, currency string) (*ingestv1.DiscountInput, error) {
	amt, err := amount(field, text, currency)
	if err != nil {
		return nil, err
	}
	if len(codes) == 0 && amt.GetMinorUnits() == 0 {
		return nil, nil
	}
	return &ingestv1.DiscountInput{Codes: codes, Amount: amt}, nil
}

// orderRows reads an export whose orders may span several consecutive
// rows (one per line item), an order at a time: the rows that share the
// value of key.
type orderRows struct {
	rows *csvRows
	cols columns
	key  string

	pending    []string // the first row of the next order, read ahead
	pendingRow int64
	pendingErr error
	end        Position // after the last order returned
}

func newOrderRows(rows *csvRows, cols columns, key string) orderRows {
	return orderRows{rows: rows, cols: cols, key: key, end: rows.position()}
}

// Position is where the order after the last one returned starts.
func (g *orderRows) Position() Position { return g.end }

// first returns the read-ahead row or reads one.
func (g *orderRows) first() ([]string, int64, error) {
	if g.pending != nil || g.pendingErr != nil {
		rec, row, err := g.pending, g.pendingRow, g.pendingErr
		g.pending, g.pendingErr = nil, nil
		return rec, row, err
	}
	return g.rows.read()
}

// next reads the next order's rows and maps them with mapRows; a row that
// cannot be read is an Order with its error.
func (g *orderRows) next(mapRows func([][]string) (string, []*ingestv1.Order, error)) (*Order, error) {
	first, row, err := g.first()
	if err != nil {
		if re, ok := err.(*RowError); ok {
			g.end = g.rows.position()
			return &Order{Row: row, Err: re}, nil
		}
		return nil, err
	}
	key := g.cols.get(first, g.key)
	group := [][]string{first}
	for {
		before := g.rows.position()
		rec, r, err := g.rows.read()
		if err == io.EOF {
			g.end = g.rows.position()
			break
		}
		if _, ok := err.(*RowError); ok || (err == nil && g.cols.get(rec, g.key) != key) {
			g.pending, g.pendingRow, g.pendingErr, g.end = rec, r, err, before
			break
		}
		if err != nil {
			return nil, err
		}
		group = append(group, rec)
	}
	o := &Order{Row: row}
	o.ID, o.Events, o.Err = mapRows(group)
	return o, nil
}
