package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/users"
)

// TestAlertTextsInLanguage: every page that shows an alert says what it
// is about in the page's language, from the catalogue by the rule id and
// the alert's parameters, not the rule engine's stored English text (which
// stays for a rule the catalogue does not know), and names the person who
// acknowledged it by their name, not their user id.
func TestAlertTextsInLanguage(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.user("co", "최코디", users.RoleCoordinator)
	h.user("cg", "정요양", users.RoleCaregiver, "r1")
	const stored = "systolic_bp 182 mm[Hg] for 5m0s (≥ 180)"
	a := h.raise("r1", rules.RuleSystolicBP, "critical", stored, time.Now().Add(-7*time.Minute))
	if err := h.mgr.Signal(context.Background(), rules.Signal{ResidentID: "r1", HomeID: "h-r1", Rule: "future_rule", Severity: "info",
		Active: true, Message: "a rule from a newer engine", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	h.raise("r1", rules.RuleInactivity, "warning", "no activity for 12h36m0s", time.Now().Add(-125*time.Minute))
	if _, err := h.mgr.Acknowledge(context.Background(), a.ID, "cg", ""); err != nil {
		t.Fatal(err)
	}
	h.raise("r1", rules.RuleSOS, "critical", "SOS button pressed", time.Now())
	co := h.client()
	co.login("co")
	cg := h.client()
	cg.login("cg")

	const ko = "수축기 혈압 182 mmHg — 기준 180 초과"
	for _, p := range []struct {
		c          *client
		path, want string
	}{
		{co, "/", ko},
		{co, "/alerts", ko},
		{co, "/alerts", "✓ 확인됨 · 정요양"},
		{co, "/alerts", "a rule from a newer engine"},
		{co, "/alerts/rows", ko},
		{co, "/alerts", "2시간 5분째 미확인"},
		{co, "/alerts", "12시간 36분 동안 움직임 없음 (기준 12시간)"},
		{cg, "/m/", "2시간 5분째 미확인"},
		{co, "/alerts", "새 알림 · 미확인"},
		{co, "/alerts/" + a.ID, ko},
		{co, "/alerts/" + a.ID, "확인 · 정요양"},
		{cg, "/m/", ko},
		{cg, "/m/alerts/" + a.ID, ko},
		{cg, "/m/alerts/" + a.ID, "정요양 · "},
		{co, "/alerts?lang=en", "Systolic BP 182 mmHg — above the limit of 180"},
		{co, "/alerts/" + a.ID, "Acknowledged · 정요양"},
		{co, "/?lang=ko", ko},
	} {
		_, body := p.c.do("GET", p.path, nil)
		if !strings.Contains(body, p.want) {
			t.Errorf("GET %s lacks %q", p.path, p.want)
		}
		for _, bad := range []string{stored, "· cg<", "· cg ·", ">cg · ", ">0분째"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s shows %q", p.path, bad)
			}
		}
	}
}
