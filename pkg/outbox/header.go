package outbox

import (
	"bufio"
	"bytes"
	"io"
)

var errEOF = io.EOF

func bufioReader(b []byte) *bufio.Reader {
	// ReadMIMEHeader wants the blank line that ends a header block.
	return bufio.NewReader(io.MultiReader(bytes.NewReader(b), bytes.NewReader([]byte("\r\n"))))
}
