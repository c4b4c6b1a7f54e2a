package ingest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/catalog"
)

// TestBuckets: a device has its burst, is charged per record after
// decoding (into debt), is refused while it has no credit, earns credit
// back at its rate, and the map of buckets stays bounded.
func TestBuckets(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	q := newBuckets(10, 100, 4)
	for i := range 100 {
		if !q.admit("a", t0) {
			t.Fatalf("message %d of the burst refused", i)
		}
	}
	if q.admit("a", t0) {
		t.Fatal("admitted past the burst")
	}
	if !q.admit("b", t0) {
		t.Fatal("another device is refused for the first one's use")
	}
	if !q.admit("a", t0.Add(100*time.Millisecond)) {
		t.Fatal("no credit after 1/rate seconds")
	}
	// A big array: admitted while there is credit, charged in full.
	if !q.take("b", 500, t0) {
		t.Fatal("a big array refused with credit left")
	}
	if q.admit("b", t0.Add(5*time.Second)) {
		t.Fatal("a device in debt was admitted before paying it back")
	}
	if !q.admit("b", t0.Add(21*time.Second)) { // debt floored at -burst: 200 tokens at 10/s
		t.Fatal("a device was still refused after paying its debt back")
	}
	for i := range 10 {
		q.admit(fmt.Sprintf("d%d", i), t0)
	}
	if q.k.Len() > 4 {
		t.Fatalf("%d buckets kept, the bound is 4", q.k.Len())
	}
}

// TestEventKindTable (issue 9 item 11): which device kind may send which
// event, the table of docs/device-protocol.md, kind by kind and event by
// event.
func TestEventKindTable(t *testing.T) {
	all := "sos sos_cancel fall fall_cancel smoke gas co water_leak door_open door_close motion bed_exit bed_enter tamper toilet_flush"
	want := map[string]string{
		catalog.KindMotion:     "motion tamper toilet_flush",
		catalog.KindRadar:      "fall fall_cancel motion bed_exit bed_enter tamper",
		catalog.KindDoor:       "door_open door_close tamper",
		catalog.KindBed:        "motion bed_exit bed_enter tamper",
		catalog.KindSmoke:      "smoke co tamper",
		catalog.KindGas:        "gas co tamper",
		catalog.KindCO:         "co tamper",
		catalog.KindSOS:        "sos sos_cancel fall fall_cancel tamper",
		catalog.KindWearable:   "sos sos_cancel fall fall_cancel tamper",
		catalog.KindBP:         "tamper",
		catalog.KindGlucometer: "tamper",
		catalog.KindScale:      "tamper",
		catalog.KindEnv:        "tamper",
		catalog.KindPower:      "tamper",
		catalog.KindWaterLeak:  "water_leak tamper toilet_flush",
		catalog.KindGateway:    all,
	}
	if len(want) != len(catalog.Kinds()) {
		t.Fatalf("the table covers %d kinds, the catalogue has %d", len(want), len(catalog.Kinds()))
	}
	for _, kind := range catalog.Kinds() {
		allowed := map[string]bool{}
		for _, e := range strings.Fields(want[kind]) {
			allowed[e] = true
		}
		for _, ev := range strings.Fields(all) {
			if got := catalog.KindEmits(kind, ev); got != allowed[ev] {
				t.Errorf("KindEmits(%s, %s) = %v, want %v", kind, ev, got, allowed[ev])
			}
		}
	}
	if catalog.KindEmits("toaster", "tamper") || catalog.KindEmits(catalog.KindGateway, "explode") {
		t.Error("an unknown kind or event type is allowed")
	}
	// Every alarm can be sent by some kind other than the gateway.
	for _, ev := range []string{"sos", "fall", "smoke", "gas", "co"} {
		if !IsAlarm(ev) {
			t.Errorf("%s is not an alarm", ev)
		}
	}
	if IsAlarm("door_open") || IsAlarm("motion") {
		t.Error("an everyday event is taken for an alarm")
	}
}
