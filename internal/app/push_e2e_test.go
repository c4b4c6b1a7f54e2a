package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/notify"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/internal/webpush/webpushtest"
)

// TestPushEndToEnd: an SOS press reaches the care worker's phone as an
// encrypted, VAPID-signed push; its acknowledge action works without a
// session; the phone's notification is then replaced quietly.
func TestPushEndToEnd(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	fake := webpushtest.NewService(t)
	a := startApp(t, env(t, in.URL, db, map[string]string{
		"CARE_PUBLIC_URL": "http://127.0.0.1:8780", "CARE_WEBPUSH_SUBJECT": "mailto:ops@example.org",
		"CARE_WEBPUSH_ALLOWED_ENDPOINTS": fake.URL,
	}))
	base := "http://" + a.HTTPAddr()
	d := register(t, base, "sos")
	var u struct{ Token string }
	if code := apiCall(t, base, "POST", "/api/v1/users", map[string]any{"id": "cw-park", "name": "박민지", "role": "caregiver", "password": "pass-cw-park-long"}, &u); code != http.StatusCreated {
		t.Fatalf("create user: %d", code)
	}
	apiCall(t, base, "PUT", "/api/v1/users/cw-park/residents", map[string]any{"resident_ids": []string{d.ResidentID}}, nil)
	if code := apiCall(t, base, "PUT", "/api/v1/residents/"+d.ResidentID+"/escalation", map[string]any{"tiers": []map[string]any{
		{"role": "caregiver", "user_ids": []string{"cw-park"}}, {"role": "emergency"}}}, nil); code != http.StatusOK {
		t.Fatalf("set chain: %d", code)
	}
	ph := fake.NewSubscriber()
	body, _ := json.Marshal(map[string]any{"endpoint": ph.Endpoint, "keys": map[string]string{"p256dh": ph.P256DH(), "auth": ph.AuthSecret()}})
	req, _ := http.NewRequest("POST", base+"/api/v1/push/subscriptions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+u.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := testClient().Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("subscribe: %v %v", err, resp)
	}
	resp.Body.Close()

	c := deviceClient(t, a.MQTTURL(), d)
	pressed := time.Now()
	publish(t, c, d.MQTT.TopicPrefix+"event", []byte(`{"type":"sos"}`))
	testenv.WaitFor(t, 10*time.Second, "push for the SOS", func() bool { return len(fake.ReceivedBy(ph)) >= 1 })
	p := fake.ReceivedBy(ph)[0]
	t.Logf("SOS press to encrypted push at the push service: %v", p.At.Sub(pressed))
	var pl notify.Payload
	if err := json.Unmarshal(p.Payload, &pl); err != nil {
		t.Fatal(err)
	}
	if pl.Rule != "sos" || pl.Severity != "critical" || pl.Resident != "T○○t R○○○○○○t" || p.Headers.Get("Urgency") != "high" {
		t.Fatalf("push %+v headers %v", pl, p.Headers)
	}

	// The notification's acknowledge button, as the service worker sends it.
	// CARE_PUBLIC_URL is where phones would reach carehub; the test
	// reaches it on its random port.
	ackURL, err := url.Parse(pl.AckURL)
	if err != nil || ackURL.Path != "/api/v1/push/alerts/"+pl.AlertID+"/ack" {
		t.Fatalf("ack_url %q", pl.AckURL)
	}
	req, _ = http.NewRequest("POST", base+ackURL.Path, nil)
	req.Header.Set("X-Care-Action-Token", pl.ActionToken)
	resp, err = testClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"acknowledged_by":"cw-park"`)) {
		t.Fatalf("ack from the notification: %d %s", resp.StatusCode, b)
	}
	testenv.WaitFor(t, 10*time.Second, "quiet replacement", func() bool { return len(fake.ReceivedBy(ph)) >= 2 })
	if err := json.Unmarshal(fake.ReceivedBy(ph)[1].Payload, &pl); err != nil || !pl.Silent || pl.Transition != "acknowledged" {
		t.Fatalf("replacement %+v %v", pl, err)
	}
	for _, err := range fake.Errors() {
		t.Errorf("push protocol: %v", err)
	}
}
