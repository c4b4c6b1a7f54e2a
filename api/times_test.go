package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/influx/flux"
	"github.com/carehub/carehub/internal/testenv"
)

// influxReadings answers the API's readings from the real InfluxDB, as
// internal/app's adapter does.
type influxReadings struct{ c *flux.Reader }

func (r influxReadings) Readings(ctx context.Context, q api.ReadingsQuery) ([]api.Point, error) {
	pts, err := r.c.Readings(ctx, flux.ReadingsQuery{ResidentID: q.ResidentID, Metric: q.Metric, From: q.From, To: q.To, Every: q.Every, Fn: q.Fn})
	out := make([]api.Point, len(pts))
	for i, p := range pts {
		out[i] = api.Point{T: p.T, V: p.V}
	}
	return out, err
}

// TestReadingTimesKeepMilliseconds: two readings within one second come
// back from readings, latest and an alert's context with the milliseconds
// they were stored with, not cut to the same second.
func TestReadingTimesKeepMilliseconds(t *testing.T) {
	h, c, _ := trendsHarnessWith(t, func(o *api.Options) { o.Readings = influxReadings{o.Export.(*flux.Reader)} })
	h.resident("r1")
	a := h.raise("r1", "heart_rate", "high")
	sec := a.RaisedAt.Add(-10 * time.Minute).Truncate(time.Second)
	t1, t2 := sec.Add(120*time.Millisecond), sec.Add(675*time.Millisecond)
	write(t, c, "r1", t1, "heart_rate", 70)
	write(t, c, "r1", t2, "heart_rate", 71)
	want := []string{"", ""}
	want[0], want[1] = t1.UTC().Format("2006-01-02T15:04:05.000Z"), t2.UTC().Format("2006-01-02T15:04:05.000Z")
	same := func(got string, w string) bool {
		g, err1 := time.Parse(time.RFC3339, got)
		x, err2 := time.Parse(time.RFC3339, w)
		return err1 == nil && err2 == nil && g.Equal(x)
	}

	var rd struct {
		Points []struct {
			T string
			V float64
		}
	}
	q := "/api/v1/residents/r1/readings?metric=heart_rate&from=" + sec.Add(-time.Minute).Format(time.RFC3339) + "&to=" + sec.Add(time.Minute).Format(time.RFC3339)
	testenv.WaitFor(t, 10*time.Second, "both readings", func() bool {
		h.expect(http.StatusOK, "GET", q, adminToken, nil, &rd)
		return len(rd.Points) == 2
	})
	if !same(rd.Points[0].T, want[0]) || !same(rd.Points[1].T, want[1]) {
		t.Fatalf("readings times %+v, want %v", rd.Points, want)
	}

	var latest struct {
		Metrics []struct{ Metric, T string }
	}
	h.expect(http.StatusOK, "GET", "/api/v1/residents/r1/latest", adminToken, nil, &latest)
	if len(latest.Metrics) != 1 || !same(latest.Metrics[0].T, want[1]) {
		t.Fatalf("latest: %+v, want %s", latest.Metrics, want[1])
	}

	var got alertWithContext
	h.expect(http.StatusOK, "GET", "/api/v1/alerts/"+a.ID, adminToken, nil, &got)
	if got.Context == nil || len(got.Context.Points) != 2 || !same(got.Context.Points[0].T, want[0]) || !same(got.Context.Points[1].T, want[1]) {
		t.Fatalf("alert context: %+v, want %v", got.Context, want)
	}
}
