package flux

import (
	"testing"
	"time"

	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/model"
)

// TestReadingsRoundTrip writes readings through WriteLines and reads them
// back raw and aggregated with Readings, on a real InfluxDB 1.8.
func TestReadingsRoundTrip(t *testing.T) {
	c, _, _ := open18(t)
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	var buf []byte
	for i := 0; i < 20; i++ { // two devices, 10 minutes apart each
		dev := []string{"wear-1", "radar-1"}[i%2]
		buf = influx.AppendReading(buf, model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: dev, DeviceKind: "wearable",
			TS: t0.Add(time.Duration(i) * 5 * time.Minute), Values: map[string]float64{"heart_rate": float64(60 + i), "spo2": 97}})
	}
	buf = influx.AppendReading(buf, model.Reading{ResidentID: "r2", HomeID: "h2", DeviceID: "wear-2", TS: t0, Values: map[string]float64{"heart_rate": 200}})
	if err := c.WriteLines(ctxT(t), buf); err != nil {
		t.Fatal(err)
	}
	q := ReadingsQuery{ResidentID: "r1", Metric: "heart_rate", From: t0, To: t0.Add(2 * time.Hour)}
	pts, err := c.Readings(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 20 || pts[0].V != 60 || !pts[0].T.Equal(t0) || pts[19].V != 79 {
		t.Fatalf("raw: %d points %v", len(pts), pts)
	}
	for i := 1; i < len(pts); i++ {
		if !pts[i].T.After(pts[i-1].T) {
			t.Fatalf("raw points out of order at %d: %v", i, pts)
		}
	}
	q.Every, q.Fn = 30*time.Minute, "count"
	pts, err = c.Readings(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4 || pts[0].V != 6 {
		t.Fatalf("count per 30m: %v", pts)
	}
	q.Fn = "max"
	pts, err = c.Readings(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4 || pts[3].V != 79 {
		t.Fatalf("max per 30m: %v", pts)
	}
	// Windows are labelled with their start, the first with from.
	q.Fn, q.From = "mean", t0.Add(10*time.Minute)
	if pts, err = c.Readings(ctxT(t), q); err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4 || !pts[0].T.Equal(q.From) || pts[0].V != 63.5 || !pts[1].T.Equal(t0.Add(30*time.Minute)) || pts[1].V != 68.5 {
		t.Fatalf("mean per 30m from %s: %v, want [from = 63.5, +30m = 68.5, ...]", q.From.Format(time.Kitchen), pts)
	}
	q.Fn, q.From = "last", t0
	if pts, err = c.Readings(ctxT(t), q); err != nil || len(pts) != 4 || pts[2].V != 77 || pts[3].V != 79 {
		t.Fatalf("last per 30m: %v, %v", pts, err)
	}
	// Raw and limited: each device's series is cut to the limit, and the
	// merged line is the first points of both in time order.
	q.Every, q.Fn, q.MaxPoints = 0, "", 5
	if pts, err = c.Readings(ctxT(t), q); err != nil || len(pts) != 5 || pts[0].V != 60 || pts[4].V != 64 {
		t.Fatalf("raw, limit 5: %v, %v", pts, err)
	}
	// to is exclusive: the point on it is not returned.
	q.MaxPoints, q.To = 0, t0.Add(95*time.Minute)
	if pts, err = c.Readings(ctxT(t), q); err != nil || len(pts) != 19 || pts[18].V != 78 {
		t.Fatalf("raw to %s: %d points, %v", q.To.Format(time.Kitchen), len(pts), err)
	}
}

// TestFluxInjection proves, against a real InfluxDB 1.8, that hostile
// values either fail validation or stay inside their string literal: a
// point tagged with each hostile value is found by exactly that value, and
// hostile values that match no tag return nothing and break nothing.
func TestFluxInjection(t *testing.T) {
	c, _, _ := open18(t)
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	hostile := []string{
		`") |> drop() //`,
		`r1" or r._value > 0 or r.resident_id == "`,
		`${r1}`,
		`$"`,
		`a"b`,
	}
	var buf []byte
	for i, h := range append([]string{"r1", "abc"}, hostile...) {
		var err error
		buf, err = influx.EncodeReading(buf, model.Reading{ResidentID: h, HomeID: "h", DeviceID: "d", TS: t0.Add(time.Duration(i) * time.Second), Values: map[string]float64{"heart_rate": float64(100 + i)}})
		if err != nil {
			t.Fatalf("encode %q: %v", h, err)
		}
	}
	if err := c.WriteLines(ctxT(t), buf); err != nil {
		t.Fatal(err)
	}
	// Validation rejects the hostile id before any query is sent.
	for _, h := range hostile {
		if _, err := c.Readings(ctxT(t), ReadingsQuery{ResidentID: h, Metric: "heart_rate", From: t0, To: t0.Add(time.Hour)}); err == nil {
			t.Errorf("Readings accepted resident id %q", h)
		}
	}
	count := func(id string) int {
		f := Fluxf(`from(bucket: %s) |> range(start: %s) |> filter(fn: (r) => r._measurement == "readings" and r.resident_id == %s) |> keep(columns: ["_time", "_value"])`,
			StringLit(c.Bucket()), TimeLit(t0.Add(-time.Minute)), StringLit(id))
		n := 0
		if err := c.scanCSV(ctxT(t), f, []string{"_value"}, func([]string) error { n++; return nil }); err != nil {
			t.Fatalf("query for %q failed: %v\n%s", id, err, f)
		}
		return n
	}
	if n := count("r1"); n != 1 {
		t.Fatalf("plain id matched %d points", n)
	}
	// Past validation, each hostile value is only a string: it matches its
	// own point and nothing else.
	for _, h := range hostile {
		if n := count(h); n != 1 {
			t.Errorf("hostile value %q matched %d points, want exactly its own", h, n)
		}
	}
	for _, h := range []string{`\") |> yield() //`, `${"`, `$`, `\`, `r1\`, `"`, "r1\n) |> drop()"} {
		if n := count(h); n != 0 {
			t.Errorf("hostile value %q matched %d points, want 0", h, n)
		}
	}
}

// TestReadingsCalendarDays: with every=1d, windows are calendar days in the
// program time zone (Asia/Seoul, UTC+9), labelled with the local midnight.
func TestReadingsCalendarDays(t *testing.T) {
	c, _, _ := open18(t)
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, seoul)
	var buf []byte
	for _, p := range []struct {
		at time.Time
		v  float64
	}{
		{day.Add(-30 * time.Minute), 50},             // 23:30 on the 19th, Seoul: the day before
		{day.Add(30 * time.Minute), 70},              // 00:30 on the 20th
		{day.Add(23*time.Hour + 50*time.Minute), 90}, // 23:50 on the 20th (14:50 UTC)
	} {
		buf = influx.AppendReading(buf, model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "w1", DeviceKind: "wearable", TS: p.at, Values: map[string]float64{"heart_rate": p.v}})
	}
	if err := c.WriteLines(ctxT(t), buf); err != nil {
		t.Fatal(err)
	}
	q := ReadingsQuery{ResidentID: "r1", Metric: "heart_rate", From: day.Add(-24 * time.Hour), To: day.Add(48 * time.Hour),
		Every: 24 * time.Hour, Fn: "mean", Location: seoul}
	pts, err := c.Readings(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || !pts[0].T.Equal(day.Add(-24*time.Hour)) || pts[0].V != 50 || !pts[1].T.Equal(day) || pts[1].V != 80 {
		t.Fatalf("Seoul days: %v, want [19th 00:00 KST = 50, 20th 00:00 KST = 80]", pts)
	}
	// Without a location the same points fall into UTC days.
	q.Location = nil
	if pts, err = c.Readings(ctxT(t), q); err != nil || len(pts) != 2 || pts[1].V != 90 {
		t.Fatalf("UTC days: %v, %v (the 23:50 KST point is on its own UTC day)", pts, err)
	}
}
