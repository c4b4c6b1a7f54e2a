package api

import (
	"context"
	"encoding/csv"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/influx"
)

// ExportSource returns every reading of a resident over a range (influx.Client).
type ExportSource interface {
	Points(ctx context.Context, residentID string, from, to time.Time, limit int) ([]influx.MetricValue, bool, error)
}

// maxExportWindow bounds one export's range (influx.MaxTrendRange).
const maxExportWindow = influx.MaxTrendRange

// maxReasonBytes bounds an export's stated reason.
const maxReasonBytes = 500

// export: GET /residents/{id}/export?format=fhir|csv&from=&to=&reason=
// (admins and coordinators, and a caregiver for their own residents). The
// reason is required and recorded in the audit trail (domain.md: reason for
// exports). FHIR is an R4 Bundle of Observations with LOINC codes and UCUM
// units; the subject is the pseudonymous resident id, never a name.
func (s *Server) export(c *fiber.Ctx) error {
	if s.o.Export == nil {
		return ErrUnavailable.with("export is not configured on this instance")
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	format := c.Query("format", "fhir")
	if format != "fhir" && format != "csv" {
		return invalid("invalid_format", "format must be fhir or csv")
	}
	reason := strings.TrimSpace(c.Query("reason"))
	if reason == "" {
		return invalid("reason_required", "reason is required: every export is recorded with why it was made")
	}
	if len(reason) > maxReasonBytes {
		return invalid("reason_required", "reason longer than "+strconv.Itoa(maxReasonBytes)+" bytes")
	}
	to := s.o.Clock().UTC()
	if v := c.Query("to"); v != "" {
		if to, err = time.Parse(time.RFC3339, v); err != nil {
			return invalid("invalid_time", "to must be an RFC 3339 time")
		}
	}
	from := to.Add(-defaultReadingsWindow)
	if v := c.Query("from"); v != "" {
		if from, err = time.Parse(time.RFC3339, v); err != nil {
			return invalid("invalid_time", "from must be an RFC 3339 time")
		}
	}
	if !from.Before(to) || to.Sub(from) > maxExportWindow {
		return invalid("invalid_time_range", "from must be before to, at most 31 days apart")
	}
	if err := s.audit(c, r.ID, "export."+format, reason); err != nil {
		return err
	}
	pts, truncated, err := s.o.Export.Points(c.UserContext(), r.ID, from, to, influx.MaxExportPoints)
	if err != nil {
		s.log.Error().Err(err).Str("resident_id", r.ID).Msg("export query failed")
		return ErrUnavailable.with("the time-series store did not answer; retry later")
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	if truncated {
		c.Set("X-Carehub-Truncated", "true") // ask again for a shorter range
	}
	if format == "csv" {
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
		c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+r.ID+`.csv"`)
		w := csv.NewWriter(c.Response().BodyWriter())
		_ = w.Write([]string{"resident_id", "time", "metric", "value", "unit", "loinc"})
		for _, p := range pts {
			m, _ := catalog.LookupMetric(p.Metric)
			_ = w.Write([]string{r.ID, p.T.UTC().Format(time.RFC3339Nano), p.Metric, strconv.FormatFloat(p.V, 'g', -1, 64), m.Unit, m.LOINC})
		}
		w.Flush()
		return w.Error()
	}
	c.Set(fiber.HeaderContentType, "application/fhir+json")
	return c.JSON(fhirBundle(r.ID, pts, s.o.Clock().UTC()))
}

// fhirBundle builds a FHIR R4 Bundle (type collection) of Observations.
// Metrics with a LOINC code (domain.md) are coded in http://loinc.org;
// the others in carehub's own code system, so nothing is dropped.
func fhirBundle(residentID string, pts []influx.MetricValue, now time.Time) map[string]any {
	entries := make([]map[string]any, 0, len(pts))
	for _, p := range pts {
		m, ok := catalog.LookupMetric(p.Metric)
		if !ok {
			continue
		}
		coding := map[string]any{"system": "urn:carehub:metric", "code": m.Name, "display": m.Name}
		if m.LOINC != "" {
			coding = map[string]any{"system": "http://loinc.org", "code": m.LOINC, "display": m.Name}
		}
		obs := map[string]any{
			"resourceType":      "Observation",
			"status":            "final",
			"code":              map[string]any{"coding": []any{coding}, "text": m.Name},
			"subject":           map[string]any{"identifier": map[string]any{"system": "urn:carehub:resident", "value": residentID}},
			"effectiveDateTime": p.T.UTC().Format(time.RFC3339Nano),
			"valueQuantity":     map[string]any{"value": p.V, "unit": m.Unit, "system": "http://unitsofmeasure.org", "code": m.Unit},
		}
		if m.Vital {
			obs["category"] = []any{map[string]any{"coding": []any{map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}}}}
		}
		entries = append(entries, map[string]any{"resource": obs})
	}
	return map[string]any{"resourceType": "Bundle", "type": "collection", "timestamp": now.Format(time.RFC3339), "total": len(entries), "entry": entries}
}
