package influx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestOpen18CreatesDatabase proves setup on a real InfluxDB 1.8: auto
// detection says "1", the database is created with the raw retention, the
// bucket is db/autogen, and opening again changes nothing.
func TestOpen18CreatesDatabase(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := testenv.ID("care")
	o := Options{URL: in.URL, Bucket: db, Version: "auto", RawRetention: 90 * 24 * time.Hour, Log: zerolog.Nop()}
	c, err := Open(ctxT(t), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Version() != "1" || c.Bucket() != db+"/autogen" {
		t.Fatalf("version %q bucket %q", c.Version(), c.Bucket())
	}
	rp := in.QueryDB(t, db, "SHOW RETENTION POLICIES")
	if !strings.Contains(rp, `"autogen","2160h0m0s"`) {
		t.Fatalf("retention policies: %s", rp)
	}
	c2, err := Open(ctxT(t), o)
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	c2.Close()
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(in.Query(t, "SHOW DATABASES"), `["`+db+`"]`); n != 1 {
		t.Fatalf("database listed %d times", n)
	}
}

func TestOpenUnreachable(t *testing.T) {
	_, err := Open(ctxT(t), Options{URL: "http://127.0.0.1:1", Bucket: "care", Log: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "CARE_INFLUX_URL") {
		t.Fatalf("err = %v, want one that names CARE_INFLUX_URL", err)
	}
}

// fake2x imitates the InfluxDB 2.x endpoints setup uses. We cannot run
// InfluxDB 2.x on this machine, so this is the 2.x path's only test.
type fake2x struct {
	mu      sync.Mutex
	token   string
	onboard bool // setup still allowed
	buckets map[string]int64
	created []string
}

func (f *fake2x) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/api/v2/setup" {
		_ = json.NewEncoder(w).Encode(map[string]bool{"allowed": f.onboard})
		return
	}
	if r.Header.Get("Authorization") != "Token "+f.token {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code":"unauthorized","message":"unauthorized access"}`)
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/v2/orgs":
		if r.URL.Query().Get("org") != "carehub" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, `{"orgs":[{"id":"0123456789abcdef","name":"carehub"}]}`)
	case r.Method == "GET" && r.URL.Path == "/api/v2/buckets":
		if r.URL.Query().Get("orgID") != "0123456789abcdef" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		name := r.URL.Query().Get("name")
		if _, ok := f.buckets[name]; !ok {
			w.WriteHeader(http.StatusNotFound) // what 2.x answers to ?name= of a missing bucket
			_, _ = io.WriteString(w, `{"code":"not found","message":"bucket not found"}`)
			return
		}
		_, _ = io.WriteString(w, `{"buckets":[{"id":"b1","name":"`+name+`"}]}`)
	case r.Method == "POST" && r.URL.Path == "/api/v2/buckets":
		var req struct {
			OrgID          string `json:"orgID"`
			Name           string `json:"name"`
			RetentionRules []struct {
				Type         string `json:"type"`
				EverySeconds int64  `json:"everySeconds"`
			} `json:"retentionRules"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.OrgID != "0123456789abcdef" || len(req.RetentionRules) != 1 || req.RetentionRules[0].Type != "expire" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.buckets[req.Name] = req.RetentionRules[0].EverySeconds
		f.created = append(f.created, req.Name)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"b2","name":"`+req.Name+`"}`)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func TestOpen2x(t *testing.T) {
	f := &fake2x{token: "s3cret", buckets: map[string]int64{"existing": 0}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	o := Options{URL: srv.URL, Token: "s3cret", Org: "carehub", Bucket: "care", Version: "auto", RawRetention: 90 * 24 * time.Hour, Log: zerolog.Nop()}

	c, err := Open(ctxT(t), o)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.Version() != "2" || c.Bucket() != "care" {
		t.Fatalf("version %q bucket %q", c.Version(), c.Bucket())
	}
	if f.buckets["care"] != 90*24*3600 {
		t.Fatalf("bucket created with retention %ds", f.buckets["care"])
	}
	if _, err := Open(ctxT(t), o); err != nil { // idempotent
		t.Fatal(err)
	}
	ex := o
	ex.Bucket = "existing"
	if _, err := Open(ctxT(t), ex); err != nil {
		t.Fatal(err)
	}
	if len(f.created) != 1 {
		t.Fatalf("buckets created: %v, want only care once", f.created)
	}

	for name, tc := range map[string]struct {
		mut  func(*Options)
		want string
	}{
		"bad token":   {func(o *Options) { o.Token = "wrong" }, "CARE_INFLUX_TOKEN"},
		"no token":    {func(o *Options) { o.Token = "" }, "CARE_INFLUX_TOKEN"},
		"unknown org": {func(o *Options) { o.Org = "other" }, "CARE_INFLUX_ORG"},
		"no org":      {func(o *Options) { o.Org = "" }, "CARE_INFLUX_ORG"},
	} {
		o2 := o
		tc.mut(&o2)
		if _, err := Open(ctxT(t), o2); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to name %s", name, err, tc.want)
		}
	}
	f.onboard = true
	if _, err := Open(ctxT(t), o); err == nil || !strings.Contains(err.Error(), "influx setup") {
		t.Errorf("not onboarded: err = %v", err)
	}
}

// TestWriteErrorClassification drives WriteLines against a server that
// answers each status InfluxDB uses, and a dead address.
func TestWriteErrorClassification(t *testing.T) {
	var status int
	var gotQuery, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v2/setup" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if r.URL.Path == "/query" {
			_, _ = io.WriteString(w, `{"results":[{"statement_id":0,"series":[{"values":[["care"]]}]}]}`)
			return
		}
		gotQuery, gotAuth = r.URL.RawQuery, r.Header.Get("Authorization")
		if status == 429 {
			w.Header().Set("Retry-After", "7")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"error":"something"}`)
	}))
	defer srv.Close()
	c, err := Open(ctxT(t), Options{URL: srv.URL, Token: "u:p", Bucket: "care", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		status                        int
		retryable, tooLarge, rejected bool
	}{
		{204, false, false, false},
		{400, false, false, true},
		{422, false, false, true},
		{413, false, true, false},
		{429, true, false, false},
		{500, true, false, false},
		{503, true, false, false},
		{401, true, false, false},
		{404, true, false, false},
	} {
		status = tc.status
		err := c.WriteLines(ctxT(t), []byte("m v=1 1\n"))
		if tc.status == 204 {
			if err != nil {
				t.Fatalf("204: %v", err)
			}
			continue
		}
		var we *WriteError
		if !errors.As(err, &we) || we.Status != tc.status {
			t.Fatalf("%d: err = %#v", tc.status, err)
		}
		if we.Retryable() != tc.retryable || we.TooLarge() != tc.tooLarge || we.Rejected() != tc.rejected {
			t.Errorf("%d: retryable %v too large %v rejected %v", tc.status, we.Retryable(), we.TooLarge(), we.Rejected())
		}
		if tc.status == 429 && we.RetryAfter != 7*time.Second {
			t.Errorf("429: RetryAfter = %s", we.RetryAfter)
		}
	}
	if gotQuery != "bucket=care%2Fautogen&precision=ms" || gotAuth != "Token u:p" {
		t.Errorf("write request: query %q auth %q", gotQuery, gotAuth)
	}
	srv.Close()
	err = c.WriteLines(ctxT(t), []byte("m v=1 1\n"))
	var we *WriteError
	if !errors.As(err, &we) || we.Status != 0 || !we.Retryable() {
		t.Fatalf("dead server: err = %#v", err)
	}
}

func open18(t *testing.T) (*Client, *testenv.Influx, string) {
	in := testenv.SharedInflux(t)
	db := testenv.ID("care")
	c, err := Open(ctxT(t), Options{URL: in.URL, Bucket: db, RawRetention: 90 * 24 * time.Hour, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, in, db
}

// TestReadingsRoundTrip writes readings through WriteLines and reads them
// back raw and aggregated with Readings, on a real InfluxDB 1.8.
func TestReadingsRoundTrip(t *testing.T) {
	c, _, _ := open18(t)
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	var buf []byte
	for i := 0; i < 20; i++ { // two devices, 10 minutes apart each
		dev := []string{"wear-1", "radar-1"}[i%2]
		buf = AppendReading(buf, model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: dev, DeviceKind: "wearable",
			TS: t0.Add(time.Duration(i) * 5 * time.Minute), Values: map[string]float64{"heart_rate": float64(60 + i), "spo2": 97}})
	}
	buf = AppendReading(buf, model.Reading{ResidentID: "r2", HomeID: "h2", DeviceID: "wear-2", TS: t0, Values: map[string]float64{"heart_rate": 200}})
	if err := c.WriteLines(ctxT(t), buf); err != nil {
		t.Fatal(err)
	}
	q := ReadingsQuery{ResidentID: "r1", Metric: "heart_rate", From: t0, To: t0.Add(2 * time.Hour)}
	pts, err := c.Readings(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 20 || pts[0].V != 60 || !pts[0].T.Equal(t0) || pts[19].V != 79 {
		t.Fatalf("raw: %d points %v", len(pts), pts)
	}
	for i := 1; i < len(pts); i++ {
		if !pts[i].T.After(pts[i-1].T) {
			t.Fatalf("raw points out of order at %d: %v", i, pts)
		}
	}
	q.Every, q.Fn = 30*time.Minute, "count"
	pts, err = c.Readings(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4 || pts[0].V != 6 {
		t.Fatalf("count per 30m: %v", pts)
	}
	q.Fn = "max"
	pts, err = c.Readings(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4 || pts[3].V != 79 {
		t.Fatalf("max per 30m: %v", pts)
	}
	// Windows are labelled with their start, the first with from.
	q.Fn, q.From = "mean", t0.Add(10*time.Minute)
	if pts, err = c.Readings(ctxT(t), q); err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4 || !pts[0].T.Equal(q.From) || pts[0].V != 63.5 || !pts[1].T.Equal(t0.Add(30*time.Minute)) || pts[1].V != 68.5 {
		t.Fatalf("mean per 30m from %s: %v, want [from = 63.5, +30m = 68.5, ...]", q.From.Format(time.Kitchen), pts)
	}
	q.Fn, q.From = "last", t0
	if pts, err = c.Readings(ctxT(t), q); err != nil || len(pts) != 4 || pts[2].V != 77 || pts[3].V != 79 {
		t.Fatalf("last per 30m: %v, %v", pts, err)
	}
	// Raw and limited: each device's series is cut to the limit, and the
	// merged line is the first points of both in time order.
	q.Every, q.Fn, q.MaxPoints = 0, "", 5
	if pts, err = c.Readings(ctxT(t), q); err != nil || len(pts) != 5 || pts[0].V != 60 || pts[4].V != 64 {
		t.Fatalf("raw, limit 5: %v, %v", pts, err)
	}
	// to is exclusive: the point on it is not returned.
	q.MaxPoints, q.To = 0, t0.Add(95*time.Minute)
	if pts, err = c.Readings(ctxT(t), q); err != nil || len(pts) != 19 || pts[18].V != 78 {
		t.Fatalf("raw to %s: %d points, %v", q.To.Format(time.Kitchen), len(pts), err)
	}
}

// TestFluxInjection proves, against a real InfluxDB 1.8, that hostile
// values either fail validation or stay inside their string literal: a
// point tagged with each hostile value is found by exactly that value, and
// hostile values that match no tag return nothing and break nothing.
func TestFluxInjection(t *testing.T) {
	c, _, _ := open18(t)
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	hostile := []string{
		`") |> drop() //`,
		`r1" or r._value > 0 or r.resident_id == "`,
		`${r1}`,
		`$"`,
		`a"b`,
	}
	var buf []byte
	for i, h := range append([]string{"r1", "abc"}, hostile...) {
		var err error
		buf, err = EncodeReading(buf, model.Reading{ResidentID: h, HomeID: "h", DeviceID: "d", TS: t0.Add(time.Duration(i) * time.Second), Values: map[string]float64{"heart_rate": float64(100 + i)}})
		if err != nil {
			t.Fatalf("encode %q: %v", h, err)
		}
	}
	if err := c.WriteLines(ctxT(t), buf); err != nil {
		t.Fatal(err)
	}
	// Validation rejects the hostile id before any query is sent.
	for _, h := range hostile {
		if _, err := c.Readings(ctxT(t), ReadingsQuery{ResidentID: h, Metric: "heart_rate", From: t0, To: t0.Add(time.Hour)}); err == nil {
			t.Errorf("Readings accepted resident id %q", h)
		}
	}
	count := func(id string) int {
		f := Fluxf(`from(bucket: %s) |> range(start: %s) |> filter(fn: (r) => r._measurement == "readings" and r.resident_id == %s) |> keep(columns: ["_time", "_value"])`,
			StringLit(c.Bucket()), TimeLit(t0.Add(-time.Minute)), StringLit(id))
		n := 0
		if err := c.scanCSV(ctxT(t), f, []string{"_value"}, func([]string) error { n++; return nil }); err != nil {
			t.Fatalf("query for %q failed: %v\n%s", id, err, f)
		}
		return n
	}
	if n := count("r1"); n != 1 {
		t.Fatalf("plain id matched %d points", n)
	}
	// Past validation, each hostile value is only a string: it matches its
	// own point and nothing else.
	for _, h := range hostile {
		if n := count(h); n != 1 {
			t.Errorf("hostile value %q matched %d points, want exactly its own", h, n)
		}
	}
	for _, h := range []string{`\") |> yield() //`, `${"`, `$`, `\`, `r1\`, `"`, "r1\n) |> drop()"} {
		if n := count(h); n != 0 {
			t.Errorf("hostile value %q matched %d points, want 0", h, n)
		}
	}
}

// TestReadingsCalendarDays: with every=1d, windows are calendar days in the
// program time zone (Asia/Seoul, UTC+9), labelled with the local midnight.
func TestReadingsCalendarDays(t *testing.T) {
	c, _, _ := open18(t)
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, seoul)
	var buf []byte
	for _, p := range []struct {
		at time.Time
		v  float64
	}{
		{day.Add(-30 * time.Minute), 50},             // 23:30 on the 19th, Seoul: the day before
		{day.Add(30 * time.Minute), 70},              // 00:30 on the 20th
		{day.Add(23*time.Hour + 50*time.Minute), 90}, // 23:50 on the 20th (14:50 UTC)
	} {
		buf = AppendReading(buf, model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "w1", DeviceKind: "wearable", TS: p.at, Values: map[string]float64{"heart_rate": p.v}})
	}
	if err := c.WriteLines(ctxT(t), buf); err != nil {
		t.Fatal(err)
	}
	q := ReadingsQuery{ResidentID: "r1", Metric: "heart_rate", From: day.Add(-24 * time.Hour), To: day.Add(48 * time.Hour),
		Every: 24 * time.Hour, Fn: "mean", Location: seoul}
	pts, err := c.Readings(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || !pts[0].T.Equal(day.Add(-24*time.Hour)) || pts[0].V != 50 || !pts[1].T.Equal(day) || pts[1].V != 80 {
		t.Fatalf("Seoul days: %v, want [19th 00:00 KST = 50, 20th 00:00 KST = 80]", pts)
	}
	// Without a location the same points fall into UTC days.
	q.Location = nil
	if pts, err = c.Readings(ctxT(t), q); err != nil || len(pts) != 2 || pts[1].V != 90 {
		t.Fatalf("UTC days: %v, %v (the 23:50 KST point is on its own UTC day)", pts, err)
	}
}
