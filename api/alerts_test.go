package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/api"
)

type alertsPage struct {
	Alerts     []alerts.Alert `json:"alerts"`
	NextCursor string         `json:"next_cursor"`
}

func TestAlertLifecycle(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	h.resident("r2")
	care := h.user("care", "caregiver", "r1")
	a1 := h.raise("r1", "heart_rate", "high")
	h.clk.add(time.Second)
	a2 := h.raise("r1", "spo2", "critical")
	h.clk.add(time.Second)
	h.raise("r2", "heart_rate", "warning")

	var page alertsPage
	h.expect(http.StatusOK, "GET", "/api/v1/alerts", adminToken, nil, &page)
	if len(page.Alerts) != 3 || page.Alerts[0].ResidentID != "r2" || page.Alerts[2].ID != a1.ID {
		t.Fatalf("newest first: %+v", page.Alerts)
	}
	h.expect(http.StatusOK, "GET", "/api/v1/alerts?severity=critical&status=open", care, nil, &page)
	if len(page.Alerts) != 1 || page.Alerts[0].ID != a2.ID {
		t.Fatalf("filtered: %+v", page.Alerts)
	}
	for _, q := range []string{"status=closed", "severity=urgent", "limit=0", "limit=501", "limit=x"} {
		b := h.expect(422, "GET", "/api/v1/alerts?"+q, care, nil, nil)
		if !strings.HasPrefix(errCode(b), "invalid_") {
			t.Errorf("%s: %s", q, b)
		}
	}
	h.expect(400, "GET", "/api/v1/alerts?cursor=%%%", care, nil, nil)

	var got alerts.Alert
	h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+a1.ID+"/ack", care, map[string]any{"note": "calling now"}, &got)
	if got.Status != "acknowledged" || got.AcknowledgedBy != "care" || got.AcknowledgedAt == nil {
		t.Fatalf("ack: %+v", got)
	}
	if b := h.expect(http.StatusConflict, "POST", "/api/v1/alerts/"+a1.ID+"/ack", care, nil, nil); errCode(b) != "conflict" {
		t.Fatalf("double ack: %s", b)
	}
	for _, body := range []string{`{}`, `{"outcome":"fine"}`, `{"outcome":"auto_cleared"}`} {
		if b := h.expect(422, "POST", "/api/v1/alerts/"+a1.ID+"/resolve", care, body, nil); errCode(b) != "invalid_outcome" {
			t.Errorf("resolve %s: %s", body, b)
		}
	}
	h.expect(400, "POST", "/api/v1/alerts/"+a1.ID+"/resolve", care, `{"outcome":"visited","by":"x"}`, nil)
	h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+a1.ID+"/resolve", care, map[string]any{"outcome": "ok_by_phone", "note": "she is fine"}, &got)
	if got.Status != "resolved" || got.Outcome != "ok_by_phone" || got.ResolvedBy != "care" {
		t.Fatalf("resolve: %+v", got)
	}
	h.expect(http.StatusConflict, "POST", "/api/v1/alerts/"+a1.ID+"/resolve", care, map[string]any{"outcome": "visited"}, nil)
	h.expect(http.StatusOK, "GET", "/api/v1/alerts/"+a1.ID, care, nil, &got)
	if got.Status != "resolved" {
		t.Fatalf("get after resolve: %+v", got)
	}
}

func TestAlertPagination(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	ruleNames := []string{"heart_rate", "spo2", "resp_rate", "body_temp", "glucose", "systolic_bp", "room_temp"}
	for _, r := range ruleNames {
		h.raise("r1", r, "warning")
		h.clk.add(time.Second)
	}
	var all []alerts.Alert
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		var page alertsPage
		h.expect(http.StatusOK, "GET", "/api/v1/alerts?limit=3&cursor="+cursor, adminToken, nil, &page)
		if len(page.Alerts) > 3 {
			t.Fatalf("page of %d > limit 3", len(page.Alerts))
		}
		all = append(all, page.Alerts...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(all) != len(ruleNames) {
		t.Fatalf("paged %d alerts, want %d", len(all), len(ruleNames))
	}
	for i, a := range all {
		if want := ruleNames[len(ruleNames)-1-i]; a.Rule != want {
			t.Fatalf("alert %d is %s, want %s (newest first, no repeats)", i, a.Rule, want)
		}
	}
}

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	id, event string
	alert     alerts.Alert
}

// openStream connects to /alerts/stream and returns a channel of events;
// the connection closes when the test ends or close is called.
func openStream(t *testing.T, base, token, lastID string) (<-chan sseEvent, <-chan struct{}, func()) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/v1/alerts/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan sseEvent, 100)
	beats := make(chan struct{}, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		var data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == ": heartbeat":
				select {
				case beats <- struct{}{}:
				default:
				}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				data += line[6:]
			case line == "" && ev.id != "":
				_ = json.Unmarshal([]byte(data), &ev.alert)
				events <- ev
				ev, data = sseEvent{}, ""
			}
		}
	}()
	stop := func() { cancel() }
	t.Cleanup(stop)
	return events, beats, stop
}

func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return sseEvent{}
}

// TestAlertStreamResume: a caregiver's phone sees only its residents'
// transitions, and after dropping the connection resumes with
// Last-Event-ID without missing one.
func TestAlertStreamResume(t *testing.T) {
	h := newHarness(t, func(o *api.Options) { o.Heartbeat = 100 * time.Millisecond })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.srv.App().Listener(ln) }()
	base := "http://" + ln.Addr().String()
	h.resident("mine")
	h.resident("other")
	care := h.user("care", "caregiver", "mine")

	events, beats, drop := openStream(t, base, care, "")
	select {
	case <-beats:
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat")
	}
	h.raise("other", "heart_rate", "high") // not the caregiver's
	a := h.raise("mine", "heart_rate", "high")
	e := next(t, events)
	if e.event != "raised" || e.alert.ID != a.ID || e.alert.ResidentID != "mine" {
		t.Fatalf("first event: %+v", e)
	}
	drop()

	// While the phone is away: a transition of the caregiver's alert, a
	// new alert of theirs, and one of another resident.
	if _, err := h.mgr.Acknowledge(context.Background(), a.ID, "care", ""); err != nil {
		t.Fatal(err)
	}
	b := h.raise("mine", "spo2", "critical")
	h.raise("other", "spo2", "critical")

	events, _, _ = openStream(t, base, care, e.id)
	e1, e2 := next(t, events), next(t, events)
	if e1.event != "acknowledged" || e1.alert.ID != a.ID || e2.event != "raised" || e2.alert.ID != b.ID {
		t.Fatalf("after resume: %+v / %+v", e1, e2)
	}
	n1, _ := strconv.ParseUint(e.id, 10, 64)
	n2, _ := strconv.ParseUint(e1.id, 10, 64)
	if n2 <= n1 {
		t.Fatalf("ids not increasing: %s then %s", e.id, e1.id)
	}
	select {
	case extra := <-events:
		t.Fatalf("unexpected event %+v", extra)
	default:
	}

	h.expect(400, "GET", "/api/v1/alerts/stream", care, nil, nil, "Last-Event-ID", "abc")
}

// TestAlertStreamNoGap: a transition published as soon as a fresh stream's
// response headers arrive reaches it (the console opens its inbox stream
// and must not miss what happens while it connects).
func TestAlertStreamNoGap(t *testing.T) {
	// Room for all five connections: a closed stream frees its slot only
	// when the server next writes to it, and the per-user cap is not what
	// this test is about (TestStreamCapPerUser is).
	h := newHarness(t, func(o *api.Options) { o.Heartbeat = 10 * time.Second; o.MaxStreamsPerUser = 8 })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.srv.App().Listener(ln) }()
	base := "http://" + ln.Addr().String()
	h.resident("mine")
	care := h.user("care", "caregiver", "mine")
	for i := range 5 {
		events, _, stop := openStream(t, base, care, "")
		a := h.raise("mine", "heart_rate", "high")
		e := next(t, events)
		if e.event != a.Transition || e.alert.ID != a.ID || e.alert.Seq != a.Seq {
			t.Fatalf("connection %d: first event %+v, want %s %s", i, e, a.ID, a.Transition)
		}
		stop()
	}
}
