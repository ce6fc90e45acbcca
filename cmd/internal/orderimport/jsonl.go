package orderimport

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/services/ingest/orderjson"
)

// MaxLineBytes bounds one JSON line; a longer line is rejected as
// too_large (order-ingest's bus limit is smaller still).
const MaxLineBytes = 4 << 20

// ReasonTooLarge is a line above MaxLineBytes.
const ReasonTooLarge = "too_large"

// jsonlReader reads canonical JSON orders, one event a line, in
// order-ingest's JSON shape (services/ingest/orderjson). Consecutive lines
// of the same order make one Order.
type jsonlReader struct {
	br   *bufio.Reader
	opts Options
	pos  Position // after the last line read
	end  Position // after the last order returned
	buf  []byte   // a line longer than br's buffer

	pending *jline
}

// jline is one decoded line.
type jline struct {
	row int64
	ev  *ingestv1.Order
	err error
	end Position // after the line
}

func newJSONLReader(r io.Reader, at Position, o Options) *jsonlReader {
	return &jsonlReader{br: bufio.NewReaderSize(r, 256<<10), opts: o, pos: at, end: at}
}

func (j *jsonlReader) Position() Position { return j.end }

// line returns the next non-blank line, decoded; io.EOF at the end.
func (j *jsonlReader) line() (*jline, error) {
	for {
		b, tooLong, err := j.readLine()
		if err != nil && len(b) == 0 && !tooLong {
			return nil, err // io.EOF, or a read error
		}
		j.pos.Row++
		l := &jline{row: j.pos.Row, end: j.pos}
		switch {
		case tooLong:
			l.err = rowErr(ReasonTooLarge, "line longer than %d bytes", MaxLineBytes)
		case len(bytes.TrimSpace(b)) == 0:
			if err != nil {
				return nil, err
			}
			continue
		default:
			l.ev, l.err = j.decode(b)
		}
		return l, nil
	}
}

// readLine reads up to and including the next newline (or the end of
// the file) and counts its bytes; a line above MaxLineBytes is skipped
// whole and reported as too long.
func (j *jsonlReader) readLine() ([]byte, bool, error) {
	j.buf = j.buf[:0]
	tooLong := false
	for {
		b, err := j.br.ReadSlice('\n')
		j.pos.Offset += int64(len(b))
		if err == bufio.ErrBufferFull {
			if !tooLong {
				if len(j.buf)+len(b) > MaxLineBytes {
					tooLong, j.buf = true, j.buf[:0]
				} else {
					j.buf = append(j.buf, b...)
				}
			}
			continue
		}
		if tooLong || len(j.buf)+len(b) > MaxLineBytes {
			return nil, true, err
		}
		if len(j.buf) > 0 {
			j.buf = append(j.buf, b...)
			b = j.buf
		}
		return b, false, err
	}
}

func (j *jsonlReader) decode(b []byte) (*ingestv1.Order, error) {
	ev, err := orderjson.Decode(b)
	if err != nil {
		reason := ReasonInvalid
		switch {
		case errors.Is(err, orderjson.ErrSyntax):
			reason = ReasonMalformed
		case errors.Is(err, money.ErrUnknownCurrency):
			reason = ReasonUnknownCurrency
		}
		return ev, rowErr(reason, "%v", err)
	}
	switch {
	case ev.GetSource() == "" && j.opts.Source == "":
		return ev, rowErr(ReasonInvalid, "source: the line names no source and none was given")
	case ev.GetSource() == "":
		ev.Source = j.opts.Source
	case j.opts.Source != "" && ev.GetSource() != j.opts.Source:
		return ev, rowErr(ReasonSourceMismatch, "source: the line names %q, the import is for %q", ev.GetSource(), j.opts.Source)
	}
	return ev, nil
}

func (j *jsonlReader) Next() (*Order, error) {
	first := j.pending
	j.pending = nil
	if first == nil {
		l, err := j.line()
		if err != nil {
			return nil, err
		}
		first = l
	}
	o := &Order{Row: first.row, ID: first.ev.GetOrderId()}
	j.end = first.end
	if first.err != nil {
		o.Err = first.err
		return o, nil
	}
	o.Events = []*ingestv1.Order{first.ev}
	for {
		l, err := j.line()
		if err == io.EOF {
			return o, nil
		}
		if err != nil {
			return nil, err
		}
		if l.err != nil || l.ev.GetOrderId() != o.ID || l.ev.GetSource() != first.ev.GetSource() {
			j.pending = l
			return o, nil
		}
		o.Events = append(o.Events, l.ev)
		j.end = l.end
	}
}
