package query

import (
	"testing"
	"time"

	"github.com/carehub/carehub/alerts"
)

// TestStatsWeekAndWindow: week keys are ISO weeks in the program time zone
// (a Sunday evening in UTC is already Monday of the next ISO year in
// Seoul), and an unanswered critical alert counts as missing a target only
// once that target's time has passed.
func TestStatsWeekAndWindow(t *testing.T) {
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	raised := time.Date(2027, 1, 3, 16, 0, 0, 0, time.UTC) // Mon 4 Jan 01:00 in Seoul
	week := StatsKeys(seoul)["week"]
	if k := week(alerts.Alert{RaisedAt: raised}); k != "2027-W01" {
		t.Fatalf("Seoul week %s", k)
	}
	if k := StatsKeys(time.UTC)["week"](alerts.Alert{RaisedAt: raised}); k != "2026-W53" {
		t.Fatalf("UTC week %s", k)
	}

	now := raised.Add(2 * time.Minute)
	as := []alerts.Alert{
		{Severity: "critical", RaisedAt: raised},                          // 2 min unanswered: missed 60 s, 3 min not yet due
		{Severity: "critical", RaisedAt: now.Add(-30 * time.Second)},      // within both windows: in neither denominator
		{Severity: "critical", RaisedAt: raised, Outcome: "auto_cleared"}, // device cancel: needs no answer
	}
	total, _ := ComputeAlertStats(as, StatsKeys(time.UTC)["severity"], now)
	c := total.Critical
	if c.Count != 2 || c.Share60s == nil || *c.Share60s != 0 || c.Share3m != nil {
		t.Fatalf("critical: %+v share60 %v share3m %v", c, c.Share60s, c.Share3m)
	}
}
