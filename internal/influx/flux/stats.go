package flux

import (
	"context"
	"fmt"
	"time"

	"github.com/carehub/carehub/internal/catalog"
)

// ActivityWindow is the window of the day-summary queries below. Every
// time-zone offset in use is a whole number of quarter hours (UTC+5:45 is
// the oddest), so a 15-minute window lies wholly inside one local hour and
// one local day anywhere; the caller buckets windows in its time zone,
// which Flux 0.65 (InfluxDB 1.8) cannot do itself.
const ActivityWindow = 15 * time.Minute

// WindowValue is an aggregate over the ActivityWindow that ends at End
// (or at the range's stop, for a last window the stop cuts short).
type WindowValue struct {
	End time.Time
	V   float64
}

// The queries below end their range with StopLit: InfluxDB 1.8's range()
// would return a point that lies exactly on its stop, and a summary must
// not count next midnight's event (or 06:00's bed exit) twice.

// activityFilter selects what counts as activity in the home (contract §2):
// motion, door and bed events, and motion, presence, in_bed and door_open
// readings that show someone there (value > 0; presence 0 is nobody). The
// names are constants of this program, not input.
const activityFilter = `(r._measurement == "events" and (r.type == "motion" or r.type == "door_open" or r.type == "door_close" or r.type == "bed_exit" or r.type == "bed_enter")) or
     (r._measurement == "readings" and (r._field == "motion" or r._field == "presence" or r._field == "in_bed" or r._field == "door_open") and r._value > 0.0)`

// ActivityCounts returns how many activity events and readings a resident
// had in each ActivityWindow of [from, to) that had any (GET
// /residents/{id}/summary: activity per hour).
func (r *Reader) ActivityCounts(ctx context.Context, residentID string, from, to time.Time) ([]WindowValue, error) {
	if err := checkSummary(residentID, from, to); err != nil {
		return nil, err
	}
	every, _ := DurationLit(ActivityWindow)
	f := Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r.resident_id == %s)
  |> filter(fn: (r) => `+activityFilter+`)
  |> keep(columns: ["_time", "_value"])
  |> group()
  |> aggregateWindow(every: %s, fn: count, createEmpty: false)`,
		StringLit(r.bucket), TimeLit(from), StopLit(to), StringLit(residentID), every)
	return r.windows(ctx, f)
}

// WindowMax returns a metric's maximum in each ActivityWindow of [from, to)
// that had a reading (steps: a wearable's counter of the day, whose daily
// maximum is the day's steps).
func (r *Reader) WindowMax(ctx context.Context, residentID, metric string, from, to time.Time) ([]WindowValue, error) {
	if err := checkSummary(residentID, from, to); err != nil {
		return nil, err
	}
	if _, ok := catalog.LookupMetric(metric); !ok {
		return nil, fmt.Errorf("metric %q is not in the catalogue", metric)
	}
	every, _ := DurationLit(ActivityWindow)
	f := Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "readings" and r.resident_id == %s and r._field == %s)
  |> keep(columns: ["_time", "_value"])
  |> group()
  |> aggregateWindow(every: %s, fn: max, createEmpty: false)`,
		StringLit(r.bucket), TimeLit(from), StopLit(to), StringLit(residentID), StringLit(metric), every)
	return r.windows(ctx, f)
}

// EventCount returns how many events of one type a resident had in
// [from, to) (bathroom visits are toilet_flush events, nights out of bed
// bed_exit events).
func (r *Reader) EventCount(ctx context.Context, residentID, eventType string, from, to time.Time) (int64, error) {
	if err := checkSummary(residentID, from, to); err != nil {
		return 0, err
	}
	if !catalog.ValidEventType(eventType) {
		return 0, fmt.Errorf("event type %q is not in the catalogue", eventType)
	}
	f := Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "events" and r.resident_id == %s and r.type == %s)
  |> keep(columns: ["_time", "_value"])
  |> group()
  |> count()`,
		StringLit(r.bucket), TimeLit(from), StopLit(to), StringLit(residentID), StringLit(eventType))
	var n int64
	err := r.scan(ctx, f, func(_ string, _ time.Time, v float64) { n += int64(v) })
	return n, err
}

func checkSummary(residentID string, from, to time.Time) error {
	if !catalog.ValidID(residentID) {
		return fmt.Errorf("resident id %q is not a valid id", residentID)
	}
	return checkRange(from, to)
}

// windows runs an aggregateWindow query; aggregateWindow stamps each
// window with its stop, the last one with the range's stop, which StopLit
// puts 1 ns before a whole millisecond: that end is rounded up to it.
func (r *Reader) windows(ctx context.Context, f Flux) ([]WindowValue, error) {
	var out []WindowValue
	err := r.scan(ctx, f, func(_ string, t time.Time, v float64) {
		out = append(out, WindowValue{End: t.Add(time.Millisecond - 1).Truncate(time.Millisecond), V: v})
	})
	return out, err
}
