package flux

import (
	"strings"
	"testing"
	"time"
)

func TestStringLit(t *testing.T) {
	tests := map[string]string{
		"r1":              `"r1"`,
		`a"b`:             `"a\"b"`,
		`a\b`:             `"a\\b"`,
		`${x}`:            `"\x24{x}"`,
		`$"`:              `"\x24\""`,
		`$\`:              `"\x24\\"`,
		"l1\nl2\r\t":      `"l1\nl2\r\t"`,
		`") |> drop() //`: `"\") |> drop() //"`,
		"집":               `"집"`,
	}
	for in, want := range tests {
		if got := StringLit(in).String(); got != want {
			t.Errorf("StringLit(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDurationLit(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Minute: "5m", 90 * time.Minute: "90m", 2 * time.Hour: "2h", 1500 * time.Millisecond: "1500ms", 30 * time.Second: "30s",
	} {
		got, err := DurationLit(d)
		if err != nil || got.String() != want {
			t.Errorf("DurationLit(%s) = %s, %v; want %s", d, got, err, want)
		}
	}
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} {
		if _, err := DurationLit(d); err == nil {
			t.Errorf("DurationLit(%s) accepted", d)
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"5m": 5 * time.Minute, "1h30m": 90 * time.Minute, "7d": 7 * 24 * time.Hour, "2w": 14 * 24 * time.Hour,
		"250ms": 250 * time.Millisecond, "1s": time.Second,
	}
	for s, want := range good {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s", s, got, err, want)
		}
	}
	for _, s := range []string{"", "5", "m", "-5m", "+5m", "5 m", "1.5h", "5mo", "1y", "5m)", "5m |> drop()", "0s", "99999999999h", "9999999w", "5M", "1h${x}"} {
		if d, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) = %s, want an error", s, d)
		}
	}
}

func TestReadingsQueryFlux(t *testing.T) {
	from := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	q := ReadingsQuery{Bucket: "care/autogen", ResidentID: "r1", Metric: "heart_rate", From: from, To: from.Add(24 * time.Hour), Every: 5 * time.Minute, Fn: "max"}
	f, err := q.Flux()
	if err != nil {
		t.Fatal(err)
	}
	// No r._time filter (StopLit instead), nothing Flux 0.65 cannot push
	// down to storage: the windows are Reader.Readings' work.
	want := `from(bucket: "care/autogen")
  |> range(start: 2026-11-25T00:00:00Z, stop: 2026-11-25T23:59:59.999999999Z)
  |> filter(fn: (r) => r._measurement == "readings" and r.resident_id == "r1" and r._field == "heart_rate")
  |> keep(columns: ["_time", "_value"])`
	if f.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", f, want)
	}
	raw := q
	raw.Every, raw.Fn, raw.MaxPoints = 0, "", 10
	f, err = raw.Flux()
	if err != nil || !strings.Contains(f.String(), "|> limit(n: 10)\n  |> keep(") {
		t.Fatalf("raw query: %v\n%s", err, f)
	}
}

func TestStopLit(t *testing.T) {
	at := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		to   time.Time
		want string
	}{
		{at, "2026-11-25T23:59:59.999999999Z"},
		{at.Add(time.Millisecond), "2026-11-26T00:00:00.000999999Z"},
		// Not on a millisecond: a point at 00:00:00.001 is before to.
		{at.Add(1500 * time.Microsecond), "2026-11-26T00:00:00.001999999Z"},
		{at.Add(time.Nanosecond), "2026-11-26T00:00:00.000999999Z"},
	} {
		if got := StopLit(tc.to).text; got != tc.want {
			t.Errorf("StopLit(%s) = %s, want %s", tc.to.Format(time.RFC3339Nano), got, tc.want)
		}
	}
}

func TestReadingsQueryRejects(t *testing.T) {
	from := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	ok := ReadingsQuery{Bucket: "care", ResidentID: "r1", Metric: "spo2", From: from, To: from.Add(time.Hour)}
	tests := map[string]func(*ReadingsQuery){
		"injection in resident id": func(q *ReadingsQuery) { q.ResidentID = `r1") |> drop() //` },
		"interpolation in id":      func(q *ReadingsQuery) { q.ResidentID = `r${x}` },
		"injection in metric":      func(q *ReadingsQuery) { q.Metric = `spo2" or true or r._field == "` },
		"unknown metric":           func(q *ReadingsQuery) { q.Metric = "shoe_size" },
		"fn not whitelisted":       func(q *ReadingsQuery) { q.Every = time.Minute; q.Fn = "mean) |> drop(" },
		"fn without every":         func(q *ReadingsQuery) { q.Fn = "mean" },
		"from after to":            func(q *ReadingsQuery) { q.From, q.To = q.To, q.From },
		"zero from":                func(q *ReadingsQuery) { q.From = time.Time{} },
		"sub-ms every":             func(q *ReadingsQuery) { q.Every = time.Microsecond },
		"empty bucket":             func(q *ReadingsQuery) { q.Bucket = "" },
		"negative max points":      func(q *ReadingsQuery) { q.MaxPoints = -1 },
		"too many windows":         func(q *ReadingsQuery) { q.Every = time.Millisecond; q.Fn = "max" },
	}
	if _, err := ok.Flux(); err != nil {
		t.Fatalf("valid query refused: %v", err)
	}
	for name, mut := range tests {
		q := ok
		mut(&q)
		if f, err := q.Flux(); err == nil {
			t.Errorf("%s: accepted:\n%s", name, f)
		}
	}
}
