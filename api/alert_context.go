package api

import (
	"context"
	"time"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/influx/flux"
)

// AlertContextSource answers the readings around an alert (flux.Reader;
// Options.AlertContext): without it an alert shows the latest values
// instead.
type AlertContextSource interface {
	Around(ctx context.Context, residentID, metric string, from, to time.Time, limit int) ([]flux.Point, bool, error)
}

// alertContextSpan: GET /alerts/{id} shows the alert's metric from 30 min
// before it was raised to 30 min after (issue 4: "the readings around it"),
// enough to see whether a value was a spike or a trend.
const alertContextSpan = 30 * time.Minute

// alertLatestLookback: for an alert without a metric (SOS, fall,
// inactivity) the context is the latest value of each metric the resident
// has up to the end of the window, vitals and the home's sensors alike (an
// inactivity alert is read against the last motion), no older than a day
// (older is missing data, not context).
const alertLatestLookback = 24 * time.Hour

// alertContextTimeout bounds the wait for InfluxDB: the alert comes from
// NATS and a care worker must see it even when the time-series store hangs.
const alertContextTimeout = 5 * time.Second

// maxAlertContextPoints bounds the raw points of one alert view.
const maxAlertContextPoints = flux.MaxAroundPoints

// What a care worker reads when the context cannot be had; the cause goes
// to the log, not to the phone.
const (
	alertContextUnavailable   = "the readings around the alert are not available: the time-series store did not answer"
	alertContextNotConfigured = "the readings around the alert are not available: trends are not configured on this instance"
)

// alertJSON is an alert with the readings around it. The alert's own
// fields stay at the top level (contract §3 alert JSON), as clients read
// them; context is null when InfluxDB failed, with context_error saying so.
type alertJSON struct {
	alerts.Alert
	Context      any    `json:"context"`
	ContextError string `json:"context_error,omitempty"`
}

// metricContextJSON: the raw points of the alert's metric in [from, to),
// at most maxAlertContextPoints from the start (truncated says more exist).
type metricContextJSON struct {
	From      string      `json:"from"`
	To        string      `json:"to"`
	Metric    string      `json:"metric"`
	Unit      string      `json:"unit"`
	Points    []pointJSON `json:"points"`
	Truncated bool        `json:"truncated"`
}

// latestContextJSON: the latest value of every metric in [from, to), by
// metric name.
type latestContextJSON struct {
	From   string                `json:"from"`
	To     string                `json:"to"`
	Latest map[string]latestJSON `json:"latest"`
}

// withContext adds the readings around a to it. It never fails: a care
// worker sees the alert whatever InfluxDB does.
func (s *Server) withContext(ctx context.Context, a alerts.Alert) alertJSON {
	out := alertJSON{Alert: a}
	if s.o.Trends == nil {
		out.ContextError = alertContextNotConfigured
		return out
	}
	v, err := s.alertContext(ctx, a)
	if err != nil {
		s.log.Warn().Err(err).Str("alert_id", a.ID).Str("resident_id", a.ResidentID).Msg("readings around the alert not available")
		out.ContextError = alertContextUnavailable
		return out
	}
	out.Context = v
	return out
}

func (s *Server) alertContext(ctx context.Context, a alerts.Alert) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, alertContextTimeout)
	defer cancel()
	from := a.RaisedAt.Add(-alertContextSpan)
	to := a.RaisedAt.Add(alertContextSpan)
	if now := s.o.Clock(); now.Before(to) {
		to = now
	}
	if !from.Before(to) { // an alert stamped ahead of this clock
		to = from.Add(alertContextSpan)
	}
	m, ok := catalog.LookupMetric(a.Metric)
	if src := s.o.AlertContext; ok && src != nil {
		pts, more, err := src.Around(ctx, a.ResidentID, m.Name, from, to, maxAlertContextPoints)
		if err != nil {
			return nil, err
		}
		out := metricContextJSON{From: wireTime(from), To: wireTime(to),
			Metric: m.Name, Unit: m.Unit, Points: make([]pointJSON, len(pts)), Truncated: more}
		for i, p := range pts {
			out.Points[i] = pointJSON{T: wireTime(p.T), V: p.V}
		}
		return out, nil
	}
	from = to.Add(-alertLatestLookback)
	vals, err := s.o.Trends.Latest(ctx, a.ResidentID, from, to)
	if err != nil {
		return nil, err
	}
	out := latestContextJSON{From: wireTime(from), To: wireTime(to), Latest: map[string]latestJSON{}}
	for _, v := range vals {
		if lm, ok := catalog.LookupMetric(v.Metric); ok {
			out.Latest[v.Metric] = latestJSON{Metric: v.Metric, Unit: lm.Unit, T: wireTime(v.T), V: v.V}
		}
	}
	return out, nil
}
