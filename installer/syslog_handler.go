package installer

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/kardianos/service"
)

// NewSystemLogHandler returns a slog.Handler that sends each record to the platform's
// log system through kardianos' service.Logger: syslog/journald on Linux and macOS, the
// event log on Windows. The record's level picks the severity (Error, Warning, Info;
// Debug goes out as Info).
//
// build makes the handler that renders a record into one line: it is handed the writer
// to render into, so the daemon keeps its own format, level and redaction (the same
// function that builds its console handler). Like slog's text and JSON handlers, it
// must write each record with exactly one Write.
func NewSystemLogHandler(l service.Logger, build func(w io.Writer) slog.Handler) slog.Handler {
	sink := &severitySink{log: l}
	return &systemLogHandler{inner: build(sink), sink: sink}
}

type systemLogHandler struct {
	inner slog.Handler
	sink  *severitySink
}

// severitySink hands a rendered line to the service logger at the severity of the
// record being rendered. slog.TextHandler writes each record with exactly one Write,
// so holding mu across inner.Handle pairs the line with its record.
type severitySink struct {
	mu    sync.Mutex
	level slog.Level
	log   service.Logger
}

func (s *severitySink) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	var err error
	switch {
	case s.level >= slog.LevelError:
		err = s.log.Error(line)
	case s.level >= slog.LevelWarn:
		err = s.log.Warning(line)
	default:
		err = s.log.Info(line)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *systemLogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *systemLogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	h.sink.level = r.Level
	return h.inner.Handle(ctx, r)
}

func (h *systemLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &systemLogHandler{inner: h.inner.WithAttrs(attrs), sink: h.sink}
}

func (h *systemLogHandler) WithGroup(name string) slog.Handler {
	return &systemLogHandler{inner: h.inner.WithGroup(name), sink: h.sink}
}
