package influx

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/testenv"
)

// TestEraseResident18 proves erasure on a real InfluxDB 1.8: every series
// of the resident (readings, events, alerts) and the device_status series
// of their devices are gone, another resident's are all still there, and
// an id that is not a valid id never reaches a statement.
func TestEraseResident18(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := testenv.ID("care")
	c, err := Open(ctxT(t), Options{URL: in.URL, Bucket: db, Version: "auto", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ms := time.Now().Add(-time.Hour).UnixMilli()
	var b strings.Builder
	for _, rid := range []string{"gone", "kept"} {
		for i := range 3 {
			ts := ms + int64(i)*1000
			b.WriteString("readings,resident_id=" + rid + ",home_id=h-" + rid + ",device_id=" + rid + "-band,device_kind=wearable heart_rate=72 " + itoa(ts) + "\n")
			b.WriteString("events,resident_id=" + rid + ",home_id=h-" + rid + ",device_id=" + rid + "-door,type=door_open value=1 " + itoa(ts) + "\n")
			b.WriteString("alerts,resident_id=" + rid + ",rule=heart_rate,severity=high,transition=raised value=135,seconds_since_raised=0 " + itoa(ts) + "\n")
			b.WriteString("device_status,home_id=h-" + rid + ",device_id=" + rid + "-band online=true,battery_pct=80 " + itoa(ts) + "\n")
			b.WriteString("device_status,home_id=h-" + rid + ",device_id=" + rid + "-door online=true,battery_pct=70 " + itoa(ts) + "\n")
		}
	}
	if err := c.WriteLines(ctxT(t), []byte(b.String())); err != nil {
		t.Fatal(err)
	}
	count := func(q string) string { return in.QueryDB(t, db, q) }
	if s := count(`SELECT count(heart_rate) FROM readings WHERE resident_id = 'gone'`); !strings.Contains(s, ",3]") {
		t.Fatalf("readings not written: %s", s)
	}

	what, err := c.EraseResident(ctxT(t), "gone", []string{"gone-band", "gone-door"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(what, "resident_id=gone") || !strings.Contains(what, "2 devices") {
		t.Fatalf("description %q", what)
	}
	for _, q := range []string{
		`SHOW SERIES WHERE resident_id = 'gone'`,
		`SHOW SERIES FROM device_status WHERE device_id = 'gone-band' OR device_id = 'gone-door'`,
		`SELECT * FROM readings WHERE resident_id = 'gone'`,
	} {
		if s := count(q); strings.Contains(s, `"values"`) {
			t.Fatalf("%s: still there: %s", q, s)
		}
	}
	for q, want := range map[string]string{
		`SELECT count(heart_rate) FROM readings WHERE resident_id = 'kept'`:     ",3]",
		`SELECT count(value) FROM events WHERE resident_id = 'kept'`:            ",3]",
		`SELECT count(value) FROM alerts WHERE resident_id = 'kept'`:            ",3]",
		`SELECT count(online) FROM device_status WHERE device_id = 'kept-band'`: ",3]",
	} {
		if s := count(q); !strings.Contains(s, want) {
			t.Fatalf("%s: another resident's data lost: %s", q, s)
		}
	}

	for _, bad := range []string{"x' OR '1'='1", "Gone", ""} {
		if _, err := c.EraseResident(ctxT(t), bad, nil); err == nil {
			t.Fatalf("resident id %q accepted", bad)
		}
	}
	if _, err := c.EraseResident(ctxT(t), "kept", []string{"kept-band' OR 1=1"}); err == nil {
		t.Fatal("an invalid device id was accepted")
	}
	if s := count(`SELECT count(heart_rate) FROM readings WHERE resident_id = 'kept'`); !strings.Contains(s, ",3]") {
		t.Fatalf("a refused erasure deleted data: %s", s)
	}
}

func TestChunks(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e"}
	got := chunks(ids, 2)
	if len(got) != 3 || len(got[2]) != 1 || got[2][0] != "e" {
		t.Fatalf("chunks %v", got)
	}
	if len(chunks(nil, 2)) != 0 {
		t.Fatal("chunks of nothing")
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
