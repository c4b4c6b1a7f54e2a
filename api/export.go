package api

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/influx/flux"
)

// ExportSource streams every catalogue reading of a resident over a range
// (flux.Reader): CountPoints says beforehand how many there are, so the
// answer's headers can say whether it will be cut; StreamPoints hands them
// to emit one by one, in time order, and never holds them all.
type ExportSource interface {
	CountPoints(ctx context.Context, residentID string, from, to time.Time) (int64, error)
	StreamPoints(ctx context.Context, residentID string, from, to time.Time, limit int, emit func(flux.MetricValue) error) (bool, error)
}

// maxExportWindow bounds one export's range (flux.MaxTrendRange).
const maxExportWindow = flux.MaxTrendRange

// maxReasonBytes bounds an export's stated reason.
const maxReasonBytes = 500

// defaultMaxExports is how many exports may run at once (Options.MaxExports):
// each holds an InfluxDB query and a response stream for up to minutes.
const defaultMaxExports = 2

// exportTimeout bounds one export's streaming: a month of minute data
// takes seconds; a client that reads slower than this is cut off so that
// it cannot hold an export slot forever.
const exportTimeout = 10 * time.Minute

// ErrExportBusy answers an export while Options.MaxExports are running.
var ErrExportBusy = &Error{Status: http.StatusTooManyRequests, Code: "export_busy", Message: "too many exports are running; retry in a minute"}

// ErrConsentRequired answers an export of a resident without a recorded,
// unwithdrawn consent of scope monitoring+export (PIPA Art. 17).
var ErrConsentRequired = &Error{Status: http.StatusConflict, Code: "consent_required",
	Message: "this resident has no recorded monitoring+export consent; record it with PUT /residents/{id}/consent before exporting"}

// exportConsented reports whether r's recorded consent covers handing their
// data to a third party: given, of scope monitoring+export, not withdrawn.
func exportConsented(r devices.Resident) bool {
	c := r.Consent
	return c != nil && c.Given && c.Scope == devices.ConsentMonitoringExport && c.WithdrawnAt == nil
}

// export: GET /residents/{id}/export?format=fhir|csv&from=&to=&reason=
// (admins and coordinators, and a caregiver for their own residents). The
// reason is required and recorded in the audit trail (domain.md: reason for
// exports), and the resident's monitoring+export consent must be on record
// (409 consent_required otherwise). FHIR is an R4 Bundle of Observations
// with LOINC codes and UCUM units; the subject is the pseudonymous resident
// id, never a name. The answer is streamed: memory does not grow with the
// number of points, and at most Options.MaxExports run at once (429
// export_busy beyond).
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
	if !exportConsented(r) {
		_ = s.auditOutcome(c, []string{r.ID}, "export."+format, reason, OutcomeDenied)
		return ErrConsentRequired
	}
	select {
	case s.exports <- struct{}{}:
	default:
		c.Set(fiber.HeaderRetryAfter, "60")
		return ErrExportBusy
	}
	streaming := false
	defer func() {
		if !streaming {
			<-s.exports
		}
	}()
	if err := s.audit(c, r.ID, "export."+format, reason); err != nil {
		return err
	}
	n, err := s.o.Export.CountPoints(c.UserContext(), r.ID, from, to)
	if err != nil {
		s.log.Error().Err(err).Str("resident_id", r.ID).Msg("export count failed")
		return ErrUnavailable.with("the time-series store did not answer; retry later")
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	if n > flux.MaxExportPoints {
		c.Set("X-Carehub-Truncated", "true") // ask again for a shorter range
	}
	rid, now := r.ID, s.o.Clock().UTC()
	// Recorded if the export fails midway (the status is sent by then).
	failed := audit.Entry{Actor: principal(c).ID, Role: principal(c).Role, Source: s.clientIP(c), ResidentID: rid,
		Action: "export." + format, Reason: reason, Outcome: OutcomeError}
	if format == "csv" {
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
		c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+rid+`.csv"`)
	} else {
		c.Set(fiber.HeaderContentType, "application/fhir+json")
	}
	// From here on the answer is written after this handler returns, by
	// fasthttp, from a stream: the slot is freed when the stream ends. The
	// Fiber context is reused by then, so the writer gets its own.
	streaming = true
	ctx, cancel := context.WithTimeout(s.ctx, exportTimeout)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer func() { <-s.exports }()
		defer cancel()
		var enc pointEncoder = &fhirEncoder{w: w, rid: rid, now: now}
		if format == "csv" {
			enc = &csvEncoder{w: csv.NewWriter(w), rid: rid}
		}
		err := enc.begin()
		written := 0
		if err == nil {
			_, err = s.o.Export.StreamPoints(ctx, rid, from, to, flux.MaxExportPoints, func(p flux.MetricValue) error {
				if err := enc.point(p); err != nil {
					return err
				}
				written++
				if written%512 == 0 {
					return w.Flush() // hand the client what is ready; an error means it left
				}
				return nil
			})
		}
		if err != nil {
			// The status is sent already: the body ends without its
			// closing (invalid JSON; a CSV without its end line), which a
			// client can tell from a complete export.
			s.log.Warn().Err(err).Str("resident_id", rid).Int("points", written).Msg("export ended early")
			_ = w.Flush()
			failed.At = s.o.Clock().UTC()
			failed.Reason = truncate(reason, maxReasonBytes-40) + " (ended after " + strconv.Itoa(written) + " points)"
			actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer acancel()
			if err := s.o.Audit.Record(actx, failed); err != nil {
				s.log.Error().Err(err).Msg("audit: the failed export could not be recorded")
			}
			return
		}
		if err := enc.end(); err != nil {
			s.log.Warn().Err(err).Str("resident_id", rid).Msg("export: finishing the answer failed")
		}
		_ = w.Flush()
	})
	return nil
}

// pointEncoder writes one export format point by point.
type pointEncoder interface {
	begin() error
	point(p flux.MetricValue) error
	end() error
}

// csvEncoder writes the CSV export. Its last line is "# end", so a cut
// export (the store failed midway) is visibly incomplete.
type csvEncoder struct {
	w   *csv.Writer
	rid string
	rec [6]string
}

func (e *csvEncoder) begin() error {
	return e.w.Write([]string{"resident_id", "time", "metric", "value", "unit", "loinc"})
}

func (e *csvEncoder) point(p flux.MetricValue) error {
	m, ok := catalog.LookupMetric(p.Metric)
	if !ok {
		return nil // not in the catalogue: no unit or code to export it with
	}
	e.rec = [6]string{csvCell(e.rid), wireTime(p.T), csvCell(p.Metric), strconv.FormatFloat(p.V, 'g', -1, 64), csvCell(m.Unit), csvCell(m.LOINC)}
	return e.w.Write(e.rec[:])
}

func (e *csvEncoder) end() error {
	e.w.Flush()
	if err := e.w.Error(); err != nil {
		return err
	}
	return e.w.Write([]string{"# end"})
}

// csvCell neutralises a cell a spreadsheet would run as a formula (CSV
// injection, OWASP): one starting with = + - @, a tab or a carriage return
// gets a leading apostrophe. A number ("-3.5") is left alone: spreadsheets
// read it as the number it is.
func csvCell(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return s
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return "'" + s
}

// The FHIR R4 types an export writes: an Observation per point, in a
// Bundle of type collection.
type (
	fhirCoding struct {
		System  string `json:"system"`
		Code    string `json:"code"`
		Display string `json:"display,omitempty"`
	}
	fhirConcept struct {
		Coding []fhirCoding `json:"coding"`
		Text   string       `json:"text,omitempty"`
	}
	fhirIdentifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	fhirReference struct {
		Identifier fhirIdentifier `json:"identifier"`
	}
	fhirQuantity struct {
		Value  float64 `json:"value"`
		Unit   string  `json:"unit"`
		System string  `json:"system"`
		Code   string  `json:"code"`
	}
	fhirObservation struct {
		ResourceType      string        `json:"resourceType"`
		Status            string        `json:"status"`
		Category          []fhirConcept `json:"category,omitempty"`
		Code              fhirConcept   `json:"code"`
		Subject           fhirReference `json:"subject"`
		EffectiveDateTime string        `json:"effectiveDateTime"`
		ValueQuantity     fhirQuantity  `json:"valueQuantity"`
	}
	fhirEntry struct {
		Resource fhirObservation `json:"resource"`
	}
)

// vitalSigns is the FHIR category of vital-sign metrics.
var vitalSigns = []fhirConcept{{Coding: []fhirCoding{{System: "http://terminology.hl7.org/CodeSystem/observation-category", Code: "vital-signs"}}}}

// fhirEncoder writes a FHIR R4 Bundle (type collection) of Observations, one
// entry at a time. Metrics with a LOINC code (domain.md) are coded in
// http://loinc.org; the others in carehub's own code system. The total
// comes last, once it is known.
type fhirEncoder struct {
	w   *bufio.Writer
	enc *json.Encoder
	rid string
	now time.Time
	n   int
}

func (e *fhirEncoder) begin() error {
	e.enc = json.NewEncoder(e.w)
	ts, _ := json.Marshal(wireTime(e.now))
	_, err := e.w.WriteString(`{"resourceType":"Bundle","type":"collection","timestamp":` + string(ts) + `,"entry":[`)
	return err
}

func (e *fhirEncoder) point(p flux.MetricValue) error {
	m, ok := catalog.LookupMetric(p.Metric)
	if !ok {
		return nil
	}
	coding := fhirCoding{System: "urn:carehub:metric", Code: m.Name, Display: m.Name}
	if m.LOINC != "" {
		coding = fhirCoding{System: "http://loinc.org", Code: m.LOINC, Display: m.Name}
	}
	obs := fhirObservation{
		ResourceType:      "Observation",
		Status:            "final",
		Code:              fhirConcept{Coding: []fhirCoding{coding}, Text: m.Name},
		Subject:           fhirReference{Identifier: fhirIdentifier{System: "urn:carehub:resident", Value: e.rid}},
		EffectiveDateTime: wireTime(p.T),
		ValueQuantity:     fhirQuantity{Value: p.V, Unit: m.Unit, System: "http://unitsofmeasure.org", Code: m.Unit},
	}
	if m.Vital {
		obs.Category = vitalSigns
	}
	if e.n > 0 {
		if err := e.w.WriteByte(','); err != nil {
			return err
		}
	}
	e.n++
	return e.enc.Encode(fhirEntry{Resource: obs})
}

func (e *fhirEncoder) end() error {
	_, err := e.w.WriteString(`],"total":` + strconv.Itoa(e.n) + "}\n")
	return err
}
