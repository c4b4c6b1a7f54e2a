package model

import "testing"

func TestSubjectMatchesIDs(t *testing.T) {
	for _, c := range []struct {
		subject, rid, did string
		want              bool
	}{
		{"care.readings.r1.d1", "r1", "d1", true},
		{"care.events.r1.d1", "r1", "d1", true},
		{"care.status.r1.d1", "r1", "d1", true},
		{"care.events.r1.d1", "r2", "d1", false},
		{"care.events.r1.d1", "r1", "d2", false},
		{"care.events.r1.d1", "", "d1", false},
		{"care.events.r1.d1", "r1", "", false},
		{"care.events.r1.d1.x", "r1", "d1.x", false},
		{"care.events.r1.d1.x", "r1.d1", "x", false},
		{"care.alerts.r1.d1", "r1", "d1", false},
		{"care.readings.", "", "", false},
		{"care.readings.r1", "r1", "", false},
		{"care.readings.batch.r1", "r1", "d1", true},
		{"care.readings.batch.r1", "r2", "d1", false},
		{"care.readings.batch.r1.x", "r1", "d1", false},
		{"care.events.batch.r1", "r1", "d1", false},
	} {
		if got := SubjectMatchesIDs(c.subject, c.rid, c.did); got != c.want {
			t.Errorf("SubjectMatchesIDs(%q, %q, %q) = %v, want %v", c.subject, c.rid, c.did, got, c.want)
		}
	}
}
