package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/model"
)

// listen serves the harness's app on a loopback port for tests that need a
// real connection (alert streams) and returns its base URL.
func (h *harness) listen() string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = h.srv.App().Listener(ln) }()
	return "http://" + ln.Addr().String()
}

// rawStream is an open /alerts/stream: lines as they arrive; lines is
// closed when the server ends the stream.
type rawStream struct {
	lines <-chan string
	stop  func()
}

// dialStream opens /alerts/stream and returns the status and, when 200,
// the stream.
func dialStream(t *testing.T, base, token string) (int, *rawStream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/alerts/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return resp.StatusCode, nil
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // a test that does not read does not block the reader
			}
		}
	}()
	t.Cleanup(cancel)
	return resp.StatusCode, &rawStream{lines: lines, stop: cancel}
}

// waitLine waits up to d for a line for which match is true.
func (s *rawStream) waitLine(t *testing.T, d time.Duration, match func(string) bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("stream closed before the expected line")
			}
			if match(l) {
				return
			}
		case <-deadline:
			t.Fatalf("no expected line within %s", d)
		}
	}
}

// waitClosed waits up to d for the server to end the stream and returns
// the lines it sent meanwhile.
func (s *rawStream) waitClosed(t *testing.T, d time.Duration) []string {
	t.Helper()
	var got []string
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return got
			}
			got = append(got, l)
		case <-deadline:
			t.Fatalf("stream still open after %s; last lines %q", d, got[max(0, len(got)-6):])
			return nil
		}
	}
}

// TestDisabledUserLockedOut: a disabled user cannot log in, their tokens
// stop working and their open alert stream ends at once; re-enabling does
// not revive old tokens; only admins manage users, never their own account;
// a deleted user's token does not work for a new user of the same id; every
// change is audited.
func TestDisabledUserLockedOut(t *testing.T) {
	// The heartbeat and the periodic re-check are far away: the stream must
	// end because of the disable itself.
	h := newHarness(t, func(o *api.Options) { o.Heartbeat = time.Minute; o.StreamRecheck = time.Hour })
	base := h.listen()
	h.resident("r1")
	created := h.user("leaver", "caregiver", "r1")
	coord := h.user("coord", "coordinator")
	boss := h.user("boss", "admin")
	login := func(password string, want int) string {
		t.Helper()
		var out struct{ Token string }
		h.expect(want, "POST", "/api/v1/auth/login", "", map[string]any{"id": "leaver", "password": password}, &out)
		return out.Token
	}
	h.clk.add(time.Second)
	loggedIn := login("pass-leaver-long", http.StatusOK)

	st, stream := dialStream(t, base, loggedIn)
	if st != http.StatusOK {
		t.Fatalf("stream: %d", st)
	}
	stream.waitLine(t, 5*time.Second, func(l string) bool { return l == ": connected" })

	// Only admins, and not on their own account.
	for _, tok := range []string{coord, created} {
		h.expect(http.StatusForbidden, "POST", "/api/v1/users/leaver/disable", tok, nil, nil)
		h.expect(http.StatusForbidden, "DELETE", "/api/v1/users/leaver", tok, nil, nil)
		h.expect(http.StatusForbidden, "PUT", "/api/v1/users/leaver/role", tok, map[string]any{"role": "admin"}, nil)
		h.expect(http.StatusForbidden, "POST", "/api/v1/users/leaver/password", tok, map[string]any{"password": "new-password-1"}, nil)
	}
	if b := h.expect(422, "POST", "/api/v1/users/boss/disable", boss, nil, nil); errCode(b) != "own_account" {
		t.Fatalf("self-disable: %s", b)
	}
	h.expect(http.StatusNotFound, "POST", "/api/v1/users/nobody/disable", boss, nil, nil)

	var u struct {
		Disabled bool `json:"disabled"`
	}
	start := time.Now()
	h.expect(http.StatusOK, "POST", "/api/v1/users/leaver/disable", boss, nil, &u)
	if !u.Disabled {
		t.Fatalf("disable answered %+v", u)
	}
	lines := stream.waitClosed(t, 3*time.Second)
	if !strings.Contains(strings.Join(lines, "\n"), "event: end") {
		t.Fatalf("stream ended without an end event: %q", lines)
	}
	t.Logf("stream ended %s after the disable", time.Since(start).Round(time.Millisecond))
	for _, tok := range []string{created, loggedIn} {
		h.expect(http.StatusUnauthorized, "GET", "/api/v1/auth/me", tok, nil, nil)
	}
	if st, _ := dialStream(t, base, created); st != http.StatusUnauthorized {
		t.Fatalf("new stream of a disabled user: %d", st)
	}
	h.clk.add(time.Second)
	login("pass-leaver-long", http.StatusUnauthorized) // the right password, still refused
	h.expect(http.StatusOK, "GET", "/api/v1/users/leaver", adminToken, nil, &u)
	if !u.Disabled {
		t.Fatal("GET /users/leaver does not show disabled")
	}

	// Enabling lets them log in again; tokens from before stay dead.
	h.expect(http.StatusOK, "POST", "/api/v1/users/leaver/enable", boss, nil, nil)
	h.clk.add(time.Second)
	fresh := login("pass-leaver-long", http.StatusOK)
	h.expect(http.StatusUnauthorized, "GET", "/api/v1/auth/me", loggedIn, nil, nil)

	// A password reset logs everyone out and replaces the password.
	h.clk.add(time.Second)
	h.expect(422, "POST", "/api/v1/users/leaver/password", boss, map[string]any{"password": "short"}, nil)
	h.expect(http.StatusOK, "POST", "/api/v1/users/leaver/password", boss, map[string]any{"password": "new-password-1"}, nil)
	h.expect(http.StatusUnauthorized, "GET", "/api/v1/auth/me", fresh, nil, nil)
	h.clk.add(time.Second)
	login("pass-leaver-long", http.StatusUnauthorized)
	fresh = login("new-password-1", http.StatusOK)

	// A role change takes effect on the next request and drops the
	// caregiver's assignment.
	var me struct {
		Role        string   `json:"role"`
		ResidentIDs []string `json:"resident_ids"`
	}
	h.expect(422, "PUT", "/api/v1/users/leaver/role", boss, map[string]any{"role": "root"}, nil)
	h.expect(http.StatusOK, "PUT", "/api/v1/users/leaver/role", boss, map[string]any{"role": "coordinator"}, nil)
	h.expect(http.StatusOK, "GET", "/api/v1/auth/me", fresh, nil, &me)
	if me.Role != "coordinator" || len(me.ResidentIDs) != 0 {
		t.Fatalf("after role change: %+v", me)
	}

	// Delete: the token dies, and a new user of the same id does not
	// inherit it.
	h.expect(http.StatusNoContent, "DELETE", "/api/v1/users/leaver", boss, nil, nil)
	h.expect(http.StatusUnauthorized, "GET", "/api/v1/auth/me", fresh, nil, nil)
	h.expect(http.StatusNotFound, "GET", "/api/v1/users/leaver", boss, nil, nil)
	h.user("leaver", "coordinator")
	h.expect(http.StatusUnauthorized, "GET", "/api/v1/auth/me", fresh, nil, nil)

	var res audit.Result
	from := h.clk.now().Add(-time.Hour).Format(time.RFC3339)
	h.expect(http.StatusOK, "GET", "/api/v1/audit?from="+from+"&limit=1000", adminToken, nil, &res)
	want := map[string]bool{"user.disable": true, "user.enable": true, "user.password_reset": true, "user.role": true, "user.delete": true}
	for _, e := range res.Entries {
		if want[e.Action] && e.Actor == "boss" && e.Target == "leaver" && e.Outcome == audit.OutcomeOK {
			delete(want, e.Action)
		}
	}
	if len(want) > 0 {
		t.Fatalf("not audited: %v", want)
	}
}

// TestParallelLoginGuessesLimited: many parallel wrong passwords for one
// user from one address: at most the limit are checked (401), the rest are
// refused before the password check (429).
func TestParallelLoginGuessesLimited(t *testing.T) {
	h := newHarness(t, nil)
	h.user("kim", "coordinator")
	const n = 40
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _, _ := h.call("POST", "/api/v1/auth/login", "", map[string]any{"id": "kim", "password": "wrong-password-" + strconv.Itoa(i)}, nil)
			statuses <- st
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	// 503 login_busy is a guess that waited too long for a hashing slot:
	// it was not checked either.
	if count[http.StatusUnauthorized] > 5 || count[http.StatusTooManyRequests] < n-5 ||
		count[http.StatusUnauthorized]+count[http.StatusTooManyRequests]+count[http.StatusServiceUnavailable] != n {
		t.Fatalf("%d parallel guesses: %v; want at most 5 checked (401), the rest 429", n, count)
	}
}

// TestLoginBackoffPerAddress: an attacker failing for a user from one
// address is held back there, while the real user logs in from another.
func TestLoginBackoffPerAddress(t *testing.T) {
	h := newHarness(t, func(o *api.Options) { o.TrustedProxies = []string{"0.0.0.0"} })
	h.user("kim", "coordinator")
	from := func(addr string) []string { return []string{"X-Forwarded-For", addr} }
	for range 10 {
		h.call("POST", "/api/v1/auth/login", "", map[string]any{"id": "kim", "password": "wrong-password"}, nil, from("203.0.113.7")...)
	}
	if st, _, b := h.call("POST", "/api/v1/auth/login", "", map[string]any{"id": "kim", "password": "pass-kim-long"}, nil, from("203.0.113.7")...); st != http.StatusTooManyRequests {
		t.Fatalf("the attacker's address is not held back: %d %s", st, b)
	}
	h.expect(http.StatusOK, "POST", "/api/v1/auth/login", "", map[string]any{"id": "kim", "password": "pass-kim-long"}, nil, from("198.51.100.9")...)
}

// TestLoginHashingBounded: password checks run a bounded number at a time;
// a login that cannot get a slot in time is refused with 503 login_busy
// instead of queueing without end.
func TestLoginHashingBounded(t *testing.T) {
	h := newHarness(t, func(o *api.Options) { o.TrustedProxies = []string{"0.0.0.0"} })
	h.user("kim", "coordinator")
	h.users.LimitHashing(1, time.Millisecond)
	const n = 12
	var wg sync.WaitGroup
	type answer struct {
		st   int
		code string
		ra   string
	}
	answers := make(chan answer, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each from its own address, so the attempt limit is not what refuses them.
			st, hdr, b := h.call("POST", "/api/v1/auth/login", "", map[string]any{"id": "kim", "password": "wrong-password"}, nil,
				"X-Forwarded-For", "203.0.113."+strconv.Itoa(i+1))
			answers <- answer{st, errCode(b), hdr.Get("Retry-After")}
		}()
	}
	wg.Wait()
	close(answers)
	busy := 0
	for a := range answers {
		switch {
		case a.st == http.StatusServiceUnavailable && a.code == "login_busy" && a.ra != "":
			busy++
		case a.st == http.StatusUnauthorized:
		default:
			t.Fatalf("unexpected answer %+v", a)
		}
	}
	if busy == 0 {
		t.Fatalf("%d parallel password checks with one slot and 1 ms wait: none refused", n)
	}
}

// TestForwardedForRightmostUntrusted: the client address is the rightmost
// X-Forwarded-For entry that is not a trusted proxy, only when the peer is
// a trusted proxy, and never an entry that is not an IP address.
func TestForwardedForRightmostUntrusted(t *testing.T) {
	// app.Test's peer address is 0.0.0.0.
	for _, group := range []struct {
		proxies []string
		cases   map[string]string // X-Forwarded-For → the source audited
	}{
		{[]string{"0.0.0.0", "10.0.0.0/8"}, map[string]string{
			"1.2.3.4, 203.0.113.9, 10.0.0.2":   "203.0.113.9", // the client's forged 1.2.3.4 is ignored
			"203.0.113.9, not-an-ip, 10.0.0.5": "10.0.0.5",    // garbage ends the walk at the last trusted hop
			"<script>":                         "0.0.0.0",     // never the raw header
			"2001:db8::1":                      "2001:db8::1", // IPv6
			"10.0.0.1,10.0.0.2":                "10.0.0.1",    // every hop trusted: the leftmost
		}},
		{[]string{"10.0.0.0/8"}, map[string]string{
			"203.0.113.9": "0.0.0.0", // an untrusted peer's header is ignored
		}},
	} {
		h := newHarness(t, func(o *api.Options) { o.TrustedProxies = group.proxies })
		i := 0
		for xff, want := range group.cases {
			// One resident per case: its audit entry is the only one.
			i++
			rid := "r" + strconv.Itoa(i)
			h.resident(rid)
			h.expect(http.StatusOK, "GET", "/api/v1/residents/"+rid, adminToken, nil, nil, "X-Forwarded-For", xff)
			var res audit.Result
			from := h.clk.now().Add(-time.Minute).Format(time.RFC3339)
			h.expect(http.StatusOK, "GET", "/api/v1/audit?resident_id="+rid+"&from="+from, adminToken, nil, &res)
			got := "no resident.read entry"
			for _, e := range res.Entries {
				if e.Action == "resident.read" {
					got = e.Source
				}
			}
			if got != want {
				t.Errorf("proxies %v, X-Forwarded-For %q: source %q, want %q", group.proxies, xff, got, want)
			}
		}
	}
}

// TestStreamCapPerUser: one user may hold at most MaxStreamsPerUser alert
// streams (429 too_many_streams after that); other users are not affected,
// and a closed stream frees its slot.
func TestStreamCapPerUser(t *testing.T) {
	h := newHarness(t, func(o *api.Options) { o.MaxStreamsPerUser = 2; o.Heartbeat = 100 * time.Millisecond })
	base := h.listen()
	h.resident("r1")
	care := h.user("care", "caregiver", "r1")
	other := h.user("other", "caregiver", "r1")
	var open []*rawStream
	for range 2 {
		st, s := dialStream(t, base, care)
		if st != http.StatusOK {
			t.Fatalf("stream within the cap: %d", st)
		}
		open = append(open, s)
	}
	st, _, b := h.call("GET", "/api/v1/alerts/stream", care, nil, nil)
	if st != http.StatusTooManyRequests || errCode(b) != "too_many_streams" {
		t.Fatalf("third stream: %d %s", st, b)
	}
	if st, _ := dialStream(t, base, other); st != http.StatusOK {
		t.Fatalf("another user's stream: %d", st)
	}
	open[0].stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, s := dialStream(t, base, care)
		if st == http.StatusOK {
			s.stop()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed 5 s after a client left: %d", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStreamRechecksAssignment: a caregiver unassigned from a resident
// (here straight in the store, as another instance would) stops receiving
// that resident's alerts within the re-check period, though the stream is
// busy and never reaches a heartbeat.
func TestStreamRechecksAssignment(t *testing.T) {
	h := newHarness(t, func(o *api.Options) { o.Heartbeat = time.Hour; o.StreamRecheck = 300 * time.Millisecond })
	base := h.listen()
	h.resident("r1")
	h.resident("r2")
	care := h.user("care", "caregiver", "r1", "r2")
	st, stream := dialStream(t, base, care)
	if st != http.StatusOK {
		t.Fatalf("stream: %d", st)
	}
	stream.waitLine(t, 5*time.Second, func(l string) bool { return l == ": connected" })

	// Keep the stream busy with r2's transitions.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			b, _ := json.Marshal(map[string]any{"id": "a-" + strconv.Itoa(i), "resident_id": "r2", "transition": "raised"})
			_, _ = h.js.Publish(ctx, model.AlertSubject("r2", "high"), b)
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	stream.waitLine(t, 5*time.Second, func(l string) bool { return strings.HasPrefix(l, "event: raised") })

	if _, err := h.users.SetResidents(context.Background(), "care", []string{"r2"}); err != nil {
		t.Fatal(err)
	}
	lines := stream.waitClosed(t, 3*time.Second)
	if !strings.Contains(strings.Join(lines, "\n"), `"reason":"access changed; reconnect"`) {
		t.Fatalf("stream ended without saying why: %q", lines[max(0, len(lines)-5):])
	}
	// Reconnecting gives the new scope.
	if st, _ := dialStream(t, base, care); st != http.StatusOK {
		t.Fatalf("reconnect: %d", st)
	}
}

// TestSecurityHeaders: every answer says nosniff and no-referrer; every
// /api/v1 answer (personal data) says no-store, errors included.
func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	for _, c := range []struct {
		method, path, token string
		apiV1               bool
	}{
		{"GET", "/api/v1/residents/r1", adminToken, true},
		{"GET", "/api/v1/residents", adminToken, true},
		{"GET", "/api/v1/residents/r1", "", true},
		{"GET", "/api/v1/no-such-route", adminToken, true},
		{"GET", "/api/v1/openapi.json", "", true},
		{"GET", "/healthz", "", false},
		{"GET", "/nothing-here", "", false},
	} {
		_, hdr, _ := h.call(c.method, c.path, c.token, nil, nil)
		if hdr.Get("X-Content-Type-Options") != "nosniff" || hdr.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s %s: headers %v", c.method, c.path, hdr)
		}
		if c.apiV1 && hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: Cache-Control %q, want no-store", c.method, c.path, hdr.Get("Cache-Control"))
		}
	}
}

// TestAssignDoesNotRevealUsers: assigning an alert to an unknown user id,
// to a disabled user or to a caregiver who may not see the resident gets
// one and the same answer.
func TestAssignDoesNotRevealUsers(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	h.resident("r2")
	care := h.user("care", "caregiver", "r1")
	h.user("care2", "caregiver", "r2")
	h.user("gone", "caregiver", "r1")
	h.expect(http.StatusOK, "POST", "/api/v1/users/gone/disable", adminToken, nil, nil)
	a := h.raise("r1", "heart_rate", "high")
	h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+a.ID+"/assign", adminToken, map[string]any{"user_id": "care"}, nil)
	var first []byte
	for _, target := range []string{"nobody", "care2", "gone"} {
		st, _, b := h.call("POST", "/api/v1/alerts/"+a.ID+"/assign", care, map[string]any{"user_id": target}, nil)
		if st != 422 {
			t.Fatalf("assign to %s: %d %s", target, st, b)
		}
		if first == nil {
			first = b
		} else if string(b) != string(first) {
			t.Fatalf("answers differ: %s vs %s", first, b)
		}
	}
}

// TestBootstrapAdminID: the CARE_ADMIN_TOKEN acts as an id no user can
// have, so an audit entry of the bootstrap admin is never a user's.
func TestBootstrapAdminID(t *testing.T) {
	h := newHarness(t, nil)
	var me struct{ ID string }
	h.expect(http.StatusOK, "GET", "/api/v1/auth/me", adminToken, nil, &me)
	if me.ID != api.BootstrapAdminID || me.ID == "admin" {
		t.Fatalf("bootstrap admin is %q", me.ID)
	}
	h.expect(422, "POST", "/api/v1/users", adminToken, map[string]any{"id": api.BootstrapAdminID, "name": "X", "role": "admin"}, nil)
	tok := h.user("admin", "admin")
	h.expect(http.StatusOK, "GET", "/api/v1/auth/me", tok, nil, &me)
	if me.ID != "admin" {
		t.Fatalf("user admin is %q", me.ID)
	}
}

// TestStreamStalledReaderReleased: a client that stops reading (its TCP
// window full) loses its stream after the write timeout, so it holds the
// instance's stream slot and a goroutine for seconds, not forever.
func TestStreamStalledReaderReleased(t *testing.T) {
	h := newHarness(t, func(o *api.Options) {
		o.MaxStreams = 1
		o.StreamWriteTimeout = 300 * time.Millisecond
		o.Heartbeat = 50 * time.Millisecond
	})
	base := h.listen()
	h.resident("r1")
	care := h.user("care", "caregiver", "r1")

	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := conn.Write([]byte("GET /api/v1/alerts/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + care + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// The stalled stream holds the only slot.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, s := dialStream(t, base, care)
		if st == http.StatusTooManyRequests {
			break
		}
		if s != nil {
			s.stop()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stalled stream never took the slot: %d", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Fill every buffer between carehub and the client that does not read.
	pad := strings.Repeat("x", 60<<10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for i := 0; i < 400 && ctx.Err() == nil; i++ {
			b, _ := json.Marshal(map[string]any{"id": "a-" + strconv.Itoa(i), "resident_id": "r1", "transition": "raised", "pad": pad})
			_, _ = h.js.Publish(ctx, model.AlertSubject("r1", "high"), b)
		}
	}()
	deadline = time.Now().Add(15 * time.Second)
	for {
		st, s := dialStream(t, base, care)
		if st == http.StatusOK {
			s.stop()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a client that stopped reading still holds the stream slot after 15 s: %d", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
