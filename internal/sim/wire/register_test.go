package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/sim"
)

// fakeAPI implements the two registration endpoints of contract §4 with
// its error shape, and counts what it was asked.
type fakeAPI struct {
	token string

	mu        sync.Mutex
	residents map[string]map[string]any
	devices   map[string]string // id -> password
	posts     int
}

func newFakeAPI(t *testing.T, token string) (*fakeAPI, *httptest.Server) {
	a := &fakeAPI{token: token, residents: map[string]map[string]any{}, devices: map[string]string{}}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		apiError(w, 401, "unauthorized", "bad token")
		return
	}
	var body map[string]any
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil {
		apiError(w, 400, "bad_request", "want a JSON POST")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.posts++
	id, _ := body["id"].(string)
	switch r.URL.Path {
	case "/api/v1/residents":
		if name, _ := body["name"].(string); name == "" || !catalog.ValidID(id) || body["home_id"] == "" {
			apiError(w, 422, "invalid_resident", "id, name and home_id are required")
			return
		}
		if _, ok := a.residents[id]; ok {
			apiError(w, 409, "resident_exists", "resident exists")
			return
		}
		a.residents[id] = body
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(body)
	case "/api/v1/devices":
		kind, _ := body["kind"].(string)
		rid, _ := body["resident_id"].(string)
		res, ok := a.residents[rid]
		if !ok || !catalog.ValidKind(kind) || !catalog.ValidID(id) {
			apiError(w, 422, "invalid_device", "unknown resident or kind")
			return
		}
		if _, ok := a.devices[id]; ok {
			apiError(w, 409, "device_exists", "device exists")
			return
		}
		a.devices[id] = fmt.Sprintf("pw-%s-%d", id, a.posts)
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "kind": kind, "resident_id": rid, "home_id": res["home_id"],
			"mqtt": map[string]string{"username": id, "password": a.devices[id], "topic_prefix": "care/v1/dev/" + id + "/"}})
	default:
		apiError(w, 404, "not_found", "no such route")
	}
}

func TestRegisterAndReuseState(t *testing.T) {
	api, srv := newFakeAPI(t, "tok")
	homes, _ := sim.PlanHomes("reg-1", 1, 6)
	path := filepath.Join(t.TempDir(), "state.json")
	reg := &Registrar{API: srv.URL, Token: "tok", Log: zerolog.Nop(), Workers: 3, StatePath: path, SaveEvery: 2}
	st := NewState("reg-1", 1, srv.URL)
	n, err := reg.Register(context.Background(), homes, st)
	want := 0
	for _, h := range homes {
		want += len(h.Devices)
	}
	if err != nil || n != want || len(api.devices) != want || len(api.residents) != 6 {
		t.Fatalf("registered %d of %d, api has %d: %v", n, want, len(api.devices), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file %v mode %v", err, fi.Mode())
	}
	loaded, ok, err := LoadState(path)
	if err != nil || !ok || len(loaded.Devices) != want {
		t.Fatalf("state reload: %v %v", ok, err)
	}
	for id, pw := range api.devices {
		if c, _ := loaded.Creds(id); c.Password != pw || c.Username != id {
			t.Fatalf("%s: stored %+v", id, c)
		}
	}
	// A restart with the state file asks nothing more.
	posts := api.posts
	n, err = reg.Register(context.Background(), homes, loaded)
	if err != nil || n != 0 || api.posts != posts {
		t.Fatalf("second run registered %d with %d requests: %v", n, api.posts-posts, err)
	}
	// Two more homes: only they are registered.
	more, _ := sim.PlanHomes("reg-1", 1, 8)
	n, err = reg.Register(context.Background(), more, loaded)
	if err != nil || n != len(more[6].Devices)+len(more[7].Devices) {
		t.Fatalf("growing registered %d: %v", n, err)
	}
}

func TestRegisterExistingResidentIsFine(t *testing.T) {
	api, srv := newFakeAPI(t, "tok")
	homes, _ := sim.PlanHomes("reg-2", 1, 1)
	api.residents[homes[0].ResidentID] = map[string]any{"home_id": homes[0].HomeID}
	reg := &Registrar{API: srv.URL, Token: "tok", Log: zerolog.Nop()}
	if n, err := reg.Register(context.Background(), homes, NewState("reg-2", 1, srv.URL)); err != nil || n != len(homes[0].Devices) {
		t.Fatalf("%d %v", n, err)
	}
}

func TestRegisterExistingDeviceWithoutState(t *testing.T) {
	_, srv := newFakeAPI(t, "tok")
	homes, _ := sim.PlanHomes("reg-3", 1, 2)
	reg := &Registrar{API: srv.URL, Token: "tok", Log: zerolog.Nop()}
	if _, err := reg.Register(context.Background(), homes, NewState("reg-3", 1, srv.URL)); err != nil {
		t.Fatal(err)
	}
	// The state is lost: the devices exist but their passwords are gone.
	_, err := reg.Register(context.Background(), homes, NewState("reg-3", 1, srv.URL))
	if !errors.Is(err, ErrDeviceExists) {
		t.Fatalf("want ErrDeviceExists, got %v", err)
	}
}

func TestRegisterReportsAPIErrors(t *testing.T) {
	_, srv := newFakeAPI(t, "tok")
	homes, _ := sim.PlanHomes("reg-4", 1, 1)
	reg := &Registrar{API: srv.URL, Token: "wrong", Log: zerolog.Nop()}
	_, err := reg.Register(context.Background(), homes, NewState("reg-4", 1, srv.URL))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != "unauthorized" {
		t.Fatalf("got %v", err)
	}
}

func TestLoadStateMissingAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	if st, ok, err := LoadState(filepath.Join(dir, "none.json")); st != nil || ok || err != nil {
		t.Fatalf("missing file: %v %v %v", st, ok, err)
	}
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte("{"), 0o600)
	if _, _, err := LoadState(bad); err == nil {
		t.Fatal("corrupt state accepted")
	}
}
