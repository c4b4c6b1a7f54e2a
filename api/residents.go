package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/query"
)

// Registry is what the API needs of the device registry.
type Registry interface {
	CreateResident(ctx context.Context, r devices.Resident) (devices.Resident, error)
	Resident(id string) (devices.Resident, bool)
	Residents() []devices.Resident
	RegisterDevice(ctx context.Context, id, kind, residentID string) (devices.Device, string, error)
	Device(id string) (devices.Device, bool)
	Devices(keep func(devices.Device) bool) []devices.Device
	SetDeviceDisabled(ctx context.Context, id string, disabled bool) (devices.Device, error)
	RotateCredentials(ctx context.Context, id string) (devices.Device, string, error)
	ResidentRevision(id string) (devices.Resident, uint64, bool)
	UpdateResident(ctx context.Context, id string, ifRevision uint64, change func(*devices.Resident) error) (devices.Resident, uint64, error)
	CreateHome(ctx context.Context, h devices.Home) (devices.Home, error)
	Home(id string) (devices.Home, bool)
	Homes() []devices.Home
}

type createResidentBody struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	HomeID    string `json:"home_id"`
	BirthYear int    `json:"birth_year"`
}

// createResident: POST /residents {"id"?, "name", "home_id", "birth_year"?} → 201 resident.
func (s *Server) createResident(c *fiber.Ctx) error {
	var b createResidentBody
	if err := decode(c, &b); err != nil {
		return err
	}
	r, err := s.o.Registry.CreateResident(c.UserContext(), devices.Resident{ID: b.ID, Name: b.Name, HomeID: b.HomeID, BirthYear: b.BirthYear})
	if err != nil {
		return registryError(err)
	}
	if err := s.audit(c, r.ID, "resident.create", ""); err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(r)
}

type residentsPage struct {
	Residents  []devices.Resident `json:"residents"`
	NextCursor string             `json:"next_cursor,omitempty"`
}

// listResidents: GET /residents?home_id=&limit=&cursor= → the residents
// the caller may see, by id; cursor is the last id of the previous page.
func (s *Server) listResidents(c *fiber.Ctx) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	home, after := c.Query("home_id"), c.Query("cursor")
	if after != "" && !catalog.ValidID(after) {
		return badRequest("invalid_cursor", "cursor is not one this API returned; start again without it")
	}
	q, p := s.query(c)
	list, next, err := q.Residents(c.UserContext(), p, home, query.Page{After: after, Limit: limit})
	if err != nil {
		return queryError(err, "")
	}
	out := residentsPage{Residents: list, NextCursor: next}
	return c.JSON(out)
}

// getResident: GET /residents/{id}.
func (s *Server) getResident(c *fiber.Ctx) error {
	q, p := s.query(c)
	id := c.Params("id")
	r, err := q.Resident(c.UserContext(), p, id)
	if err != nil {
		return queryError(err, "no resident "+truncate(id, 64))
	}
	// The ETag is the KV revision, which PATCH checks (resident_edit.go).
	if cur, rev, ok := s.o.Registry.ResidentRevision(r.ID); ok {
		r = cur
		c.Set(fiber.HeaderETag, residentETag(rev))
	}
	return c.JSON(r)
}

// ErrPreconditionRequired answers a change of a resident without If-Match
// (RFC 6585 §3): without it two coordinators editing the same record would
// silently overwrite each other.
var ErrPreconditionRequired = &Error{Status: http.StatusPreconditionRequired, Code: "precondition_required",
	Message: "send If-Match with the ETag of GET /api/v1/residents/{id}"}

// maxConsentTextRunes bounds recorded_by and document_ref.
const maxConsentTextRunes = 200

// residentETag is a strong ETag of a resident: its KV revision, which every
// stored change increments, so equal tags are the same stored record.
func residentETag(rev uint64) string { return `"` + strconv.FormatUint(rev, 10) + `"` }

// ifMatchRevision reads If-Match: the revision the client read, 0 for "*"
// (any current record), or ErrPreconditionRequired without the header. A
// weak tag never matches (RFC 9110 §13.1.1: If-Match compares strongly),
// and neither does a tag this API did not issue.
func ifMatchRevision(c *fiber.Ctx, required bool) (uint64, error) {
	h := strings.TrimSpace(c.Get(fiber.HeaderIfMatch))
	switch {
	case h == "" && required:
		return 0, ErrPreconditionRequired
	case h == "" || h == "*":
		return 0, nil
	}
	for _, tag := range strings.Split(h, ",") {
		tag = strings.TrimSpace(tag)
		if v, err := strconv.Unquote(tag); err == nil && !strings.HasPrefix(tag, "W/") {
			if rev, err := strconv.ParseUint(v, 10, 64); err == nil && rev > 0 {
				return rev, nil
			}
		}
	}
	return 0, ErrPrecondition
}

// staleInMemory answers 412 before anything is audited when the revision
// the client sent is already not this instance's latest; UpdateResident
// still checks it atomically against KV.
func (s *Server) staleInMemory(id string, rev uint64) error {
	if _, cur, ok := s.o.Registry.ResidentRevision(id); rev != 0 && ok && cur != rev {
		return ErrPrecondition
	}
	return nil
}

// updateError maps UpdateResident's errors: a stale revision is 412.
func updateError(err error) error {
	if errors.Is(err, devices.ErrStale) {
		return ErrPrecondition
	}
	return registryError(err)
}

type patchResidentBody struct {
	Name      *string `json:"name"`
	BirthYear *int    `json:"birth_year"`
	HomeID    *string `json:"home_id"`
}

// patchResident: PATCH /residents/{id} {"name"?, "birth_year"?, "home_id"?}
// (staff) with If-Match (428 without, 412 when the resident changed since
// it was read) → 200 resident with its new ETag. birth_year 0 clears it. A
// new home_id is created when missing and the resident's devices move with
// them. The audit entry names the changed fields, not their values: a name
// is personal data.
func (s *Server) patchResident(c *fiber.Ctx) error {
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	rev, err := ifMatchRevision(c, true)
	if err != nil {
		return err
	}
	var b patchResidentBody
	if err := decode(c, &b); err != nil {
		return err
	}
	var fields []string
	if b.Name != nil {
		fields = append(fields, "name")
	}
	if b.BirthYear != nil {
		fields = append(fields, "birth_year")
	}
	if b.HomeID != nil {
		fields = append(fields, "home_id")
	}
	if len(fields) == 0 {
		return invalid("invalid_field", "nothing to change: send name, birth_year or home_id")
	}
	if err := s.staleInMemory(r.ID, rev); err != nil {
		return err
	}
	if err := s.audit(c, r.ID, "resident.update", "fields: "+strings.Join(fields, ", ")); err != nil {
		return err
	}
	out, nrev, err := s.o.Registry.UpdateResident(c.UserContext(), r.ID, rev, func(x *devices.Resident) error {
		if b.Name != nil {
			x.Name = *b.Name
		}
		if b.BirthYear != nil {
			x.BirthYear = *b.BirthYear
		}
		if b.HomeID != nil {
			x.HomeID = *b.HomeID
		}
		return nil
	})
	if err != nil {
		return updateError(err)
	}
	c.Set(fiber.HeaderETag, residentETag(nrev))
	return c.JSON(out)
}

type consentBody struct {
	Given       *bool  `json:"given"`
	Scope       string `json:"scope"`
	RecordedBy  string `json:"recorded_by"`
	DocumentRef string `json:"document_ref"`
}

// putConsent: PUT /residents/{id}/consent {"given", "scope", "recorded_by",
// "document_ref"?} (staff) records the resident's consent to monitoring
// (PIPA Art. 23: separate consent for health data; "monitoring+export" also
// covers handing data to a third party, Art. 17) or its withdrawal
// ("given": false; scope may then be omitted). Giving sets given_at and
// clears withdrawn_at; withdrawing sets withdrawn_at and keeps given_at, so
// the record shows the period covered. If-Match is optional here: a
// consent is a fact to record, not an edit of someone else's text. Audited.
func (s *Server) putConsent(c *fiber.Ctx) error {
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	rev, err := ifMatchRevision(c, false)
	if err != nil {
		return err
	}
	var b consentBody
	if err := decode(c, &b); err != nil {
		return err
	}
	b.RecordedBy, b.DocumentRef = strings.TrimSpace(b.RecordedBy), strings.TrimSpace(b.DocumentRef)
	switch {
	case b.Given == nil:
		return invalidAt("invalid_consent", "given", "given is required: true to record consent, false to record its withdrawal")
	case *b.Given && !devices.ValidConsentScope(b.Scope):
		return invalidAt("invalid_consent", "scope", "scope must be monitoring or monitoring+export")
	case !*b.Given && b.Scope != "" && !devices.ValidConsentScope(b.Scope):
		return invalidAt("invalid_consent", "scope", "scope must be monitoring or monitoring+export, or omitted on a withdrawal")
	case b.RecordedBy == "":
		return invalidAt("invalid_consent", "recorded_by", "recorded_by is required: who took the consent")
	case utf8.RuneCountInString(b.RecordedBy) > maxConsentTextRunes:
		return invalidAt("invalid_consent", "recorded_by", "recorded_by is at most %d characters", maxConsentTextRunes)
	case utf8.RuneCountInString(b.DocumentRef) > maxConsentTextRunes:
		return invalidAt("invalid_consent", "document_ref", "document_ref is at most %d characters", maxConsentTextRunes)
	}
	reason := "withdrawn"
	if *b.Given {
		reason = "given: " + b.Scope
	}
	if err := s.staleInMemory(r.ID, rev); err != nil {
		return err
	}
	if err := s.audit(c, r.ID, "consent.record", reason); err != nil {
		return err
	}
	now := s.o.Clock().UTC()
	out, nrev, err := s.o.Registry.UpdateResident(c.UserContext(), r.ID, rev, func(x *devices.Resident) error {
		next := devices.Consent{Given: *b.Given, Scope: b.Scope, RecordedBy: b.RecordedBy, DocumentRef: b.DocumentRef}
		if *b.Given {
			next.GivenAt = &now
		} else {
			if x.Consent != nil {
				next.GivenAt = x.Consent.GivenAt
				if next.Scope == "" {
					next.Scope = x.Consent.Scope
				}
			}
			next.WithdrawnAt = &now
		}
		x.Consent = &next
		return nil
	})
	if err != nil {
		return updateError(err)
	}
	c.Set(fiber.HeaderETag, residentETag(nrev))
	return c.JSON(out)
}
