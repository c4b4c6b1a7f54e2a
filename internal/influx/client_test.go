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
