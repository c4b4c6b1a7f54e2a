package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/notify"
)

func TestWebhookSignedAndRetried(t *testing.T) {
	secret := []byte("shared-with-the-gateway")
	var (
		mu   sync.Mutex
		got  []notify.Notification
		keys []string
		fail = 1
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifyWebhook(secret, r.Header.Get("X-Carehub-Timestamp"), r.Header.Get("X-Carehub-Signature"), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		if fail > 0 {
			fail--
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var n notify.Notification
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = append(got, n)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	wh := &notify.Webhook{URL: recv.URL, Secret: secret}
	n := notify.Notification{AlertID: "al-1", Seq: 2, MsgID: "al-1:escalated:2", Transition: "escalated", Severity: "critical",
		Rule: "fall", ResidentMasked: "김○희", UserID: "cw-lee"}
	err := wh.Send(context.Background(), n)
	var re *notify.RetryError
	if !errors.As(err, &re) || re.After != 2*time.Second {
		t.Fatalf("503 with Retry-After 2: %v", err)
	}
	if err := wh.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ResidentMasked != "김○희" || got[0].AlertID != "al-1" {
		t.Fatalf("received %+v", got)
	}
	if len(keys) != 2 || keys[0] != keys[1] || keys[0] != "al-1:escalated:2:cw-lee" {
		t.Fatalf("idempotency keys %v: a retry must keep its key", keys)
	}

	// A wrong secret is refused by the receiver, and 401 is not retried.
	bad := &notify.Webhook{URL: recv.URL, Secret: []byte("wrong")}
	if err := bad.Send(context.Background(), n); err == nil || errors.As(err, &re) {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestMaskName(t *testing.T) {
	for in, want := range map[string]string{"김영희": "김○희", "이철": "이○", "남궁민수": "남○○수", "Alice Brown": "A○○○e B○○○n", "X": "○", "": ""} {
		if got := notify.MaskName(in); got != want {
			t.Errorf("MaskName(%q) = %q, want %q", in, got, want)
		}
	}
}
