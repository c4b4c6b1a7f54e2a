package flux

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/model"
)

// TestReadingsSetIsReadings: one query for several metrics answers what
// Readings answers for each (two devices' series merged, windows in
// local days, each metric's own fn, empty metrics empty), and refuses a
// set that is not one resident over one range and window.
func TestReadingsSetIsReadings(t *testing.T) {
	db, _, _ := open18(t)
	ctx := ctxT(t)
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	to := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	from := to.Add(-3 * 24 * time.Hour)
	var buf []byte
	for at := from.Add(-time.Hour); at.Before(to.Add(time.Hour)); at = at.Add(7 * time.Minute) {
		m := float64(at.Minute())
		buf = influx.AppendReading(buf, model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "w1", DeviceKind: "wearable", TS: at,
			Values: map[string]float64{"heart_rate": 60 + m, "spo2": 95 + m/60, "steps": float64(at.Hour() * 10)}})
		buf = influx.AppendReading(buf, model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "b1", DeviceKind: "radar", TS: at.Add(time.Second),
			Values: map[string]float64{"heart_rate": 70, "motion": 1}})
		buf = influx.AppendReading(buf, model.Reading{ResidentID: "r2", HomeID: "h2", DeviceID: "w2", DeviceKind: "wearable", TS: at,
			Values: map[string]float64{"heart_rate": 99}})
	}
	if err := db.WriteLines(ctx, buf); err != nil {
		t.Fatal(err)
	}
	for _, every := range []time.Duration{10 * time.Minute, time.Hour, 24 * time.Hour} {
		var qs []ReadingsQuery
		// In a fixed order: got[0] and got[1] below are the two metrics
		// with data (a map's order made them the two empty ones, now and
		// then).
		for _, mf := range [][2]string{{"heart_rate", "mean"}, {"spo2", "min"}, {"steps", "max"}, {"motion", "count"}, {"glucose", "mean"}, {"resp_rate", "last"}} {
			qs = append(qs, ReadingsQuery{ResidentID: "r1", Metric: mf[0], From: from, To: to, Every: every, Fn: mf[1], Location: seoul})
		}
		got, err := db.ReadingsSet(ctx, qs)
		if err != nil {
			t.Fatalf("every %s: %v", every, err)
		}
		for i, q := range qs {
			want, err := db.Readings(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 && len(got[i]) == 0 {
				continue
			}
			if !reflect.DeepEqual(got[i], want) {
				t.Errorf("every %s, %s %s: set %d points %v..., Readings %d points %v...", every, q.Metric, q.Fn, len(got[i]), head(got[i]), len(want), head(want))
			}
		}
		if len(got[0]) == 0 || len(got[1]) == 0 {
			t.Fatalf("every %s: heart_rate %d points, spo2 %d: want both", every, len(got[0]), len(got[1]))
		}
	}
	q := ReadingsQuery{ResidentID: "r1", Metric: "heart_rate", From: from, To: to, Every: time.Hour}
	other := q
	other.Metric, other.ResidentID = "spo2", "r2"
	raw := q
	raw.Every = 0
	for name, bad := range map[string][]ReadingsQuery{"two residents": {q, other}, "raw points": {raw}, "a metric twice": {q, q}} {
		if _, err := db.ReadingsSet(ctx, bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	q.MaxScan = 10
	if _, err := db.ReadingsSet(ctx, []ReadingsQuery{q}); !errors.Is(err, ErrTooManyRows) {
		t.Errorf("over MaxScan: %v, want ErrTooManyRows", err)
	}
}

func head(p []Point) []Point { return p[:min(3, len(p))] }
