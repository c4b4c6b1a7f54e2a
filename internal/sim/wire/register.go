package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/carehub/carehub/internal/sim"
	"github.com/rs/zerolog"
)

// Credentials are what registration issued for one device (contract §4
// POST /devices). The password is shown only once, so it lives in the state
// file, which is written with mode 0600 and never logged.
type Credentials struct {
	DeviceID    string `json:"device_id"`
	Kind        string `json:"kind"`
	ResidentID  string `json:"resident_id"`
	HomeID      string `json:"home_id"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	TopicPrefix string `json:"topic_prefix"`
}

// State is homesim's memory between runs: the id prefix it registered under
// and every device's credentials, so a restarted homesim reuses its devices
// instead of failing on 409 for ids whose passwords it can no longer learn.
type State struct {
	Prefix    string                 `json:"prefix"`
	Seed      int64                  `json:"seed"`
	API       string                 `json:"api"`
	Residents map[string]bool        `json:"residents"`
	Devices   map[string]Credentials `json:"devices"`

	mu sync.Mutex
}

// NewState returns an empty state for prefix and seed.
func NewState(prefix string, seed int64, api string) *State {
	return &State{Prefix: prefix, Seed: seed, API: api, Residents: map[string]bool{}, Devices: map[string]Credentials{}}
}

// LoadState reads a state file; a missing file is an empty state (ok=false).
func LoadState(path string) (st *State, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	st = &State{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, false, fmt.Errorf("state file %s: %w (delete it or run with -reset)", path, err)
	}
	if st.Residents == nil {
		st.Residents = map[string]bool{}
	}
	if st.Devices == nil {
		st.Devices = map[string]Credentials{}
	}
	return st, true, nil
}

// Save writes the state atomically with mode 0600: it holds passwords.
func (s *State) Save(path string) error {
	s.mu.Lock()
	b, err := json.MarshalIndent(s, "", "  ")
	s.mu.Unlock()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".homesim-state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Creds returns a device's credentials.
func (s *State) Creds(deviceID string) (Credentials, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.Devices[deviceID]
	return c, ok
}

func (s *State) putDevice(c Credentials) {
	s.mu.Lock()
	s.Devices[c.DeviceID] = c
	s.mu.Unlock()
}

func (s *State) hasResident(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Residents[id]
}

func (s *State) putResident(id string) {
	s.mu.Lock()
	s.Residents[id] = true
	s.mu.Unlock()
}

// Registrar registers residents and devices through carehub's HTTP API
// (contract §4) with the admin token.
type Registrar struct {
	API     string // e.g. http://127.0.0.1:8780 (the /api/v1 base is added)
	Token   string
	Client  *http.Client
	Log     zerolog.Logger
	Workers int // concurrent requests; carehub hashes each password slowly
	// SaveEvery saves the state after this many homes (and always at the
	// end), so an interrupted registration keeps what it was issued.
	SaveEvery int
	StatePath string
}

// ErrDeviceExists is returned when a device is registered already and the
// state file does not hold its password.
var ErrDeviceExists = errors.New("device already registered and its password is not in the state file: run with -reset to register fresh ids")

// APIError is an error answer of the API (contract §4 error shape).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("carehub API: %d %s: %s", e.Status, e.Code, e.Message)
}

// Register makes sure every home's resident and devices exist, registering
// what the state does not know yet, and returns how many devices it
// registered now.
func (r *Registrar) Register(ctx context.Context, homes []sim.HomeSpec, st *State) (int, error) {
	workers := max(1, r.Workers)
	saveEvery := r.SaveEvery
	if saveEvery <= 0 {
		saveEvery = 50
	}
	jobs := make(chan sim.HomeSpec)
	var (
		mu        sync.Mutex
		firstErr  error
		done      int
		regCount  int
		wg        sync.WaitGroup
		cctx, cnl = context.WithCancel(ctx)
	)
	defer cnl()
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cnl()
	}
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range jobs {
				n, err := r.registerHome(cctx, h, st)
				if err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				regCount += n
				done++
				save := r.StatePath != "" && n > 0 && done%saveEvery == 0
				mu.Unlock()
				if save {
					if err := st.Save(r.StatePath); err != nil {
						fail(err)
					}
				}
			}
		}()
	}
feed:
	for _, h := range homes {
		select {
		case jobs <- h:
		case <-cctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if r.StatePath != "" {
		if err := st.Save(r.StatePath); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return regCount, firstErr
}

func (r *Registrar) registerHome(ctx context.Context, h sim.HomeSpec, st *State) (int, error) {
	if !st.hasResident(h.ResidentID) {
		body := map[string]any{"id": h.ResidentID, "name": h.Name, "home_id": h.HomeID, "birth_year": h.BirthYear}
		err := r.post(ctx, "/residents", body, nil)
		var ae *APIError
		if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusConflict) {
			return 0, fmt.Errorf("resident %s: %w", h.ResidentID, err)
		}
		st.putResident(h.ResidentID)
	}
	n := 0
	for _, d := range h.Devices {
		if _, ok := st.Creds(d.ID); ok {
			continue
		}
		var resp struct {
			ID         string `json:"id"`
			Kind       string `json:"kind"`
			ResidentID string `json:"resident_id"`
			HomeID     string `json:"home_id"`
			MQTT       struct {
				Username    string `json:"username"`
				Password    string `json:"password"`
				TopicPrefix string `json:"topic_prefix"`
			} `json:"mqtt"`
		}
		err := r.post(ctx, "/devices", map[string]any{"id": d.ID, "kind": d.Kind, "resident_id": h.ResidentID}, &resp)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			return n, fmt.Errorf("device %s: %w", d.ID, ErrDeviceExists)
		}
		if err != nil {
			return n, fmt.Errorf("device %s: %w", d.ID, err)
		}
		if resp.MQTT.Username == "" || resp.MQTT.Password == "" {
			return n, fmt.Errorf("device %s: the API answered 201 without mqtt credentials", d.ID)
		}
		st.putDevice(Credentials{
			DeviceID: d.ID, Kind: d.Kind, ResidentID: h.ResidentID, HomeID: h.HomeID,
			Username: resp.MQTT.Username, Password: resp.MQTT.Password, TopicPrefix: resp.MQTT.TopicPrefix,
		})
		r.Log.Debug().Str("device_id", d.ID).Str("resident_id", h.ResidentID).Msg("device registered")
		n++
	}
	return n, nil
}

func (r *Registrar) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(r.API, "/")+"/api/v1"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.Token)
	c := r.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		ae := &APIError{Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode)}
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(rb, &eb) == nil && eb.Error.Code != "" {
			ae.Code, ae.Message = eb.Error.Code, eb.Error.Message
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			return fmt.Errorf("decoding %s answer: %w", path, err)
		}
	}
	return nil
}
