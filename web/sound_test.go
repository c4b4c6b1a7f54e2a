package web_test

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/carehub/carehub/internal/users"
)

// TestDutySound: the inbox offers the duty-station sound as an opt-in
// toggle, with its alarm embedded and served from the console itself.
func TestDutySound(t *testing.T) {
	h := newHarness(t)
	h.user("co", "최코디", users.RoleCoordinator)
	co := h.client()
	co.login("co")
	_, inbox := co.do("GET", "/alerts", nil)
	if ok, _ := regexp.MatchString(`<input type="checkbox" id="sound" data-testid="sound">`, inbox); !ok {
		t.Fatal("inbox has no sound toggle, or it is on by default")
	}
	src := regexp.MustCompile(`<audio id="alarm" src="(/static/alarm\.wav\?v=[0-9a-f]{12})"`).FindStringSubmatch(inbox)
	if src == nil {
		t.Fatal("inbox has no embedded alarm")
	}
	resp, body := co.do("GET", src[1], nil)
	if resp.StatusCode != http.StatusOK || len(body) < 1000 || body[:4] != "RIFF" {
		t.Fatalf("GET %s: %d, %d bytes", src[1], resp.StatusCode, len(body))
	}
}
