// Package logging builds carehub's zerolog logger: JSON by default (for log
// shippers), the human console format when the output is a terminal.
package logging

import (
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// New returns a logger writing to w in format ("auto", "json" or
// "console") at level. The level has been validated by config.
func New(w io.Writer, format, level string) zerolog.Logger {
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "console"
		}
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	// A file takes each event in one write(2); any other writer (a buffer in
	// a test, a pipe wrapper) may not be safe for goroutines logging at once.
	if _, ok := w.(*os.File); !ok {
		w = zerolog.SyncWriter(w)
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}
