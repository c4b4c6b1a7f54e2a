package api_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/influx/flux"
	"github.com/carehub/carehub/internal/testenv"
)

// trendsHarness is the API with the real InfluxDB behind the trends.
func trendsHarnessWith(t *testing.T, mods ...func(*api.Options)) (*harness, *influx.Client, *time.Location) {
	t.Helper()
	in := testenv.SharedInflux(t)
	db := testenv.ID("care")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := influx.Open(ctx, influx.Options{URL: in.URL, Bucket: db, Version: "auto", RawRetention: 90 * 24 * time.Hour, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *api.Options) {
		q := flux.New(c)
		o.Trends, o.Export, o.Location = q, q, seoul
		o.Baselines, o.DayActivity, o.AlertContext = q, q, q
		for _, mod := range mods {
			mod(o)
		}
	})
	return h, c, seoul
}

func write(t *testing.T, c *influx.Client, rid string, at time.Time, field string, v float64) {
	t.Helper()
	line := fmt.Sprintf("readings,resident_id=%s,home_id=h-%s,device_id=d-%s,device_kind=wearable %s=%g %d\n", rid, rid, rid, field, v, at.UnixMilli())
	if err := c.WriteLines(context.Background(), []byte(line)); err != nil {
		t.Fatal(err)
	}
}

func TestTrendsLatestSummaryOverview(t *testing.T) {
	h, c, seoul := trendsHarnessWith(t)
	for _, id := range []string{"r1", "r2", "r3"} {
		h.resident(id)
	}
	now := h.clk.now()
	write(t, c, "r1", now.Add(-2*time.Hour), "heart_rate", 70)
	write(t, c, "r1", now.Add(-time.Hour), "heart_rate", 80)
	write(t, c, "r1", now.Add(-3*time.Hour), "spo2", 97)

	// A calendar day two days ago in Seoul: points just inside and just
	// outside its local midnights.
	d := now.In(seoul).AddDate(0, 0, -2)
	midnight := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, seoul)
	write(t, c, "r1", midnight.Add(30*time.Minute), "heart_rate", 60)
	write(t, c, "r1", midnight.Add(23*time.Hour+30*time.Minute), "heart_rate", 90)
	write(t, c, "r1", midnight.Add(-30*time.Minute), "heart_rate", 200)         // the day before
	write(t, c, "r1", midnight.Add(24*time.Hour+time.Minute), "heart_rate", 21) // the day after
	write(t, c, "r1", midnight.Add(time.Hour), "room_temp", 22)                 // not a vital

	var latest struct {
		Metrics []struct {
			Metric, Unit, T string
			V               float64
		}
	}
	testenv.WaitFor(t, 10*time.Second, "latest values", func() bool {
		h.expect(http.StatusOK, "GET", "/api/v1/residents/r1/latest", adminToken, nil, &latest)
		return len(latest.Metrics) == 3
	})
	if m := latest.Metrics[0]; m.Metric != "heart_rate" || m.V != 80 || m.Unit != "/min" || m.T != now.Add(-time.Hour).Format(time.RFC3339) {
		t.Fatalf("latest heart_rate: %+v", m)
	}
	if m := latest.Metrics[2]; m.Metric != "spo2" || m.V != 97 || latest.Metrics[1].Metric != "room_temp" {
		t.Fatalf("latest spo2: %+v", m)
	}

	var sum struct {
		Date, From string
		Vitals     []struct {
			Metric         string
			Min, Mean, Max float64
			Count          int
		}
	}
	h.expect(http.StatusOK, "GET", "/api/v1/residents/r1/summary?date="+midnight.Format(time.DateOnly), adminToken, nil, &sum)
	if sum.From != midnight.UTC().Format(time.RFC3339) || len(sum.Vitals) != 1 {
		t.Fatalf("summary: %+v", sum)
	}
	if v := sum.Vitals[0]; v.Metric != "heart_rate" || v.Min != 60 || v.Max != 90 || math.Abs(v.Mean-75) > 1e-9 || v.Count != 2 {
		t.Fatalf("summary of the day: %+v", v)
	}
	h.expect(422, "GET", "/api/v1/residents/r1/summary?date=25-11-2026", adminToken, nil, nil)

	h.raise("r1", "room_temp", "warning")
	h.raise("r3", "sos", "critical")
	var ov struct {
		Residents []struct {
			ResidentID      string `json:"resident_id"`
			OpenAlerts      int    `json:"open_alerts"`
			HighestSeverity string `json:"highest_severity"`
			MissingData     bool   `json:"missing_data"`
		}
	}
	h.expect(http.StatusOK, "GET", "/api/v1/overview", adminToken, nil, &ov)
	var order []string
	for _, r := range ov.Residents {
		order = append(order, r.ResidentID)
	}
	if strings.Join(order, ",") != "r3,r1,r2" || !ov.Residents[0].MissingData || ov.Residents[1].MissingData || ov.Residents[0].HighestSeverity != "critical" {
		t.Fatalf("overview: %+v", ov.Residents)
	}
	care := h.user("care", "caregiver", "r1")
	h.expect(http.StatusOK, "GET", "/api/v1/overview", care, nil, &ov)
	if len(ov.Residents) != 1 || ov.Residents[0].ResidentID != "r1" {
		t.Fatalf("caregiver's overview: %+v", ov.Residents)
	}
	h.expect(http.StatusNotFound, "GET", "/api/v1/residents/r2/latest", care, nil, nil)
	h.expect(http.StatusNotFound, "GET", "/api/v1/residents/r2/summary", care, nil, nil)
}

func TestExportFHIRAndCSV(t *testing.T) {
	h, c, _ := trendsHarnessWith(t)
	h.resident("r1")
	h.resident("r2")
	now := h.clk.now()
	write(t, c, "r1", now.Add(-2*time.Hour), "heart_rate", 72)
	write(t, c, "r1", now.Add(-time.Hour), "room_temp", 21.5)
	h.consent("r1", "monitoring+export")
	q := "/api/v1/residents/r1/export?from=" + now.Add(-3*time.Hour).Format(time.RFC3339) + "&to=" + now.Format(time.RFC3339)

	b := h.expect(422, "GET", q, adminToken, nil, nil)
	if errCode(b) != "reason_required" {
		t.Fatalf("no reason: %s", b)
	}
	h.expect(422, "GET", q+"&reason=x&format=xml", adminToken, nil, nil)
	h.expect(422, "GET", "/api/v1/residents/r1/export?reason=x&from=2026-01-01T00:00:00Z&to=2026-06-01T00:00:00Z", adminToken, nil, nil)

	var bundle struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				Code         struct {
					Coding []struct{ System, Code string }
				}
				Subject struct {
					Identifier struct{ Value string }
				}
				ValueQuantity struct {
					Value        float64
					Unit, System string
				}
			}
		}
	}
	testenv.WaitFor(t, 10*time.Second, "exported points", func() bool {
		h.expect(http.StatusOK, "GET", q+"&reason=hospital+referral", adminToken, nil, &bundle)
		return len(bundle.Entry) == 2
	})
	hr := bundle.Entry[0].Resource
	if bundle.ResourceType != "Bundle" || bundle.Type != "collection" || hr.ResourceType != "Observation" ||
		hr.Code.Coding[0].System != "http://loinc.org" || hr.Code.Coding[0].Code != "8867-4" ||
		hr.ValueQuantity.Value != 72 || hr.ValueQuantity.Unit != "/min" || hr.ValueQuantity.System != "http://unitsofmeasure.org" ||
		hr.Subject.Identifier.Value != "r1" {
		t.Fatalf("FHIR heart rate: %+v", hr)
	}
	if rt := bundle.Entry[1].Resource; rt.Code.Coding[0].Code != "room_temp" || rt.ValueQuantity.Unit != "Cel" {
		t.Fatalf("FHIR room_temp: %+v", rt)
	}
	_, hdr, body := h.call("GET", q+"&reason=audit&format=csv", adminToken, nil, nil)
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") || len(lines) != 4 || lines[0] != "resident_id,time,metric,value,unit,loinc" || lines[3] != "# end" ||
		!strings.HasPrefix(lines[1], "r1,") || !strings.HasSuffix(lines[1], ",heart_rate,72,/min,8867-4") {
		t.Fatalf("CSV:\n%s", body)
	}

	// The export is audited with its reason; a caregiver cannot export others.
	var trail struct {
		Entries []struct{ Action, Reason string }
	}
	h.expect(http.StatusOK, "GET", "/api/v1/audit?resident_id=r1", adminToken, nil, &trail)
	found := false
	for _, e := range trail.Entries {
		found = found || (e.Action == "export.fhir" && e.Reason == "hospital referral")
	}
	if !found {
		t.Fatalf("export not audited with its reason: %+v", trail.Entries)
	}
	care := h.user("care", "caregiver", "r2")
	h.expect(http.StatusNotFound, "GET", q+"&reason=curious", care, nil, nil)
}
