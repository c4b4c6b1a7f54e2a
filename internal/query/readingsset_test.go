package query_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/query"
)

type registry map[string]devices.Resident

func (r registry) Resident(id string) (devices.Resident, bool) { x, ok := r[id]; return x, ok }
func (r registry) Residents() []devices.Resident {
	var out []devices.Resident
	for _, x := range r {
		out = append(out, x)
	}
	return out
}
func (r registry) Devices(func(devices.Device) bool) []devices.Device { return nil }
func (r registry) Homes() []devices.Home                              { return nil }

type auditor struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (a *auditor) Record(_ context.Context, e audit.Entry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, e)
	return nil
}

// series answers each query with one point whose value is the number of
// its metric's name; sets counts the ReadingsSet calls, single the others.
type series struct {
	mu          sync.Mutex
	single      int
	sets        [][]query.ReadingsQuery
	failDaily   bool
	dailyCalled int
}

func (s *series) Readings(_ context.Context, q query.ReadingsQuery) ([]query.Point, error) {
	s.mu.Lock()
	s.single++
	s.mu.Unlock()
	return []query.Point{{T: q.From, V: float64(len(q.Metric))}}, nil
}

type setSeries struct{ *series }

func (s setSeries) ReadingsSet(_ context.Context, qs []query.ReadingsQuery) ([][]query.Point, error) {
	s.mu.Lock()
	s.sets = append(s.sets, qs)
	s.mu.Unlock()
	out := make([][]query.Point, len(qs))
	for i, q := range qs {
		out[i] = []query.Point{{T: q.From, V: float64(len(q.Metric))}}
	}
	return out, nil
}

func (s *series) DailyMeans(_ context.Context, _ string, from, _ time.Time) (map[string][]query.Point, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dailyCalled++
	if s.failDaily {
		return nil, errors.New("influx down")
	}
	return map[string][]query.Point{"r1": {{T: from, V: 1}}, "r2": {{T: from, V: 2}}, "r3": {{T: from, V: 3}}}, nil
}

// TestReadingsSetOneQuery: a source that answers sets gets a resident
// page's metrics in one call, with the resident filled in and one
// readings.read entry; a resident out of scope is ErrNotFound before any
// query; mixed ranges go one query at a time.
func TestReadingsSetOneQuery(t *testing.T) {
	reg := registry{"r1": {ID: "r1"}, "r2": {ID: "r2"}}
	src := &series{}
	rec := &auditor{}
	s := query.Service{Registry: reg, Series: setSeries{src}, Audit: rec}
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	qs := []query.ReadingsQuery{{Metric: "heart_rate", From: from, To: to, Every: time.Hour, Fn: "mean"}, {Metric: "steps", From: from, To: to, Every: time.Hour, Fn: "max"}}
	got, err := s.ReadingsSet(context.Background(), query.Principal{ID: "co", Role: query.RoleCoordinator}, "r1", qs)
	if err != nil {
		t.Fatal(err)
	}
	if len(src.sets) != 1 || src.single != 0 || len(got) != 2 || got[0][0].V != 10 || got[1][0].V != 5 {
		t.Fatalf("sets %d, single %d, answer %v", len(src.sets), src.single, got)
	}
	for _, q := range src.sets[0] {
		if q.ResidentID != "r1" {
			t.Errorf("query of %q, want r1", q.ResidentID)
		}
	}
	if qs[0].ResidentID != "" {
		t.Error("the caller's queries were changed")
	}
	if len(rec.entries) != 1 || rec.entries[0].Action != "readings.read" || rec.entries[0].ResidentID != "r1" {
		t.Errorf("audit %+v, want one readings.read of r1", rec.entries)
	}
	cg := query.Principal{ID: "cg", Role: query.RoleCaregiver, Residents: []string{"r2"}}
	if _, err := s.ReadingsSet(context.Background(), cg, "r1", qs); !errors.Is(err, query.ErrNotFound) || len(src.sets) != 1 || len(rec.entries) != 1 {
		t.Errorf("caregiver of r2 asking for r1: %v, %d sets, %d entries", err, len(src.sets), len(rec.entries))
	}
	mixed := append([]query.ReadingsQuery(nil), qs...)
	mixed[1].Every = 10 * time.Minute
	if _, err := s.ReadingsSet(context.Background(), cg, "r2", mixed); err != nil || len(src.sets) != 1 || src.single != 2 {
		t.Errorf("mixed windows: %v, %d sets, %d single queries", err, len(src.sets), src.single)
	}
}

// TestOverviewTrendsDaily: daily means come from the DailySource for every
// row at once (only the rows' residents), and from one query per row when
// it fails.
func TestOverviewTrendsDaily(t *testing.T) {
	src := &series{}
	s := query.Service{Series: src, Daily: src}
	rows := []query.OverviewRow{{Resident: devices.Resident{ID: "r2"}}, {Resident: devices.Resident{ID: "r9"}}}
	from := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	q := query.ReadingsQuery{Metric: "heart_rate", From: from, To: from.Add(14 * 24 * time.Hour), Every: 24 * time.Hour, Fn: "mean"}
	got := s.OverviewTrends(context.Background(), rows, q)
	if src.dailyCalled != 1 || src.single != 0 || len(got) != 2 || len(got[0]) != 1 || got[0][0].V != 2 || got[1] != nil {
		t.Fatalf("daily %d, single %d, answer %v", src.dailyCalled, src.single, got)
	}
	src.failDaily = true
	got = s.OverviewTrends(context.Background(), rows, q)
	if src.single != 2 || got[0][0].V != float64(len("heart_rate")) {
		t.Fatalf("after a failed daily query: single %d, answer %v", src.single, got)
	}
}
