package i18n

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseRefusesDuplicateKeys(t *testing.T) {
	m, err := parse([]byte(`{"a": "x", "b": "y"}`))
	if err != nil || m["a"] != "x" || m["b"] != "y" {
		t.Fatalf("parse = %v, %v", m, err)
	}
	for _, bad := range []string{`{"a": "x", "a": "y"}`, `["a"]`, `{"a": 1}`, `{"a": "x"`} {
		if _, err := parse([]byte(bad)); err == nil {
			t.Errorf("parse(%s) accepted", bad)
		}
	}
	if _, err := parse([]byte(`{"rule.sos": "x", "rule.sos": "y"}`)); err == nil || !strings.Contains(err.Error(), "rule.sos") {
		t.Errorf("duplicate not named: %v", err)
	}
}

func TestUnackedAndTexts(t *testing.T) {
	cs := Catalogs{"en": {
		"alerts.unacked.now": "just raised", "alerts.unacked": "%d min", "alerts.unacked.h": "%d h %d min",
		"problem.a": "A %v", "problem.b": "B", "other": "x",
	}}
	raised := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		after time.Duration
		want  string
	}{{30 * time.Second, "just raised"}, {12 * time.Minute, "12 min"}, {59 * time.Minute, "59 min"}, {75 * time.Minute, "1 h 15 min"}} {
		if got := cs.Unacked("en", raised, raised.Add(c.after)); got != c.want {
			t.Errorf("Unacked after %v = %q, want %q", c.after, got, c.want)
		}
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(cs.Texts("en", "problem.")), &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["a"] != "A %v" || m["b"] != "B" {
		t.Errorf("Texts = %v", m)
	}
}
