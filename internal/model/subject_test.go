package model

import (
	"strings"
	"testing"
)

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
		{ReadingPartitionSubject(ReadingPartition("r1")), "r1", "d1", true},
		{ReadingPartitionSubject((ReadingPartition("r1") + 1) % ReadingPartitions), "r1", "d1", false},
		{"care.readings.batch._p99", "r1", "d1", false},
	} {
		if got := SubjectMatchesIDs(c.subject, c.rid, c.did); got != c.want {
			t.Errorf("SubjectMatchesIDs(%q, %q, %q) = %v, want %v", c.subject, c.rid, c.did, got, c.want)
		}
	}
}

func TestResidentOfAlertSubject(t *testing.T) {
	for subject, want := range map[string]string{
		"care.alerts.r1.critical":  "r1",
		AlertSubject("r-2", "low"): "r-2",
		"care.alerts.r1":           "r1",
		"care.events.r1.d1":        "",
		"care.alertsx.r1.high":     "",
	} {
		if got := ResidentOfAlertSubject(subject); got != want {
			t.Errorf("ResidentOfAlertSubject(%q) = %q, want %q", subject, got, want)
		}
	}
}

func TestSubjectKind(t *testing.T) {
	for subject, want := range map[string]string{
		"care.readings.r1.d1":      "readings",
		"care.readings.batch.r1":   "readings",
		"care.events.r1.d1":        "events",
		"care.ingest.rejected.d1":  "ingest",
		"elsewhere.readings.r1.d1": "elsewhere.readings.r1.d1",
		ReadingBatchSubject("r1"):  "readings",
		EmergencySubject("r1"):     "escalation",
		SubjectAuditMulti:          "audit",
	} {
		if got := SubjectKind(subject); got != want {
			t.Errorf("SubjectKind(%q) = %q, want %q", subject, got, want)
		}
	}
}

// TestResidentFilters: each filter takes one resident's messages and no
// other's, in the shapes carehub publishes.
func TestResidentFilters(t *testing.T) {
	published := map[string][]string{
		StreamReadings:   {ReadingSubject("r1", "d1"), ReadingSubject("r2", "d1")},
		StreamEvents:     {EventSubject("r1", "d1"), EventSubject("r2", "d1")},
		StreamStatus:     {StatusSubject("r1", "d1"), StatusSubject("r2", "d1")},
		StreamAlerts:     {AlertSubject("r1", "high"), AlertSubject("r2", "high")},
		StreamEscalation: {EmergencySubject("r1"), EmergencySubject("r2")},
	}
	filters := ResidentFilters("r1")
	if len(filters) != len(published) {
		t.Fatalf("filters for %d streams, want %d", len(filters), len(published))
	}
	for stream, subjects := range published {
		f := filters[stream]
		if !matches(f, subjects[0]) || matches(f, subjects[1]) {
			t.Errorf("%s: filter %q must take %q and not %q", stream, f, subjects[0], subjects[1])
		}
	}
}

// matches is NATS subject matching, enough for the filters above.
func matches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

func TestReadingPartition(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		rid := "r" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26%26))
		p := ReadingPartition(rid)
		if p < 0 || p >= ReadingPartitions || ReadingPartition(rid) != p {
			t.Fatalf("ReadingPartition(%q) = %d", rid, p)
		}
		seen[p] = true
	}
	if len(seen) != ReadingPartitions {
		t.Errorf("1000 ids use %d of %d partitions", len(seen), ReadingPartitions)
	}
	if s := ReadingPartitionSubject(7); s != "care.readings.batch._p7" {
		t.Error(s)
	}
}
