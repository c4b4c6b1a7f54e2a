package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestAuditVerifyCommand: `carehub audit verify` against a real NATS says
// the trail is intact (exit 0), and after an entry is forged onto the
// stream names that entry (exit 1).
func TestAuditVerifyCommand(t *testing.T) {
	ns := testenv.NATS(t)
	_, js := testenv.JetStream(t, ns)
	ctx := context.Background()
	l := audit.New(js, nil)
	for _, rid := range []string{"r1", "r2", "r3"} {
		if err := l.Record(ctx, audit.Entry{Actor: "care", ResidentID: rid, Action: "resident.read"}); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"CARE_NATS_URL": ns.ClientURL()}
	getenv := func(k string) string { return env[k] }
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"audit", "verify"}, getenv, &out, &errOut); code != 0 || !strings.Contains(out.String(), "intact: 3 entries") {
		t.Fatalf("intact trail: exit %d, %s %s", code, out.String(), errOut.String())
	}
	forged, _ := json.Marshal(audit.Entry{At: time.Now(), Actor: "care", ResidentID: "r2", Action: "resident.read", Prev: audit.Genesis})
	if _, err := js.Publish(ctx, model.AuditSubject("r2"), forged); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run(ctx, []string{"audit", "verify"}, getenv, &out, &errOut); code != 1 || !strings.Contains(out.String(), "BROKEN at entry 4") {
		t.Fatalf("forged entry: exit %d, %s %s", code, out.String(), errOut.String())
	}
	if code := run(ctx, []string{"audit", "frobnicate"}, getenv, &out, &errOut); code != 2 {
		t.Fatalf("unknown audit subcommand: exit %d", code)
	}
}
