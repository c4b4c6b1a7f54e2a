package flux

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// writePoints writes one reading per (resident, device, time, metric, value).
func writePoints(t *testing.T, c *testDB, pts ...model.Reading) {
	t.Helper()
	var buf []byte
	for _, p := range pts {
		buf = influx.AppendReading(buf, p)
	}
	if err := c.WriteLines(ctxT(t), buf); err != nil {
		t.Fatal(err)
	}
}

func reading(rid, dev string, at time.Time, metric string, v float64) model.Reading {
	return model.Reading{ResidentID: rid, HomeID: "h-" + rid, DeviceID: dev, DeviceKind: "wearable", TS: at, Values: map[string]float64{metric: v}}
}

// TestDailyAggregates runs daily queries over Seoul days and nights on a
// real InfluxDB 1.8: values are per resident with several devices merged,
// a point exactly on a day's end belongs to the next day only, and a night
// is 22:00–06:00 local.
func TestDailyAggregates(t *testing.T) {
	c, _, _ := open18(t)
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	at := func(day, hour, minute int) time.Time { return time.Date(2026, 11, 20+day, hour, minute, 0, 0, seoul) }
	writePoints(t, c,
		reading("r1", "wear", at(0, 1, 0), "heart_rate", 70),
		reading("r1", "radar", at(0, 2, 0), "heart_rate", 60), // another device: merged
		reading("r1", "wear", at(0, 23, 0), "heart_rate", 90),
		reading("r1", "wear", at(1, 0, 0), "heart_rate", 50), // on day 0's end: day 1 only
		reading("r1", "wear", at(1, 12, 0), "heart_rate", 80),
		reading("r1", "wear", at(-1, 23, 59), "heart_rate", 10), // before From
		reading("r1", "wear", at(2, 0, 0), "heart_rate", 11),    // on To
		reading("r2", "wear", at(1, 9, 0), "heart_rate", 66),
		// The nights of days 0 and 1: 21:59 and 06:00 are outside them.
		reading("r1", "wear", at(0, 21, 59), "spo2", 80),
		reading("r1", "wear", at(0, 22, 0), "spo2", 96),
		reading("r1", "radar", at(1, 5, 59), "spo2", 92),
		reading("r1", "wear", at(1, 6, 0), "spo2", 70),
		reading("r1", "wear", at(1, 23, 0), "spo2", 90),
	)
	days := DailyQuery{Metric: "heart_rate", Fn: "min", From: at(0, 0, 0), To: at(2, 0, 0)}
	got, err := c.DailyAggregates(ctxT(t), days)
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got); s != "map[r1:[{0 60} {1 50}] r2:[{1 66}]]" {
		t.Fatalf("daily min: %s", s)
	}
	days.Fn = "max"
	if got, err = c.DailyAggregates(ctxT(t), days); err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got); s != "map[r1:[{0 90} {1 80}] r2:[{1 66}]]" {
		t.Fatalf("daily max: %s", s)
	}
	nights := DailyQuery{Metric: "spo2", Fn: "mean", From: at(0, 22, 0), To: at(2, 6, 0), Period: 8 * time.Hour}
	if got, err = c.DailyAggregates(ctxT(t), nights); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || fmt.Sprint(got["r1"]) != "[{0 94} {1 90}]" {
		t.Fatalf("night means: %v, want r1 = 94, 90", got)
	}
}

// TestDailyAggregatesDST: with a Location, days are calendar days there.
// Berlin's 25 October 2026 has 25 hours and the night into it 9: a point
// at 23:30 or 05:30 local belongs to its own day or night on both sides of
// the change, and one at 21:30 or 06:30 to none. Fixed 24-hour windows
// would shift by the hour after the change.
func TestDailyAggregatesDST(t *testing.T) {
	c, _, _ := open18(t)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(day, hour, minute int) time.Time { return time.Date(2026, 10, 23+day, hour, minute, 0, 0, berlin) }
	var pts []model.Reading
	for d := 0; d < 5; d++ {
		pts = append(pts,
			reading("r1", "wear", at(d, 0, 30), "heart_rate", float64(50+d)),
			reading("r1", "wear", at(d, 23, 30), "heart_rate", float64(100+d)),
			reading("r1", "wear", at(d, 21, 30), "spo2", 1), // before the night
			reading("r1", "wear", at(d, 22, 30), "spo2", float64(90+d)),
			reading("r1", "wear", at(d+1, 5, 30), "spo2", float64(90+d)),
			reading("r1", "wear", at(d+1, 6, 30), "spo2", 1), // after it
		)
	}
	writePoints(t, c, pts...)

	days := DailyQuery{Metric: "heart_rate", Fn: "min", From: at(0, 0, 0), To: at(5, 0, 0), Location: berlin}
	if n := len(days.spans()); n != 3 {
		t.Fatalf("%d spans, want 3: the days before the change, its day, the days after", n)
	}
	for fn, base := range map[string]int{"min": 50, "max": 100} {
		days.Fn = fn
		got, err := c.DailyAggregates(ctxT(t), days)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("map[r1:[{0 %d} {1 %d} {2 %d} {3 %d} {4 %d}]]", base, base+1, base+2, base+3, base+4)
		if s := fmt.Sprint(got); s != want {
			t.Errorf("daily %s across the change: %s, want %s", fn, s, want)
		}
	}
	nights := DailyQuery{Metric: "spo2", Fn: "min", From: at(0, 22, 0), To: at(5, 6, 0), Period: 8 * time.Hour, Location: berlin}
	got, err := c.DailyAggregates(ctxT(t), nights)
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got); s != "map[r1:[{0 90} {1 91} {2 92} {3 93} {4 94}]]" {
		t.Errorf("night minimum across the change: %s, want 90 to 94 (21:30 and 06:30 are outside)", s)
	}
}

// TestDailyAggregatesRejects: everything that reaches the query text is
// validated first.
func TestDailyAggregatesRejects(t *testing.T) {
	c := &Reader{bucket: "care/autogen"}
	d := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
	ok := DailyQuery{Metric: "steps", Fn: "max", From: d, To: d.Add(17 * 24 * time.Hour)}
	for _, tc := range []struct {
		name string
		edit func(*DailyQuery)
		want string
	}{
		{"unknown metric", func(q *DailyQuery) { q.Metric = `heart_rate") |> drop() //` }, "not in the catalogue"},
		{"fn not whitelisted", func(q *DailyQuery) { q.Fn = "sum" }, "use min, max or mean"},
		{"fn injection", func(q *DailyQuery) { q.Fn = "min() |> drop" }, "use min, max or mean"},
		{"short period", func(q *DailyQuery) { q.Period = time.Minute }, "from 1h to 24h"},
		{"long period", func(q *DailyQuery) { q.Period = 25 * time.Hour }, "from 1h to 24h"},
		{"inverted", func(q *DailyQuery) { q.To = q.From }, "from must be before to"},
		{"too long", func(q *DailyQuery) { q.To = q.From.Add(40 * 24 * time.Hour) }, "range longer"},
	} {
		q := ok
		tc.edit(&q)
		_, _, err := c.dailyFluxes(q)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	dailyFlux := func(q DailyQuery) (Flux, error) {
		fs, _, err := c.dailyFluxes(q)
		if err == nil && len(fs) != 1 {
			t.Fatalf("%d queries for fixed 24-hour days, want 1", len(fs))
		}
		if err != nil {
			return Flux{}, err
		}
		return fs[0], nil
	}
	f, err := dailyFlux(ok)
	if err != nil {
		t.Fatal(err)
	}
	// Local midnight in Seoul is 15:00 UTC: windows end (and start) there.
	if s := f.String(); !strings.Contains(s, `stop: 2026-12-07T14:59:59.999999999Z)`) || strings.Contains(s, `r._time`) || !strings.Contains(s, `window(every: 24h, period: 24h, offset: 15h)`) || !strings.Contains(s, `|> max()`) {
		t.Fatalf("query:\n%s", s)
	}
	ok.From, ok.Period = d.Add(7*time.Hour), 8*time.Hour // 22:00 KST, a night
	if f, err = dailyFlux(ok); err != nil || !strings.Contains(f.String(), `offset: 6h)`) {
		t.Fatalf("night query (%v):\n%s", err, f)
	}
}

// TestAround returns the raw points of [from, to) in time order, devices
// merged, and says when the limit cut them.
func TestAround(t *testing.T) {
	c, _, _ := open18(t)
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
	writePoints(t, c,
		reading("r1", "wear", t0.Add(-time.Minute), "heart_rate", 1), // before from
		reading("r1", "wear", t0, "heart_rate", 70),
		reading("r1", "radar", t0.Add(10*time.Minute), "heart_rate", 71),
		reading("r1", "wear", t0.Add(20*time.Minute), "heart_rate", 72),
		reading("r1", "wear", t0.Add(time.Hour), "heart_rate", 2), // on to: outside
		reading("r1", "wear", t0.Add(5*time.Minute), "spo2", 97),  // another metric
		reading("r2", "wear", t0.Add(5*time.Minute), "heart_rate", 3),
	)
	pts, more, err := c.Around(ctxT(t), "r1", "heart_rate", t0, t0.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if more || len(pts) != 3 || pts[0].V != 70 || !pts[0].T.Equal(t0) || pts[1].V != 71 || pts[2].V != 72 {
		t.Fatalf("around: %v (more %v)", pts, more)
	}
	pts, more, err = c.Around(ctxT(t), "r1", "heart_rate", t0, t0.Add(time.Hour), 2)
	if err != nil || !more || len(pts) != 2 || pts[1].V != 71 {
		t.Fatalf("around, limit 2: %v (more %v), %v", pts, more, err)
	}
	if _, _, err := c.Around(ctxT(t), `r1" or true or "`, "heart_rate", t0, t0.Add(time.Hour), 0); err == nil {
		t.Fatal("a hostile resident id was accepted")
	}
}

// TestDailyCache: an answer is reused within the TTL, even when new data
// arrived; after it the kept answer is still given at once while a fresh
// one is asked in the background; errors are not kept.
func TestDailyCache(t *testing.T) {
	c, _, _ := open18(t)
	var mu sync.Mutex
	clock := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	sc := NewDailyCache(c.Reader, 10*time.Minute, now)
	d := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	q := DailyQuery{Metric: "heart_rate", Fn: "min", From: d, To: d.Add(2 * time.Hour)}
	writePoints(t, c, reading("r1", "wear", d.Add(time.Minute), "heart_rate", 70))
	got, err := sc.DailyAggregates(ctxT(t), q)
	if err != nil || fmt.Sprint(got) != "map[r1:[{0 70}]]" {
		t.Fatalf("first answer: %v, %v", got, err)
	}
	writePoints(t, c, reading("r1", "wear", d.Add(2*time.Minute), "heart_rate", 50))
	mu.Lock()
	clock = clock.Add(9 * time.Minute)
	mu.Unlock()
	if got, err := sc.DailyAggregates(ctxT(t), q); err != nil || fmt.Sprint(got) != "map[r1:[{0 70}]]" {
		t.Fatalf("within the TTL: %v, %v (want the kept answer)", got, err)
	}
	if _, err := sc.DailyAggregates(ctxT(t), DailyQuery{Metric: "heart_rate", Fn: "sum", From: q.From, To: q.To}); err == nil {
		t.Fatal("an invalid query was answered")
	}
	mu.Lock()
	clock = clock.Add(2 * time.Minute)
	mu.Unlock()
	if got, err := sc.DailyAggregates(ctxT(t), q); err != nil || fmt.Sprint(got) != "map[r1:[{0 70}]]" {
		t.Fatalf("just after the TTL: %v, %v (want the kept answer, at once)", got, err)
	}
	testenv.WaitFor(t, 10*time.Second, "a fresh answer after the TTL", func() bool {
		got, err := sc.DailyAggregates(ctxT(t), q)
		return err == nil && fmt.Sprint(got) == "map[r1:[{0 50}]]"
	})
}
