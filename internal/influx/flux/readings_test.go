package flux

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestWindowingCalendarDays: day windows are local calendar days, also on
// the 25-hour day when Berlin leaves summer time.
func TestWindowingCalendarDays(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	w := newWindowing(24*time.Hour, berlin)
	day := time.Date(2026, 10, 25, 0, 0, 0, 0, berlin)                           // 25 hours long
	early, late := day.Add(30*time.Minute), day.Add(24*time.Hour+30*time.Minute) // 00:30 and 23:30 local
	if w.key(early) != w.key(late) {
		t.Fatalf("00:30 and 23:30 of 25 October fall in different windows")
	}
	if next := day.AddDate(0, 0, 1); w.key(next) != w.key(early)+1 || !w.start(w.key(next)).Equal(next) {
		t.Fatalf("26 October: key %d start %s", w.key(next), w.start(w.key(next)))
	}
	if got := w.start(w.key(late)); !got.Equal(day) {
		t.Fatalf("window start %s, want local midnight %s", got, day)
	}
	// A week: seven calendar days, counted from 1970-01-01 (a Thursday).
	wk := newWindowing(7*24*time.Hour, time.UTC)
	thu := time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC)
	if wk.key(thu) != wk.key(thu.Add(6*24*time.Hour+23*time.Hour)) || wk.key(thu) == wk.key(thu.Add(-time.Second)) {
		t.Fatalf("weeks do not run Thursday to Wednesday")
	}
}

func TestWindowingSubDay(t *testing.T) {
	w := newWindowing(30*time.Minute, nil)
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want time.Time
	}{
		{at, at},
		{at.Add(29*time.Minute + 59*time.Second), at},
		{at.Add(30 * time.Minute), at.Add(30 * time.Minute)},
		{at.Add(-time.Millisecond), at.Add(-30 * time.Minute)},
		// Before 1970 the window still starts before the point.
		{time.Date(1969, 12, 31, 23, 45, 0, 0, time.UTC), time.Date(1969, 12, 31, 23, 30, 0, 0, time.UTC)},
	} {
		if got := w.start(w.key(tc.t)); !got.Equal(tc.want) {
			t.Errorf("%s: window starts %s, want %s", tc.t, got, tc.want)
		}
	}
}

func TestWindowAggregates(t *testing.T) {
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	// Points of two devices arrive series by series, not in time order.
	pts := []Point{{at.Add(2 * time.Minute), 80}, {at, 60}, {at.Add(3 * time.Minute), 70}, {at.Add(time.Minute), 90}}
	a := &window{}
	for _, p := range pts {
		a.add(p.T, p.V)
	}
	for fn, want := range map[string]float64{"mean": 75, "": 75, "min": 60, "max": 90, "count": 4, "last": 70} {
		if got := a.value(fn); got != want {
			t.Errorf("%q = %v, want %v", fn, got, want)
		}
	}
}

// BenchmarkReadingsWeek: one resident's week of one-minute heart rate
// (10,080 points) read back as hourly means from a real InfluxDB 1.8, the
// query behind the coordinator's weekly chart (make bench-api times it
// through the API).
func BenchmarkReadingsWeek(b *testing.B) {
	in := testenv.SharedInflux(b)
	ctx := context.Background()
	c, err := openDB(ctx, influx.Options{URL: in.URL, Bucket: testenv.ID("care"), RawRetention: 90 * 24 * time.Hour, Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	to := time.Now().UTC().Truncate(time.Minute)
	from := to.Add(-7 * 24 * time.Hour)
	var buf []byte
	for t := from; t.Before(to); t = t.Add(time.Minute) {
		buf = influx.AppendReading(buf, model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "w1", DeviceKind: "wearable", TS: t,
			Values: map[string]float64{"heart_rate": 60 + float64(t.Minute()%20)}})
	}
	if err := c.WriteLines(ctx, buf); err != nil {
		b.Fatal(err)
	}
	q := ReadingsQuery{ResidentID: "r1", Metric: "heart_rate", From: from, To: to, Every: time.Hour, Fn: "mean"}
	for b.Loop() {
		pts, err := c.Readings(ctx, q)
		if err != nil || len(pts) < 168 || len(pts) > 169 {
			b.Fatalf("%d points, %v", len(pts), err)
		}
	}
}
