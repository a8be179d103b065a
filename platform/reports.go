package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tillkeep/tillkeep"
)

// Reports are the CSV error reports of bulk operations (one row per refused input row).
// While the operation runs, the report is spooled to a temporary file, so that a
// 500,000-row upload never holds its errors in memory; at the end it is copied into
// the storage in parts, so that any platform instance can serve it.

// reportPartSize is the size of one stored part; partsPerTx bounds one transaction.
const (
	reportPartSize = 1 << 20
	partsPerTx     = 8
)

// reportSpool is a report being written.
type reportSpool struct {
	f *os.File
}

func (s *Service) newSpool() (*reportSpool, error) {
	f, err := os.CreateTemp(s.cfg.TempDir, "tillkeep-report-*.csv")
	if err != nil {
		return nil, fmt.Errorf("create report spool: %w", err)
	}
	return &reportSpool{f: f}, nil
}

// Write appends to the spool.
func (sp *reportSpool) Write(p []byte) (int, error) { return sp.f.Write(p) }

// discard removes the spool file.
func (sp *reportSpool) discard() {
	name := sp.f.Name()
	_ = sp.f.Close()
	_ = os.Remove(name)
}

// saveReport copies the spool into the storage and returns the report's id.
func (s *Service) saveReport(ctx context.Context, sp *reportSpool) (string, error) {
	id, err := newID()
	if err != nil {
		return "", err
	}
	if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("rewind report spool: %w", err)
	}
	part := 0
	buf := make([]byte, reportPartSize)
	for done := false; !done; {
		var parts [][]byte
		for len(parts) < partsPerTx {
			n, err := io.ReadFull(sp.f, buf)
			if n > 0 {
				parts = append(parts, append([]byte(nil), buf[:n]...))
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				done = true
				break
			}
			if err != nil {
				return "", fmt.Errorf("read report spool: %w", err)
			}
		}
		first := part
		err := s.st.Update(ctx, func(tx Tx) error {
			for i, p := range parts {
				if err := tx.PutReportPart(id, first+i, p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("store report %s: %w", id, err)
		}
		part += len(parts)
	}
	return id, nil
}

// WriteReport streams a stored report to w. An unknown id is not_found before anything
// is written.
func (s *Service) WriteReport(ctx context.Context, id string, w io.Writer) error {
	for part := 0; ; part++ {
		var data []byte
		err := s.st.View(ctx, func(tx ReadTx) error {
			var err error
			data, err = tx.ReportPart(id, part)
			return err
		})
		if errors.Is(err, ErrNotFound) {
			if part == 0 {
				return tillkeep.Errorf(tillkeep.CodeNotFound, "report %s is not known", id)
			}
			return nil
		}
		if err != nil {
			return storageErr(err, "read report")
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("send report %s: %w", id, err)
		}
	}
}

// ReportExists tells whether a report is stored, so the HTTP layer can answer 404
// before it starts a CSV body.
func (s *Service) ReportExists(ctx context.Context, id string) error {
	err := s.st.View(ctx, func(tx ReadTx) error {
		_, err := tx.ReportPart(id, 0)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return tillkeep.Errorf(tillkeep.CodeNotFound, "report %s is not known", id)
	}
	return storageErr(err, "read report")
}
