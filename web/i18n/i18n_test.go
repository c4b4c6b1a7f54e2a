package i18n

import (
	"strings"
	"testing"
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
