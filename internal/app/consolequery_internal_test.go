package app

import (
	"context"
	"reflect"
	"sync"
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

type countedLast struct {
	mu    sync.Mutex
	asked int
	last  map[string]time.Time
}

func (c *countedLast) LastReadings(context.Context, time.Time, time.Time) (map[string]time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked++
	out := map[string]time.Time{}
	for k, v := range c.last {
		out[k] = v
	}
	return out, nil
}

func (c *countedLast) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asked
}

// TestLastReadingsCache: the first ask waits for the source, asks within
// the TTL do not ask again, an older answer is given at once while a fresh
// one is asked in the background, and a reading before the range is left
// out of a cached answer.
func TestLastReadingsCache(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	src := &countedLast{last: map[string]time.Time{"r1": now.Add(-time.Minute), "r2": now.Add(-24*time.Hour + 5*time.Second)}}
	c := &lastReadingsCache{src: src, ttl: 15 * time.Second, now: clock}
	ctx := context.Background()
	got, err := c.LastReadings(ctx, now.Add(-24*time.Hour), now)
	if err != nil || len(got) != 2 || src.count() != 1 {
		t.Fatalf("first ask: %v, %v, asked %d", got, err, src.count())
	}
	now = now.Add(10 * time.Second)
	got, _ = c.LastReadings(ctx, now.Add(-24*time.Hour), now)
	if src.count() != 1 || len(got) != 1 || got["r1"].IsZero() {
		t.Fatalf("within the TTL: %v, asked %d (r2's reading is now older than a day)", got, src.count())
	}
	src.mu.Lock()
	src.last["r3"] = now
	src.mu.Unlock()
	now = now.Add(10 * time.Second)
	if got, _ = c.LastReadings(ctx, now.Add(-24*time.Hour), now); len(got) != 1 {
		t.Fatalf("stale answer: %v", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ = c.LastReadings(ctx, now.Add(-24*time.Hour), now)
		if !got["r3"].IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background refresh never arrived: %v, asked %d", got, src.count())
		}
		time.Sleep(5 * time.Millisecond) // polling for the refresh, with a deadline
	}
	if n := src.count(); n != 2 {
		t.Errorf("asked %d times, want 2", n)
	}
}
