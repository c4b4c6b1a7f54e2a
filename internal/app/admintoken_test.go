package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/app"
	"github.com/carehub/carehub/internal/config"
	"github.com/carehub/carehub/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.

// TestGeneratedAdminTokenNotLogged: without CARE_ADMIN_TOKEN carehub prints
// a generated token once to standard output, never into the log (which is
// shipped to log stores), and the token acts as the bootstrap admin, whose
// id no user can have.
func TestGeneratedAdminTokenNotLogged(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	vars := env(t, in.URL, db, map[string]string{"CARE_ADMIN_TOKEN": "", "CARE_LOG_LEVEL": "debug"})
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	var stdout, logs syncBuffer
	log := zerolog.New(&logs).Level(zerolog.DebugLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := app.Start(ctx, cfg, log, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	base := "http://" + a.HTTPAddr()
	waitReady(t, base)
	token := a.Config.AdminToken
	if len(token) < 16 || strings.Count(stdout.String(), token) != 1 {
		t.Fatalf("generated token not printed once to stdout: %q", stdout.String())
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/auth/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var me struct{ ID, Role string }
	_ = json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || me.ID != "@bootstrap-admin" || me.Role != "admin" {
		t.Fatalf("/auth/me with the generated token: %d %+v", resp.StatusCode, me)
	}
	a.Close()
	if logs.String() == "" {
		t.Fatal("no log written: the check below would prove nothing")
	}
	if strings.Contains(logs.String(), token) {
		t.Fatal("the generated admin token is in the log")
	}
}
