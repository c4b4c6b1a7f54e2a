package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/testenv"
)

func writeEvent(t *testing.T, c *influx.Client, rid string, at time.Time, typ string) {
	t.Helper()
	line := fmt.Sprintf("events,resident_id=%s,home_id=h-%s,device_id=s-%s,type=%s value=1 %d\n", rid, rid, rid, typ, at.UnixMilli())
	if err := c.WriteLines(context.Background(), []byte(line)); err != nil {
		t.Fatal(err)
	}
}

type daySummary struct {
	Date            string `json:"date"`
	Vitals          []struct{ Metric string }
	ActivityPerHour []int64 `json:"activity_per_hour"`
	BathroomVisits  *int64  `json:"bathroom_visits"`
	Night           *struct {
		From, To time.Time
		BedExits int64 `json:"bed_exits"`
	} `json:"night"`
	Steps *struct {
		Today        *float64 `json:"today"`
		Baseline14d  *float64 `json:"baseline_14d"`
		BaselineDays int      `json:"baseline_days"`
		Ratio        *float64 `json:"ratio"`
	} `json:"steps"`
}

// TestDaySummaryExtras writes events and readings to the real influxd
// around the edges of a Seoul calendar day and its night, and checks
// activity per local hour, bathroom visits, night bed exits and steps
// against the 14-day baseline.
func TestDaySummaryExtras(t *testing.T) {
	h, c, seoul := trendsHarnessWith(t)
	h.resident("r1")
	h.resident("r2")
	care := h.user("care", "caregiver", "r2")
	d := h.clk.now().In(seoul).AddDate(0, 0, -2)
	at := func(days, hour, minute int) time.Time {
		return time.Date(d.Year(), d.Month(), d.Day()+days, hour, minute, 0, 0, seoul)
	}

	// Activity: hour 0, 8 (three), 9 (presence 1; presence 0 is nobody),
	// 23 (23:59, but not next midnight: InfluxDB 1.8's range includes its stop).
	writeEvent(t, c, "r1", at(0, 0, 0), "bed_enter")
	writeEvent(t, c, "r1", at(0, 8, 10), "motion")
	write(t, c, "r1", at(0, 8, 20), "motion", 3)
	writeEvent(t, c, "r1", at(0, 8, 59), "door_open")
	write(t, c, "r1", at(0, 9, 5), "presence", 0)
	write(t, c, "r1", at(0, 9, 6), "presence", 1)
	writeEvent(t, c, "r1", at(0, 23, 59), "door_close")
	writeEvent(t, c, "r1", at(-1, 23, 58), "motion") // the day before
	writeEvent(t, c, "r1", at(1, 0, 0), "motion")    // the day after
	writeEvent(t, c, "r1", at(0, 10, 0), "sos")      // not activity
	// Bathroom: two flushes that day.
	writeEvent(t, c, "r1", at(0, 7, 0), "toilet_flush")
	writeEvent(t, c, "r1", at(0, 13, 0), "toilet_flush")
	writeEvent(t, c, "r1", at(-1, 13, 0), "toilet_flush")
	// Night before, 22:00–06:00: three bed exits inside it.
	for _, x := range []time.Time{at(-1, 21, 59), at(-1, 23, 0), at(0, 2, 0), at(0, 5, 59), at(0, 6, 0), at(0, 22, 30)} {
		writeEvent(t, c, "r1", x, "bed_exit")
	}
	// Steps: a daily counter. Today 4000; baseline days -1 (3000), -3
	// (7000), -14 (2000) = 4000; day -15 is outside the 14 days.
	write(t, c, "r1", at(0, 9, 0), "steps", 2000)
	write(t, c, "r1", at(0, 21, 0), "steps", 4000)
	write(t, c, "r1", at(-1, 10, 0), "steps", 1000)
	write(t, c, "r1", at(-1, 23, 50), "steps", 3000)
	write(t, c, "r1", at(-3, 18, 0), "steps", 7000)
	write(t, c, "r1", at(-14, 0, 10), "steps", 2000)
	write(t, c, "r1", at(-15, 23, 50), "steps", 99999)
	write(t, c, "r1", at(0, 10, 0), "heart_rate", 70)

	var s daySummary
	path := "/api/v1/residents/r1/summary?date=" + d.Format(time.DateOnly)
	testenv.WaitFor(t, 10*time.Second, "summary data", func() bool {
		h.expect(http.StatusOK, "GET", path, adminToken, nil, &s)
		return s.BathroomVisits != nil && *s.BathroomVisits == 2
	})
	want := make([]int64, 24)
	want[0], want[8], want[9], want[23] = 1, 3, 1, 1
	want[2], want[5], want[6], want[22] = 1, 1, 1, 1 // bed exits are bed events too
	if fmt.Sprint(s.ActivityPerHour) != fmt.Sprint(want) {
		t.Fatalf("activity per hour %v, want %v", s.ActivityPerHour, want)
	}
	if s.Night == nil || s.Night.BedExits != 3 || !s.Night.From.Equal(at(-1, 22, 0)) || !s.Night.To.Equal(at(0, 6, 0)) {
		t.Fatalf("night: %+v", s.Night)
	}
	st := s.Steps
	if st == nil || !near(st.Today, 4000) || !near(st.Baseline14d, 4000) || st.BaselineDays != 3 || !near(st.Ratio, 1) {
		t.Fatalf("steps: %+v", st)
	}
	if len(s.Vitals) != 1 || s.Vitals[0].Metric != "heart_rate" {
		t.Fatalf("vitals: %+v", s.Vitals)
	}

	// A day without data: zeros, and steps without a today or a ratio.
	h.expect(http.StatusOK, "GET", "/api/v1/residents/r1/summary?date="+at(-30, 0, 0).Format(time.DateOnly), adminToken, nil, &s)
	if *s.BathroomVisits != 0 || s.Night.BedExits != 0 || s.Steps.Today != nil || s.Steps.Ratio != nil || len(s.ActivityPerHour) != 24 {
		t.Fatalf("empty day: %+v", s)
	}
	h.expect(422, "GET", "/api/v1/residents/r1/summary?date=yesterday", adminToken, nil, nil)
	h.expect(http.StatusNotFound, "GET", "/api/v1/residents/r1/summary", care, nil, nil)
}
