package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/natsx"
	"github.com/carehub/carehub/internal/testenv"
)

func record(t *testing.T, l *audit.Log, rid, action string) {
	t.Helper()
	if err := l.Record(context.Background(), audit.Entry{Actor: "care", Role: "caregiver", Source: "127.0.0.1", ResidentID: rid, Action: action}); err != nil {
		t.Fatal(err)
	}
}

// deletableTrail is CARE_AUDIT as carehub declares it but without the
// refusal of deletes (which JetStream will not lift once set): what
// someone with the NATS server's store could arrange. The chain must show
// what they did.
func deletableTrail(t *testing.T) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	nc, err := nats.Connect(testenv.NATS(t).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range natsx.StreamConfigs(natsx.DefaultStreamOptions) {
		if cfg.Name == model.StreamAudit {
			cfg.DenyDelete, cfg.DenyPurge = false, false
			st, err := js.CreateStream(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return js, st
		}
	}
	t.Fatal("no audit stream configured")
	return nil, nil
}

// TestAuditHashChainDetectsTampering: entries recorded by two writers at
// once form one unbroken chain; an entry removed from the middle, and one
// published behind carehub's back, are each reported at the first broken
// link.
func TestAuditHashChainDetectsTampering(t *testing.T) {
	ctx := context.Background()
	_, js := testenv.JetStream(t, testenv.NATS(t))
	a, b := audit.New(js, nil), audit.New(js, nil) // two carehub instances
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(2)
		go func() { defer wg.Done(); record(t, a, fmt.Sprintf("r%d", i), "readings.read") }()
		go func() { defer wg.Done(); record(t, b, fmt.Sprintf("r%d", i), "latest.read") }()
	}
	wg.Wait()
	v, err := a.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Break != nil || v.Entries != 40 || v.FirstSeq != 1 || v.LastSeq != 40 || v.Head == "" || v.Unchained != 0 {
		t.Fatalf("intact chain: %+v", v)
	}

	// An entry forged straight onto the stream does not carry the hash of
	// the entry before it.
	forged, _ := json.Marshal(audit.Entry{At: time.Now().UTC(), Actor: "care", ResidentID: "r1", Action: "readings.read", Prev: strings.Repeat("0", 64)})
	if _, err := js.Publish(ctx, model.AuditSubject("r1"), forged); err != nil {
		t.Fatal(err)
	}
	record(t, a, "r2", "readings.read") // carehub chains on after it
	v, err = a.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Break == nil || v.Break.Seq != 41 || !strings.Contains(v.Break.Reason, "entry 40") {
		t.Fatalf("forged entry 41 not found: %+v", v)
	}

	// On a fresh trail: an entry deleted from the middle.
	js, st := deletableTrail(t)
	l := audit.New(js, nil)
	for i := range 5 {
		record(t, l, fmt.Sprintf("r%d", i), "resident.read")
	}
	if v, err := l.Verify(ctx); err != nil || v.Break != nil || v.Entries != 5 {
		t.Fatalf("before the delete: %+v %v", v, err)
	}
	if err := st.DeleteMsg(ctx, 3); err != nil {
		t.Fatal(err)
	}
	v, err = l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Break == nil || v.Break.Seq != 4 || !strings.Contains(v.Break.Reason, "missing") {
		t.Fatalf("deleted entry 3 not found: %+v", v)
	}
}

// TestAuditRecordValidates: resident ids that are not ids are refused
// (they would become NATS subject tokens), entries get an outcome, and one
// naming several residents is found under each of them.
func TestAuditRecordValidates(t *testing.T) {
	ctx := context.Background()
	_, js := testenv.JetStream(t, testenv.NATS(t))
	l := audit.New(js, nil)
	for _, e := range []audit.Entry{
		{ResidentID: "r1.>", Action: "x"},
		{ResidentID: "r 1", Action: "x"},
		{Residents: []string{"r1", "*"}, Action: "x"},
		{ResidentID: "r1", Action: "x", Outcome: "maybe"},
	} {
		if err := l.Record(ctx, e); err == nil {
			t.Fatalf("recorded %+v", e)
		}
	}
	if err := l.Record(ctx, audit.Entry{Actor: "care", Residents: []string{"r1", "r2"}, Action: "residents.list"}); err != nil {
		t.Fatal(err)
	}
	record(t, l, "r3", "resident.read")
	for rid, want := range map[string]int{"r1": 1, "r2": 1, "r3": 1, "r4": 0} {
		res, err := l.Query(ctx, audit.Query{ResidentID: rid, From: time.Now().Add(-time.Minute), To: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Entries) != want || (want == 1 && res.Entries[0].Outcome != audit.OutcomeOK) {
			t.Fatalf("%s: %+v", rid, res.Entries)
		}
	}
}
