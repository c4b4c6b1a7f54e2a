package mqttbroker

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// zlHandler sends mochi's log/slog records to carehub's zerolog logger, so
// the broker logs like the rest of carehub. It drops attributes that carry
// whole packets: their payloads are residents' health data, which must not
// reach the logs (domain.md, Privacy).
type zlHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
}

func newSlog(log zerolog.Logger) *slog.Logger { return slog.New(&zlHandler{log: log}) }

func (h *zlHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= zlLevel(l, "x")
}

func zlLevel(l slog.Level, msg string) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		// mochi's bolt hook reports its first read of a fresh store (no
		// $SYS record yet) as an error; it is how every new store starts.
		if msg == "failed to get data" {
			return zerolog.DebugLevel
		}
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		// mochi's listener logs every refused connection as a warning with
		// no message; a reconnect storm of bad passwords would flood.
		if msg == "" {
			return zerolog.DebugLevel
		}
		return zerolog.WarnLevel
	case l >= slog.LevelInfo:
		return zerolog.InfoLevel
	default:
		return zerolog.DebugLevel
	}
}

// dropped names the attributes mochi uses for packets and wills.
var dropped = map[string]bool{"pk": true, "packet": true, "will": true, "payload": true}

func (h *zlHandler) Handle(_ context.Context, r slog.Record) error {
	ev := h.log.WithLevel(zlLevel(r.Level, r.Message))
	add := func(a slog.Attr) bool {
		if dropped[a.Key] {
			return true
		}
		v := a.Value.Resolve()
		if err, ok := v.Any().(error); ok {
			ev = ev.AnErr(a.Key, err)
		} else {
			ev = ev.Str(a.Key, v.String())
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	msg := r.Message
	if msg == "" {
		msg = "mqtt"
	}
	ev.Msg(msg)
	return nil
}

func (h *zlHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &zlHandler{log: h.log, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *zlHandler) WithGroup(string) slog.Handler { return h }
