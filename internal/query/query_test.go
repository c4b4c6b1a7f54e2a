package query_test

import (
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/query"
)

func TestCanSee(t *testing.T) {
	for _, c := range []struct {
		p    query.Principal
		want bool
	}{
		{query.Principal{Role: query.RoleAdmin}, true},
		{query.Principal{Role: query.RoleCoordinator}, true},
		{query.Principal{Role: query.RoleCaregiver, Residents: []string{"r1"}}, true},
		{query.Principal{Role: query.RoleCaregiver, Residents: []string{"r2"}}, false},
		{query.Principal{Role: query.RoleCaregiver}, false},
		{query.Principal{Role: "visitor", Residents: []string{"r1"}}, false},
		{query.Principal{}, false},
	} {
		if got := query.CanSee(c.p, "r1"); got != c.want {
			t.Errorf("%+v: CanSee = %v, want %v", c.p, got, c.want)
		}
	}
}

type settings map[string]rules.Settings

func (s settings) Settings(id string) rules.Settings { return s[id] }

func TestModeFrom(t *testing.T) {
	now := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	mode := query.ModeFrom(settings{
		"away":    {Mode: rules.ModeAway},
		"ended":   {Mode: rules.ModeHospital, ModeUntil: now},
		"running": {Mode: rules.ModeQuiet, ModeUntil: now.Add(time.Hour)},
	})
	for id, want := range map[string]string{"away": rules.ModeAway, "ended": "", "running": rules.ModeQuiet, "none": ""} {
		if got := mode(id, now); got != want {
			t.Errorf("%s: mode %q, want %q", id, got, want)
		}
	}
}
