package flux

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/carehub/carehub/internal/catalog"
)

// ExportPage is the time range one page of an export asks InfluxDB for.
// A page is sorted by time inside influxd, so its size bounds what influxd
// holds for one export (a radar's per-second heart rate is 21,600 points
// in six hours); carehub itself holds one CSV line at a time.
const ExportPage = 6 * time.Hour

// errStopExport ends a page's scan once the export's limit is reached.
var errStopExport = errors.New("export limit reached")

// catalogueFields is a Flux predicate that keeps only the catalogue's
// metric names: a field written by an older version or by hand under
// another name is not exported (it has no unit or code to export it
// with). A plain or-chain of equalities is pushed down to storage.
func catalogueFields() string {
	ms := catalog.Metrics()
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = "r._field == " + StringLit(m.Name).text
	}
	return "(" + strings.Join(parts, " or ") + ")"
}

// exportFilter is the filter of every export query (a constant of the
// program plus validated literals).
func exportFilter(residentID string) string {
	return `|> filter(fn: (r) => r._measurement == "readings" and r.resident_id == ` + StringLit(residentID).text + ` and ` + catalogueFields() + `)`
}

// CountPoints returns how many catalogue readings a resident has in
// [from, to) (storage counts them; nothing is sent back but the counts),
// so an export can say before its first byte whether it will be cut.
func (r *Reader) CountPoints(ctx context.Context, residentID string, from, to time.Time) (int64, error) {
	if !catalog.ValidID(residentID) {
		return 0, fmt.Errorf("resident id %q is not a valid id", residentID)
	}
	if err := checkRange(from, to); err != nil {
		return 0, err
	}
	f := Flux{text: Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  `, StringLit(r.bucket), TimeLit(from), StopLit(to)).text + exportFilter(residentID) + `
  |> count()
  |> keep(columns: ["_value"])`}
	var n int64
	err := r.scanCSV(ctx, f, []string{"_value"}, func(vals []string) error {
		v, err := strconv.ParseInt(vals[0], 10, 64)
		if err != nil {
			return fmt.Errorf("influx query: count %q: %w", vals[0], err)
		}
		n += v
		return nil
	})
	return n, err
}

// StreamPoints calls emit for every catalogue reading of a resident in
// [from, to), in time order (by metric name within one instant), at most
// limit (≤ MaxExportPoints) of them, and reports whether more matched.
// The range is read in pages of ExportPage, each streamed line by line from
// InfluxDB's answer into emit, so the memory one export costs does not grow
// with the number of points (GET /residents/{id}/export). An error from
// emit (the client went away) ends the export and is returned.
func (r *Reader) StreamPoints(ctx context.Context, residentID string, from, to time.Time, limit int, emit func(MetricValue) error) (bool, error) {
	if !catalog.ValidID(residentID) {
		return false, fmt.Errorf("resident id %q is not a valid id", residentID)
	}
	if err := checkRange(from, to); err != nil {
		return false, err
	}
	if limit <= 0 || limit > MaxExportPoints {
		limit = MaxExportPoints
	}
	n, truncated := 0, false
	for start := from; start.Before(to) && !truncated; start = start.Add(ExportPage) {
		stop := start.Add(ExportPage)
		if stop.After(to) {
			stop = to
		}
		f := Flux{text: Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  `, StringLit(r.bucket), TimeLit(start), StopLit(stop)).text + exportFilter(residentID) + `
  |> group()
  |> sort(columns: ["_time", "_field"])
  |> keep(columns: ["_time", "_field", "_value"])`}
		err := r.scanCSV(ctx, f, []string{"_field", "_time", "_value"}, func(vals []string) error {
			v, err := strconv.ParseFloat(vals[2], 64)
			if err != nil {
				return nil // not a number: not a reading
			}
			t, err := time.Parse(time.RFC3339Nano, vals[1])
			if err != nil {
				return fmt.Errorf("influx query: _time %q: %w", vals[1], err)
			}
			if n == limit {
				truncated = true
				return errStopExport
			}
			n++
			return emit(MetricValue{Metric: vals[0], T: t, V: v})
		})
		if errors.Is(err, errStopExport) {
			break
		}
		if err != nil {
			return truncated, err
		}
	}
	return truncated, nil
}
