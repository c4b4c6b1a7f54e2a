package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/influx/flux"
	"github.com/carehub/carehub/internal/testenv"
)

// consent records a resident's consent of scope ("" withdraws it).
func (h *harness) consent(id, scope string) {
	h.t.Helper()
	body := map[string]any{"given": scope != "", "recorded_by": "social worker Kim"}
	if scope != "" {
		body["scope"] = scope
	}
	h.expect(http.StatusOK, "PUT", "/api/v1/residents/"+id+"/consent", adminToken, body, nil)
}

// TestExportNeedsConsent: an export needs a recorded, unwithdrawn consent
// of scope monitoring+export (PIPA Art. 17); without it 409
// consent_required, and the refusal is audited as denied.
func TestExportNeedsConsent(t *testing.T) {
	h, c, _ := trendsHarnessWith(t)
	h.resident("r1")
	now := h.clk.now()
	write(t, c, "r1", now.Add(-time.Hour), "heart_rate", 72)
	q := "/api/v1/residents/r1/export?reason=referral&from=" + now.Add(-3*time.Hour).Format(time.RFC3339) + "&to=" + now.Format(time.RFC3339)

	b := h.expect(http.StatusConflict, "GET", q, adminToken, nil, nil)
	if errCode(b) != "consent_required" {
		t.Fatalf("no consent: %s", b)
	}
	h.consent("r1", "monitoring") // monitoring alone does not cover handing data out
	if b := h.expect(http.StatusConflict, "GET", q+"&format=csv", adminToken, nil, nil); errCode(b) != "consent_required" {
		t.Fatalf("monitoring only: %s", b)
	}
	h.consent("r1", "monitoring+export")
	h.expect(http.StatusOK, "GET", q, adminToken, nil, nil)
	h.consent("r1", "") // withdrawn
	if b := h.expect(http.StatusConflict, "GET", q, adminToken, nil, nil); errCode(b) != "consent_required" {
		t.Fatalf("withdrawn: %s", b)
	}
	var res audit.Result
	h.expect(http.StatusOK, "GET", "/api/v1/audit?resident_id=r1", adminToken, nil, &res)
	outcomes := ""
	for _, e := range res.Entries {
		if strings.HasPrefix(e.Action, "export.") {
			outcomes += e.Outcome + " "
		}
	}
	if outcomes != "denied denied ok denied " {
		t.Fatalf("export outcomes in the trail: %q", outcomes)
	}
}

// manyPoints writes n points of three metrics for rid, spread evenly over
// the span before end, in large batches, and waits until InfluxDB counts
// them all.
func manyPoints(t *testing.T, c *influx.Client, rid string, end time.Time, span time.Duration, n int) {
	t.Helper()
	step := span / time.Duration(n)
	metrics := []string{"heart_rate", "spo2", "resp_rate"}
	var b strings.Builder
	for i := range n {
		at := end.Add(-span + time.Duration(i)*step)
		fmt.Fprintf(&b, "readings,resident_id=%s,home_id=h-%s,device_id=d-%s,device_kind=wearable %s=%d %d\n", rid, rid, rid, metrics[i%3], 60+i%40, at.UnixMilli())
		if (i+1)%5000 == 0 || i == n-1 {
			if err := c.WriteLines(context.Background(), []byte(b.String())); err != nil {
				t.Fatal(err)
			}
			b.Reset()
		}
	}
	testenv.WaitFor(t, 30*time.Second, "points stored", func() bool {
		got, err := flux.New(c).CountPoints(context.Background(), rid, end.Add(-span-time.Minute), end)
		return err == nil && got == int64(n)
	})
}

// serve runs the harness's API on a loopback listener: app.Test reads a
// whole answer into memory, which would hide what streaming saves.
func (h *harness) serve() string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = h.srv.App().Listener(ln) }()
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestExportStreamsBoundedMemory exports 60,000 points (ten days, so
// forty pages) as FHIR and CSV over a real listener, sampling the heap
// while the answer streams: it must grow by far less than the points would
// take as maps (about 3 KB each, 180 MB here). The figure is logged:
// go test -run TestExportStreamsBoundedMemory -v ./api
func TestExportStreamsBoundedMemory(t *testing.T) {
	h, c, _ := trendsHarnessWith(t)
	h.resident("r1")
	h.consent("r1", "monitoring+export")
	now := h.clk.now()
	const n = 60_000
	manyPoints(t, c, "r1", now, 10*24*time.Hour, n)
	base := h.serve()
	// A low GC target keeps garbage from passing for held memory.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	for _, format := range []string{"fhir", "csv"} {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		var peak atomic.Uint64
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
				select {
				case <-done:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		resp := get(t, base+"/api/v1/residents/r1/export?format="+format+"&reason=referral&from="+
			now.Add(-10*24*time.Hour-time.Minute).Format(time.RFC3339)+"&to="+now.Format(time.RFC3339), adminToken)
		entries, size := 0, 0
		if format == "csv" {
			sc := bufio.NewScanner(resp.Body)
			last := ""
			for sc.Scan() {
				entries++
				size += len(sc.Bytes()) + 1
				last = sc.Text()
			}
			entries -= 2 // the header and the end line
			if last != "# end" {
				t.Fatalf("csv export does not end with its end line: %q", last)
			}
		} else {
			cr := &countingReader{r: resp.Body}
			total, last := 0, ""
			// Decoded entry by entry, so the client holds one at a time.
			dec := json.NewDecoder(cr)
			tok := func() json.Token {
				tk, err := dec.Token()
				if err != nil {
					t.Fatal(err)
				}
				return tk
			}
			if tok() != json.Delim('{') {
				t.Fatal("not a JSON object")
			}
			for dec.More() {
				switch key := tok(); key {
				case "entry":
					tok() // [
					for dec.More() {
						var e struct {
							Resource struct{ EffectiveDateTime string }
						}
						if err := dec.Decode(&e); err != nil {
							t.Fatal(err)
						}
						if e.Resource.EffectiveDateTime < last {
							t.Fatalf("entries out of time order at %d", entries)
						}
						last = e.Resource.EffectiveDateTime
						entries++
					}
					tok() // ]
				case "total":
					if err := dec.Decode(&total); err != nil {
						t.Fatal(err)
					}
				default:
					var skip json.RawMessage
					if err := dec.Decode(&skip); err != nil {
						t.Fatal(err)
					}
				}
			}
			size = cr.n
			if total != n {
				t.Fatalf("total %d, want %d", total, n)
			}
		}
		resp.Body.Close()
		close(done)
		<-sampled
		if resp.StatusCode != http.StatusOK || entries != n {
			t.Fatalf("%s export: status %d, %d entries, want %d", format, resp.StatusCode, entries, n)
		}
		grew := int64(peak.Load()) - int64(before)
		t.Logf("%s export of %d points (%d bytes): heap grew by at most %.1f MiB", format, n, size, float64(grew)/(1<<20))
		// 180 MB as maps before; the bound leaves room for the test's own
		// NATS server and the sampling.
		if grew > 16<<20 {
			t.Fatalf("%s export of %d points grew the heap by %d MiB", format, n, grew>>20)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestExportConcurrencyCap: while MaxExports exports stream (here one, to
// a client that does not read), another answers 429 export_busy with
// Retry-After; when the slow client goes away, its slot is free again.
func TestExportConcurrencyCap(t *testing.T) {
	h, c, _ := trendsHarnessWith(t, func(o *api.Options) { o.MaxExports = 1 })
	h.resident("r1")
	h.consent("r1", "monitoring+export")
	now := h.clk.now()
	manyPoints(t, c, "r1", now, 24*time.Hour, 30_000) // some 12 MB of FHIR: more than the sockets buffer
	base := h.serve()
	q := "/api/v1/residents/r1/export?reason=referral&from=" + now.Add(-25*time.Hour).Format(time.RFC3339) + "&to=" + now.Format(time.RFC3339)

	slow, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(slow, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", q, adminToken)
	status := make([]byte, 12)
	if _, err := io.ReadFull(slow, status); err != nil || string(status) != "HTTP/1.1 200" {
		t.Fatalf("first export: %q %v", status, err)
	}
	// The slow client reads nothing more: its export holds the slot.
	resp := get(t, base+q, adminToken)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || errCode(b) != "export_busy" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second export while one streams: %d %.300s %v", resp.StatusCode, b, resp.Header)
	}
	slow.Close()
	testenv.WaitFor(t, 20*time.Second, "the slot freed", func() bool {
		resp := get(t, base+q+"&format=csv", adminToken)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestExportSkipsNonCatalogueMetrics: fields outside the metric catalogue (here
// one named like a spreadsheet formula) are not exported in either format,
// and a negative number stays a number.
func TestExportSkipsNonCatalogueMetrics(t *testing.T) {
	h, c, _ := trendsHarnessWith(t)
	h.resident("r1")
	h.consent("r1", "monitoring+export")
	now := h.clk.now()
	write(t, c, "r1", now.Add(-2*time.Hour), "room_temp", -5)
	write(t, c, "r1", now.Add(-time.Hour), "heart_rate", 72)
	line := fmt.Sprintf("readings,resident_id=r1,home_id=h-r1,device_id=d-r1,device_kind=wearable \\=HYPERLINK(\"x\")=1,legacy_metric=2 %d\n", now.Add(-90*time.Minute).UnixMilli())
	if err := c.WriteLines(context.Background(), []byte(line)); err != nil {
		t.Fatal(err)
	}
	q := "/api/v1/residents/r1/export?reason=referral&from=" + now.Add(-3*time.Hour).Format(time.RFC3339) + "&to=" + now.Format(time.RFC3339)
	var body []byte
	testenv.WaitFor(t, 10*time.Second, "exported points", func() bool {
		body = h.expect(http.StatusOK, "GET", q+"&format=csv", adminToken, nil, nil)
		return strings.Contains(string(body), "heart_rate")
	})
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if len(lines) != 4 || !strings.HasSuffix(lines[1], ",room_temp,-5,Cel,") || !strings.Contains(lines[2], ",heart_rate,72,") || lines[3] != "# end" {
		t.Fatalf("CSV:\n%s", body)
	}
	fhir := h.expect(http.StatusOK, "GET", q, adminToken, nil, nil)
	if strings.Contains(string(fhir), "HYPERLINK") || strings.Contains(string(fhir), "legacy_metric") || strings.Count(string(fhir), `"Observation"`) != 2 {
		t.Fatalf("FHIR exported non-catalogue fields:\n%s", fhir)
	}
}
