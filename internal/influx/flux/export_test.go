package flux

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestAggregatedReadingsBoundRowsScanned: an aggregated query reads at
// most MaxScan raw points and then fails with ErrTooManyRows, rather than
// reading the whole range into carehub; within the bound it answers.
func TestAggregatedReadingsBoundRowsScanned(t *testing.T) {
	c, to := exportClient(t, 100)
	q := ReadingsQuery{ResidentID: "r1", Metric: "heart_rate", From: to.Add(-2 * time.Hour), To: to, Every: time.Hour, Fn: "count", MaxScan: 99}
	if _, err := c.Readings(context.Background(), q); !errors.Is(err, ErrTooManyRows) {
		t.Fatalf("100 points with MaxScan 99: %v", err)
	}
	q.MaxScan = 100
	pts, err := c.Readings(context.Background(), q)
	total := 0.0
	for _, p := range pts {
		total += p.V
	}
	if err != nil || total != 100 {
		t.Fatalf("within the bound: %v %v", pts, err)
	}
}

// exportClient writes n one-minute heart rates (and a field outside the
// catalogue) for r1 ending before the returned time.
func exportClient(t *testing.T, n int) (*testDB, time.Time) {
	t.Helper()
	in := testenv.SharedInflux(t)
	ctx := context.Background()
	c, err := openDB(ctx, influx.Options{URL: in.URL, Bucket: testenv.ID("care"), RawRetention: 90 * 24 * time.Hour, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	to := time.Now().UTC().Truncate(time.Minute)
	var buf []byte
	for i := range n {
		buf = influx.AppendReading(buf, model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "w1", DeviceKind: "wearable", TS: to.Add(-time.Duration(n-i) * time.Minute),
			Values: map[string]float64{"heart_rate": float64(60 + i%30), "not_a_metric": 1}})
	}
	if err := c.WriteLines(ctx, buf); err != nil {
		t.Fatal(err)
	}
	return c, to
}

// TestStreamPointsPagesInTimeOrder: an export over several pages hands
// over every catalogue point once, in time order, skips fields outside the
// catalogue, and stops at the limit saying so.
func TestStreamPointsPagesInTimeOrder(t *testing.T) {
	const n = 900 // 15 hours: three pages of ExportPage
	c, to := exportClient(t, n)
	ctx := context.Background()
	from := to.Add(-n * time.Minute)
	if got, err := c.CountPoints(ctx, "r1", from, to); err != nil || got != n {
		t.Fatalf("count %d, %v; want %d", got, err, n)
	}
	var last time.Time
	seen := 0
	more, err := c.StreamPoints(ctx, "r1", from, to, 0, func(p MetricValue) error {
		if p.Metric != "heart_rate" || !p.T.After(last) {
			t.Fatalf("point %d: %+v after %s", seen, p, last)
		}
		last = p.T
		seen++
		return nil
	})
	if err != nil || more || seen != n {
		t.Fatalf("streamed %d of %d, more %v, %v", seen, n, more, err)
	}
	seen = 0
	more, err = c.StreamPoints(ctx, "r1", from, to, 500, func(MetricValue) error { seen++; return nil })
	if err != nil || !more || seen != 500 {
		t.Fatalf("limit 500: streamed %d, more %v, %v", seen, more, err)
	}
	stop := errors.New("client left")
	if _, err := c.StreamPoints(ctx, "r1", from, to, 0, func(MetricValue) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("emit's error: %v", err)
	}
}

// TestRawReadingsRefuseMoreThanMax: a raw query without an explicit bound
// over more than DefaultMaxPoints points fails with ErrTooManyRows instead
// of answering a silently cut range; with MaxPoints it is cut as asked.
func TestRawReadingsRefuseMoreThanMax(t *testing.T) {
	in := testenv.SharedInflux(t)
	ctx := context.Background()
	c, err := openDB(ctx, influx.Options{URL: in.URL, Bucket: testenv.ID("care"), RawRetention: 90 * 24 * time.Hour, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	to := time.Now().UTC().Truncate(time.Second)
	from := to.Add(-time.Duration(DefaultMaxPoints+1) * time.Second)
	var buf []byte
	for i := range DefaultMaxPoints + 1 {
		buf = influx.AppendReading(buf, model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "radar", DeviceKind: "radar", TS: from.Add(time.Duration(i) * time.Second),
			Values: map[string]float64{"heart_rate": 70}})
		if len(buf) > 1<<20 {
			if err := c.WriteLines(ctx, buf); err != nil {
				t.Fatal(err)
			}
			buf = buf[:0]
		}
	}
	if err := c.WriteLines(ctx, buf); err != nil {
		t.Fatal(err)
	}
	q := ReadingsQuery{ResidentID: "r1", Metric: "heart_rate", From: from, To: to}
	if _, err := c.Readings(ctx, q); !errors.Is(err, ErrTooManyRows) {
		t.Fatalf("%d points without a bound: %v", DefaultMaxPoints+1, err)
	}
	q.MaxPoints = 10
	if pts, err := c.Readings(ctx, q); err != nil || len(pts) != 10 {
		t.Fatalf("with MaxPoints 10: %d points, %v", len(pts), err)
	}
}
