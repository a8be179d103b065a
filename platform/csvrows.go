package platform

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/tillkeep/tillkeep"
)

// MaxCSVRowBytes bounds one row of a streamed CSV upload; the number of rows is not
// bounded, since uploads stream.
const MaxCSVRowBytes = 4096

// csvRows reads a simple CSV body row by row without holding more than one row: fields
// are separated by commas and may be wrapped in double quotes (as spreadsheets export
// them). Codes and ids cannot contain commas or quotes, so full RFC 4180 quoting is not
// needed. Blank lines are skipped; a first row whose first field is header names it
// as a header, and it is skipped too.
type csvRows struct {
	r      *bufio.Reader
	header string
	line   int // number of the last line read, from 1
	first  bool
}

func newCSVRows(r io.Reader, header string) *csvRows {
	return &csvRows{r: bufio.NewReaderSize(r, MaxCSVRowBytes), header: header, first: true}
}

// next returns the fields of the next data row and its line number, io.EOF at the end,
// or a coded error for a row that is too long.
func (c *csvRows) next() ([]string, int, error) {
	for {
		raw, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Skip the rest of the line, so that the next row starts on the next line.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = c.r.ReadSlice('\n')
			}
			c.line++
			c.first = false
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, c.line, err
			}
			return nil, c.line, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "CSV line %d is longer than %d bytes", c.line, MaxCSVRowBytes)
		}
		if len(raw) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return nil, c.line, io.EOF
			}
			return nil, c.line, err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, c.line, err
		}
		c.line++
		raw = bytes.TrimRight(raw, "\r\n")
		if c.line == 1 {
			raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")) // a spreadsheet's BOM
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		fields := strings.Split(string(raw), ",")
		for i, f := range fields {
			f = strings.TrimSpace(f)
			if len(f) >= 2 && f[0] == '"' && f[len(f)-1] == '"' {
				f = f[1 : len(f)-1]
			}
			fields[i] = f
		}
		if c.first {
			c.first = false
			if strings.EqualFold(fields[0], c.header) {
				continue
			}
		}
		return fields, c.line, nil
	}
}
