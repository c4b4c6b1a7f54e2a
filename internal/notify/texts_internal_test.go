package notify

import "testing"

func TestTextsParity(t *testing.T) {
	for k := range texts["ko"] {
		if texts["en"][k] == "" {
			t.Errorf("en lacks %q", k)
		}
	}
	for k := range texts["en"] {
		if texts["ko"][k] == "" {
			t.Errorf("ko lacks %q", k)
		}
	}
}
