package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/influx/flux"
	"github.com/carehub/carehub/internal/testenv"
)

type driftJSON struct {
	Metric   string  `json:"metric"`
	Baseline float64 `json:"baseline"`
	Recent   float64 `json:"recent"`
	Change   float64 `json:"change"`
	Reason   string  `json:"reason"`
}

type overviewJSON struct {
	Residents []struct {
		ResidentID      string      `json:"resident_id"`
		OpenAlerts      int         `json:"open_alerts"`
		HighestSeverity string      `json:"highest_severity"`
		MissingData     bool        `json:"missing_data"`
		Drifting        []driftJSON `json:"drifting"`
	} `json:"residents"`
	DriftError string `json:"drift_error"`
}

// dailyData is one resident's days: what each of the 14 baseline days and
// the 3 recent days (before today, Seoul time) look like.
type dailyData struct {
	steps, restingHR, nightSpO2 [2]float64 // baseline, recent
	baselineDays                int        // how many of the 14 days have data
}

// writeDays writes 17 days of a resident's data through the real influxd:
// a steps counter at 09:00 (half) and 21:00 (the day's total); heart rate
// at 03:00 (the resting value) and 15:00 (20 higher); SpO2 at 23:00 and at
// 04:00 the next morning (the night), and 80 at noon (not the night).
func writeDays(t *testing.T, c *influx.Client, rid string, now time.Time, loc *time.Location, d dailyData) {
	t.Helper()
	today := now.In(loc)
	at := func(day, hour int) time.Time {
		return time.Date(today.Year(), today.Month(), today.Day()+day, hour, 0, 0, 0, loc)
	}
	var b strings.Builder
	line := func(at time.Time, field string, v float64) {
		fmt.Fprintf(&b, "readings,resident_id=%s,home_id=h-%s,device_id=w-%s,device_kind=wearable %s=%g %d\n", rid, rid, rid, field, v, at.UnixMilli())
	}
	for day := -17; day < 0; day++ {
		i := 0
		if day >= -3 {
			i = 1
		} else if day+17 >= d.baselineDays {
			continue
		}
		line(at(day, 9), "steps", d.steps[i]/2)
		line(at(day, 21), "steps", d.steps[i])
		line(at(day, 3), "heart_rate", d.restingHR[i])
		line(at(day, 15), "heart_rate", d.restingHR[i]+20)
		line(at(day, 23), "spo2", d.nightSpO2[i]+0.5)
		line(at(day+1, 4), "spo2", d.nightSpO2[i]-0.5)
		line(at(day, 12), "spo2", 80)
	}
	// Today's part day (a few steps, a low heart rate) is not judged yet.
	line(at(0, 0).Add(10*time.Minute), "steps", 100)
	line(at(0, 0).Add(20*time.Minute), "heart_rate", 40)
	// Something in the last 24 h, so that no one is missing data.
	line(now.Add(-time.Hour), "room_temp", 21)
	if err := c.WriteLines(context.Background(), []byte(b.String())); err != nil {
		t.Fatal(err)
	}
}

// TestOverviewDrift writes 17 days for residents through the real influxd
// and reads GET /overview: the resident whose steps fell and the one whose
// resting heart rate rose are flagged with the right metric and numbers;
// the steady one, one whose changes stay just under every threshold, and
// one with too few baseline days are not; the ranking puts alerts and
// missing data first; a caregiver sees only assigned residents.
func TestOverviewDrift(t *testing.T) {
	h, c, seoul := trendsHarnessWith(t)
	now := h.clk.now()
	steady := dailyData{steps: [2]float64{5000, 5000}, restingHR: [2]float64{60, 60}, nightSpO2: [2]float64{96, 96}, baselineDays: 14}
	residents := map[string]dailyData{
		"steady":     steady,
		"alerted":    steady,
		"steps-fell": {steps: [2]float64{5000, 2000}, restingHR: [2]float64{60, 61}, nightSpO2: [2]float64{96, 96}, baselineDays: 14},
		"hr-rose":    {steps: [2]float64{5000, 5100}, restingHR: [2]float64{58, 70}, nightSpO2: [2]float64{96, 96}, baselineDays: 14},
		"spo2-fell":  {steps: [2]float64{5000, 5000}, restingHR: [2]float64{60, 60}, nightSpO2: [2]float64{96, 93.5}, baselineDays: 14},
		// 61 % of the steps, +9/min, −1.9 points: all just inside.
		"near": {steps: [2]float64{5000, 3050}, restingHR: [2]float64{60, 69}, nightSpO2: [2]float64{96, 94.1}, baselineDays: 14},
		// A big fall, but only 6 baseline days: not enough to judge.
		"sparse": {steps: [2]float64{5000, 100}, restingHR: [2]float64{60, 90}, nightSpO2: [2]float64{96, 90}, baselineDays: 6},
	}
	for rid, d := range residents {
		h.resident(rid)
		writeDays(t, c, rid, now, seoul, d)
	}
	h.resident("quiet") // no data at all: missing data
	h.raise("alerted", "heart_rate", "warning")

	var ov overviewJSON
	testenv.WaitFor(t, 10*time.Second, "drift on the overview", func() bool {
		h.expect(http.StatusOK, "GET", "/api/v1/overview", adminToken, nil, &ov)
		return len(ov.Residents) == 5
	})
	var order []string
	drift := map[string][]driftJSON{}
	for _, r := range ov.Residents {
		order = append(order, r.ResidentID)
		drift[r.ResidentID] = r.Drifting
		if r.Drifting == nil {
			t.Fatalf("%s: drifting is null, want a list", r.ResidentID)
		}
	}
	if got := strings.Join(order, ","); got != "alerted,quiet,hr-rose,spo2-fell,steps-fell" || ov.DriftError != "" {
		t.Fatalf("overview order %s (drift error %q), want alerted,quiet, then the drifting by id: %+v", got, ov.DriftError, ov.Residents)
	}
	if len(drift["alerted"]) != 0 || len(drift["quiet"]) != 0 {
		t.Fatalf("steady residents drift: %+v", drift)
	}
	check := func(rid string, want driftJSON, reason string) {
		t.Helper()
		d := drift[rid]
		if len(d) != 1 || d[0].Metric != want.Metric || d[0].Baseline != want.Baseline || d[0].Recent != want.Recent ||
			d[0].Change != want.Change || !strings.Contains(d[0].Reason, reason) {
			t.Fatalf("%s drifting %+v, want %+v with reason containing %q", rid, d, want, reason)
		}
	}
	check("steps-fell", driftJSON{Metric: "steps", Baseline: 5000, Recent: 2000, Change: -3000}, "40 %")
	check("hr-rose", driftJSON{Metric: "heart_rate", Baseline: 58, Recent: 70, Change: 12}, "up 12")
	check("spo2-fell", driftJSON{Metric: "spo2", Baseline: 96, Recent: 93.5, Change: -2.5}, "down 2.5 points")

	care := h.user("care", "caregiver", "hr-rose", "steady")
	h.expect(http.StatusOK, "GET", "/api/v1/overview", care, nil, &ov)
	if len(ov.Residents) != 1 || ov.Residents[0].ResidentID != "hr-rose" || len(ov.Residents[0].Drifting) != 1 {
		t.Fatalf("caregiver's overview: %+v", ov.Residents)
	}
}

// failingBaselines answers the overview's last readings but not its
// baselines: the overview still answers, saying what is missing.
type failingBaselines struct{ api.TrendsSource }

func (failingBaselines) LastReadings(context.Context, time.Time, time.Time) (map[string]time.Time, error) {
	return map[string]time.Time{}, nil
}

func (failingBaselines) DailyAggregates(context.Context, flux.DailyQuery) (map[string][]flux.DayValue, error) {
	return nil, errors.New("influx query: connection refused")
}

func TestOverviewDriftUnavailable(t *testing.T) {
	h := newHarness(t, func(o *api.Options) { o.Trends, o.Baselines = failingBaselines{}, failingBaselines{} })
	h.resident("r1")
	var ov overviewJSON
	h.expect(http.StatusOK, "GET", "/api/v1/overview", adminToken, nil, &ov)
	if ov.DriftError == "" || len(ov.Residents) != 1 || !ov.Residents[0].MissingData || len(ov.Residents[0].Drifting) != 0 {
		t.Fatalf("overview without baselines: %+v", ov)
	}
}

// TestOverviewDrift100Residents is the overview at the size of a district
// team's caseload: 100 residents, 17 days of hourly heart rate, night-time
// SpO2 and a steps counter, through the real influxd. The right twenty are
// flagged, and flagged again from the cached baselines (flux.DailyCache).
// How fast is measured by make bench-api, not here.
func TestOverviewDrift100Residents(t *testing.T) {
	in := testenv.SharedInflux(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := influx.Open(ctx, influx.Options{URL: in.URL, Bucket: testenv.ID("care"), Version: "auto", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *api.Options) {
		cache := flux.NewDailyCache(flux.New(c), time.Hour, nil)
		o.Trends, o.Baselines, o.Location = cache, cache, seoul
	})
	now := h.clk.now()
	today := now.In(seoul)
	var b strings.Builder
	flush := func() {
		if err := c.WriteLines(ctx, []byte(b.String())); err != nil {
			t.Fatal(err)
		}
		b.Reset()
	}
	want := map[string]string{}
	for i := 0; i < 100; i++ {
		rid := fmt.Sprintf("r%03d", i)
		h.resident(rid)
		line := func(at time.Time, field string, v float64) {
			fmt.Fprintf(&b, "readings,resident_id=%s,home_id=h-%s,device_id=w-%s,device_kind=wearable %s=%g %d\n", rid, rid, rid, field, v, at.UnixMilli())
		}
		for day := -17; day < 0; day++ {
			steps, hr := 5000.0, 60.0
			if day >= -3 && i%10 == 0 {
				steps, want[rid] = 2000, "steps"
			}
			if day >= -3 && i%10 == 5 {
				hr, want[rid] = 72, "heart_rate"
			}
			for hour := 0; hour < 24; hour++ {
				at := time.Date(today.Year(), today.Month(), today.Day()+day, hour, 0, 0, 0, seoul)
				line(at, "heart_rate", hr+float64(hour%12))
				if hour >= 22 || hour < 6 {
					line(at, "spo2", 96)
				}
				if hour == 9 || hour == 21 {
					line(at, "steps", steps*float64(hour)/21)
				}
			}
		}
		line(now.Add(-time.Hour), "room_temp", 21)
		if i%20 == 19 {
			flush()
		}
	}
	var ov overviewJSON
	start := time.Now()
	h.expect(http.StatusOK, "GET", "/api/v1/overview", adminToken, nil, &ov)
	t.Logf("overview of 100 residents, baselines from InfluxDB: %v", time.Since(start))
	drifting := func(ov overviewJSON) map[string]string {
		t.Helper()
		got := map[string]string{}
		for _, r := range ov.Residents {
			if len(r.Drifting) != 1 || r.MissingData || r.OpenAlerts != 0 {
				t.Fatalf("%s: %+v", r.ResidentID, r)
			}
			got[r.ResidentID] = r.Drifting[0].Metric
		}
		return got
	}
	if got := drifting(ov); fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 20 {
		t.Fatalf("drifting %v, want %v", got, want)
	}
	start = time.Now()
	h.expect(http.StatusOK, "GET", "/api/v1/overview", adminToken, nil, &ov)
	t.Logf("overview of 100 residents, baselines cached: %v", time.Since(start))
	if got := drifting(ov); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("from the cached baselines: drifting %v, want %v", got, want)
	}
}

// countingBaselines counts the baseline queries it is asked.
type countingBaselines struct {
	api.TrendsSource
	n atomic.Int64
}

func (c *countingBaselines) DailyAggregates(context.Context, flux.DailyQuery) (map[string][]flux.DayValue, error) {
	c.n.Add(1)
	return nil, nil
}

// TestWarmBaselines: the warmer asks the overview's three baseline
// queries at once, again every interval, and stops with its context.
func TestWarmBaselines(t *testing.T) {
	src := &countingBaselines{}
	h := newHarness(t, func(o *api.Options) { o.Trends, o.Baselines = src, src })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.srv.WarmBaselines(ctx, 20*time.Millisecond) }()
	testenv.WaitFor(t, 5*time.Second, "two rounds of three queries", func() bool { return src.n.Load() >= 6 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WarmBaselines did not return when its context ended")
	}
	if n := src.n.Load(); n%3 != 0 {
		t.Fatalf("%d queries: rounds of three expected", n)
	}
}
