package app

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/influx/flux"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/internal/testenv"
)

// TestDailyMeansAreSparklines: the overview's daily means for all
// residents at once (past days and today from their caches) are what one
// readings query per resident answers: local calendar days, two devices'
// series merged, today's day so far.
func TestDailyMeansAreSparklines(t *testing.T) {
	in := testenv.SharedInflux(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := influx.Open(ctx, influx.Options{URL: in.URL, Bucket: testenv.ID("care"), RawRetention: 90 * 24 * time.Hour, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Minute)
	y, m, d := now.In(seoul).Date()
	from := time.Date(y, m, d-4, 0, 0, 0, 0, seoul)
	var buf []byte
	for at := from.Add(-2 * time.Hour); at.Before(now); at = at.Add(13 * time.Minute) {
		buf = influx.AppendReading(buf, model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "w1", DeviceKind: "wearable", TS: at,
			Values: map[string]float64{"heart_rate": float64(50 + at.Hour())}})
		buf = influx.AppendReading(buf, model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "b1", DeviceKind: "radar", TS: at.Add(time.Second),
			Values: map[string]float64{"heart_rate": 90}})
		if at.Before(from.AddDate(0, 0, 2)) { // r2 stops two days in
			buf = influx.AppendReading(buf, model.Reading{ResidentID: "r2", HomeID: "h2", DeviceID: "w2", DeviceKind: "wearable", TS: at,
				Values: map[string]float64{"heart_rate": float64(70 + at.Minute())}})
		}
	}
	if err := c.WriteLines(ctx, buf); err != nil {
		t.Fatal(err)
	}
	queries := flux.New(c)
	daily := dailyMeans{past: flux.NewDailyCache(queries, time.Hour, nil), today: flux.NewDailyCache(queries, time.Minute, nil), loc: seoul}
	got, err := daily.DailyMeans(ctx, "heart_rate", from, now)
	if err != nil {
		t.Fatal(err)
	}
	series := readingsAdapter{queries, seoul}
	for _, rid := range []string{"r1", "r2"} {
		want, err := series.Readings(ctx, query.ReadingsQuery{ResidentID: rid, Metric: "heart_rate", From: from, To: now, Every: 24 * time.Hour, Fn: "mean"})
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 || len(got[rid]) != len(want) {
			t.Fatalf("%s: %d daily means, readings %d", rid, len(got[rid]), len(want))
		}
		for i := range want {
			if !got[rid][i].T.Equal(want[i].T) || !near(got[rid][i].V, want[i].V) {
				t.Errorf("%s day %d: %v, readings %v", rid, i, got[rid][i], want[i])
			}
		}
	}
	if again, err := daily.DailyMeans(ctx, "heart_rate", from, now); err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("a second ask (cached): %v", err)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
