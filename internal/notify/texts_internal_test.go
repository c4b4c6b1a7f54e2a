package notify

import (
	"testing"

	"github.com/carehub/carehub/web/i18n"
)

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

// TestTitleNamesTheRule: a push's title names the rule in the phone's
// language from the console's catalogue (not "[위급] sos"), and shows no
// value or name beyond the masked resident.
func TestTitleNamesTheRule(t *testing.T) {
	cat, err := i18n.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	n := Notification{Rule: "fall", Severity: "critical", Transition: "raised", ResidentMasked: "김○희"}
	for _, c := range []struct{ locale, title, body string }{
		{"ko", "[위급] 낙상", "김○희 님 · 새 알림"},
		{"en", "[Critical] Fall", "김○희 · new alert"},
		{"fr", "[위급] 낙상", "김○희 님 · 새 알림"}, // an unknown locale reads Korean, rule name included
	} {
		title, body := render(n, c.locale, cat.RuleName)
		if title != c.title || body != c.body {
			t.Errorf("%s: %q / %q, want %q / %q", c.locale, title, body, c.title, c.body)
		}
	}
	if title, _ := render(Notification{Rule: "no_such_rule", Severity: "high"}, "ko", cat.RuleName); title != "[경고] no_such_rule" {
		t.Errorf("unknown rule: %q", title)
	}
	if title, _ := render(n, "en", nil); title != "[Critical] fall" {
		t.Errorf("without names: %q", title)
	}
}
