// Package orderimport backfills order history into order-ingest: it reads
// a shop's order export — Shopify's order CSV, WooCommerce's order CSV
// (the Customer/Order/Coupon Export "Default" formats) or canonical JSON
// Lines — as a stream of orders, maps each to its events (placed or paid,
// refunded, cancelled), and submits them with SubmitOrders in parallel
// batches while keeping every order's events in order.
//
// Memory stays constant whatever the file's size: a reader holds one
// order (CSV) or line (JSON Lines) at a time, and the importer a bounded
// window of batches. Positions are byte offsets and row numbers, so an
// import can resume where a checkpoint says everything before was done.
package orderimport

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
)

// Format is a kind of order file.
type Format string

// The formats a Reader reads.
const (
	JSONL       Format = "jsonl"
	Shopify     Format = "shopify"
	WooCommerce Format = "woocommerce"
)

// ParseFormat reads a format's name as an operator types it.
func ParseFormat(s string) (Format, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "jsonl", "ndjson", "json":
		return JSONL, true
	case "shopify":
		return Shopify, true
	case "woocommerce", "woo":
		return WooCommerce, true
	}
	return "", false
}

// Position is how far into a file an import is: the bytes and the rows
// (CSV records, header included, or JSON lines) before the next order.
type Position struct {
	Offset int64 `json:"offset"`
	Row    int64 `json:"row"`
}

// Order is one order as read from a file: its events, in the order they
// must be ingested, or why its rows could not be read.
type Order struct {
	// Row is the row number (1-based, as a spreadsheet numbers them; for
	// JSON Lines the line) where the order's first row is.
	Row int64
	// ID is the order's id on its platform, "" when it could not be read.
	ID     string
	Events []*ingestv1.Order
	// Err is set when the rows could not be mapped to events; it is a
	// *RowError. The order is then reported rejected and nothing is sent.
	Err error
}

// RowError is why rows could not be read into an order. Reason uses
// order-ingest's vocabulary: malformed (not readable at all), invalid (a
// field out of its rules), unknown_currency.
type RowError struct {
	Reason  string
	Message string
}

func (e *RowError) Error() string { return e.Reason + ": " + e.Message }

// Reasons for rows rejected before anything is sent.
const (
	ReasonMalformed       = "malformed"
	ReasonInvalid         = "invalid"
	ReasonUnknownCurrency = "unknown_currency"
	ReasonSourceMismatch  = "source_mismatch"
)

func rowErr(reason, format string, args ...any) *RowError {
	return &RowError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Reader reads orders one at a time.
type Reader interface {
	// Next returns the next order; io.EOF after the last. Other errors
	// end the reading (the file cannot be read on).
	Next() (*Order, error)
	// Position is where the reader stands: after the last order Next
	// returned, before the next one.
	Position() Position
}

// Options are what a reader needs beyond the file.
type Options struct {
	// Source names the shop on every event (JSON Lines may name it on
	// each line instead; a line naming another source is rejected).
	Source string
	// Location is the time zone of times written without an offset
	// (WooCommerce writes the shop's local time); nil means UTC.
	Location *time.Location
}

func (o Options) location() *time.Location {
	if o.Location == nil {
		return time.UTC
	}
	return o.Location
}

// ErrUnknownFormat is returned by Detect for content it does not
// recognise.
var ErrUnknownFormat = errors.New("not a known order file: want JSON Lines, Shopify's or WooCommerce's order CSV")

var errEmptyFile = errors.New("empty file: no header row")

// utf8BOM is what spreadsheet-friendly exports put before the header.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Detect tells the format from a file's first bytes (its first line at
// least): JSON Lines start with an object, the CSV exports by their
// header's column names.
func Detect(head []byte) (Format, error) {
	head = bytes.TrimPrefix(head, utf8BOM)
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return JSONL, nil
	}
	line, _, _ := bytes.Cut(head, []byte("\n"))
	cr := csv.NewReader(bytes.NewReader(line))
	cr.LazyQuotes = true
	header, err := cr.Read()
	if err != nil {
		return "", ErrUnknownFormat
	}
	cols := newColumns(header)
	switch {
	case cols.has(shopifyName) && cols.has(shopifyFinancialStatus):
		return Shopify, nil
	case cols.has(wooOrderID) && cols.has(wooOrderTotal):
		return WooCommerce, nil
	}
	return "", ErrUnknownFormat
}

// Open returns a reader of format over r from its beginning.
func Open(format Format, r io.Reader, o Options) (Reader, error) {
	return open(format, r, nil, Position{}, o)
}

// Resume returns a reader of format over r from at, a position an
// earlier reader of the same file reported. CSV readers read the header
// from the beginning first.
func Resume(format Format, r io.ReadSeeker, at Position, o Options) (Reader, error) {
	if at.Offset == 0 {
		return open(format, r, nil, Position{}, o)
	}
	var header []string
	if format != JSONL {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		cr := newCSVReader(bufio.NewReader(r))
		h, err := cr.Read()
		if err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
		header = h
	}
	if _, err := r.Seek(at.Offset, io.SeekStart); err != nil {
		return nil, err
	}
	return open(format, r, header, at, o)
}

func open(format Format, r io.Reader, header []string, at Position, o Options) (Reader, error) {
	switch format {
	case JSONL:
		return newJSONLReader(r, at, o), nil
	case Shopify:
		return newShopifyReader(r, header, at, o)
	case WooCommerce:
		return newWooReader(r, header, at, o)
	}
	return nil, fmt.Errorf("unknown format %q", format)
}
